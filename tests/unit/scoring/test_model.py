"""training.onnx_export and scoring.model: the graph, save/load checks, scoring, reasons."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import orjson
import pytest

from scoring.errors import ModelFileError, ModelMismatchError
from scoring.evaluation import Metrics
from scoring.metadata import Calibration, TrainingWindow
from scoring.model import METADATA_FILE, MODEL_FILE, RiskModel, load_model
from training.onnx_export import export_onnx
from training.save import save_model
from training.train import TrainedModel

NAMES = ("login_trend", "days_since_last_activity", "seats", "support_tickets_28d")
VERSION = "0123456789abcdef"


def make_trained(**overrides: Any) -> TrainedModel:
    moment = datetime(2026, 10, 1, tzinfo=UTC)
    fields: dict[str, Any] = {
        "feature_names": NAMES,
        "feature_version": VERSION,
        "weights": (-1.5, 0.8, 0.05, 0.4),
        "bias": -2.0,
        "mean": (1.0, 3.0, 12.0, 0.5),
        "std": (0.4, 2.5, 9.0, 1.0),
        "calibration": Calibration(0.9, -0.3, rows=100, positives=10),
        "metrics": Metrics(100, 10, 10, 0.1, 0.8, 0.5, 3.0, 0.08, 0.3),
        "window": TrainingWindow(moment, moment, moment, moment),
        "horizon_days": 28,
        "seed": 0,
        "l2": 1e-3,
        "iterations": 7,
        "train_rows": 600,
        "train_accounts": 60,
        "created_from": "history.jsonl sha256:0000",
    }
    fields.update(overrides)
    return TrainedModel(**fields)


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    save_model(make_trained(), tmp_path)
    return tmp_path


@pytest.fixture
def model(saved: Path) -> RiskModel:
    return load_model(saved, VERSION, NAMES)


def random_matrix(rows: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    trained = make_trained()
    x = rng.normal(trained.mean, trained.std, size=(rows, len(NAMES)))
    return x.astype(np.float32)


# --- the graph ----------------------------------------------------------------------------


def test_graph_is_plain_operators_at_opset_17_without_zipmap() -> None:
    proto = onnx.load_from_string(export_onnx(make_trained()))
    assert proto.ir_version == 8
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", 17)]
    assert [n.op_type for n in proto.graph.node] == [
        "Sub", "Div", "MatMul", "Add", "Mul", "Add", "Sigmoid", "Mul"
    ]
    assert [i.name for i in proto.graph.input] == ["features"]
    assert [o.name for o in proto.graph.output] == ["risk", "contributions"]
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["feature_version"] == VERSION
    assert props["feature_names"] == ",".join(NAMES)


def test_export_is_byte_identical_for_the_same_model() -> None:
    assert export_onnx(make_trained()) == export_onnx(make_trained())
    assert export_onnx(make_trained()) != export_onnx(make_trained(bias=-1.0))


@pytest.mark.parametrize("rows", [1, 7, 1000])
def test_onnx_scores_equal_the_numpy_computation(model: RiskModel, rows: int) -> None:
    trained = make_trained()
    x = random_matrix(rows, seed=rows)
    risk, contributions = model.score(x)
    assert risk.shape == (rows,) and risk.dtype == np.float32
    assert contributions.shape == (rows, len(NAMES))
    np.testing.assert_allclose(risk, trained.predict(x), atol=1e-5, rtol=0)
    np.testing.assert_allclose(contributions, trained.contributions(x), atol=1e-5, rtol=1e-5)
    # The contributions add up to the raw logit.
    np.testing.assert_allclose(
        contributions.sum(axis=1) + trained.bias, trained.raw_logit(x), atol=1e-4
    )


def test_score_takes_any_float_rows_and_checks_the_width(model: RiskModel) -> None:
    rows = [tuple(float(v) for v in r) for r in random_matrix(3)]  # AccountFeatures.values
    risk, _ = model.score(rows)
    assert risk.shape == (3,)
    risk, contributions = model.score(np.empty((0, len(NAMES)), dtype=np.float32))
    assert risk.shape == (0,) and contributions.shape == (0, len(NAMES))
    with pytest.raises(ValueError, match=r"\[N, 4\]"):
        model.score(np.zeros((2, 3), dtype=np.float32))


# --- save and load -----------------------------------------------------------------------


def test_saved_metadata_describes_the_model(saved: Path, model: RiskModel) -> None:
    document = orjson.loads((saved / METADATA_FILE).read_bytes())
    assert list(document) == sorted(document)
    meta = model.metadata
    assert meta.model_version == document["model_version"]
    assert len(meta.model_version) == 16
    assert meta.feature_names == NAMES and meta.feature_version == VERSION
    assert meta.horizon_days == 28
    assert meta.calibration == Calibration(0.9, -0.3, rows=100, positives=10)
    assert meta.holdout_metrics == make_trained().metrics
    assert meta.created_from == "history.jsonl sha256:0000"
    assert document["coefficients"]["login_trend"] == -1.5
    assert document["training_window"]["history_start"] == "2026-10-01T00:00:00Z"


def test_saving_twice_writes_the_same_bytes(tmp_path: Path) -> None:
    save_model(make_trained(), tmp_path / "a")
    save_model(make_trained(), tmp_path / "b")
    for name in (MODEL_FILE, METADATA_FILE):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_load_refuses_another_feature_version(saved: Path) -> None:
    with pytest.raises(ModelMismatchError) as caught:
        load_model(saved, "fedcba9876543210", NAMES)
    assert caught.value.field == "feature_version"
    assert caught.value.found == VERSION and caught.value.expected == "fedcba9876543210"
    assert "retrain" in str(caught.value)


@pytest.mark.parametrize(
    ("names", "detail"),
    [
        pytest.param(
            (NAMES[1], NAMES[0], *NAMES[2:]), "position 0 is 'login_trend'", id="reordered"
        ),
        pytest.param(NAMES[:3], "4 features, the live definitions 3", id="one-fewer"),
        pytest.param((*NAMES, "extra"), "4 features, the live definitions 5", id="one-more"),
    ],
)
def test_load_refuses_other_feature_names(saved: Path, names: tuple[str, ...],
                                          detail: str) -> None:
    with pytest.raises(ModelMismatchError, match=detail) as caught:
        load_model(saved, VERSION, names)
    assert caught.value.field == "feature_names"


def test_load_refuses_a_model_file_that_is_not_the_one_named(saved: Path,
                                                             tmp_path: Path) -> None:
    other = tmp_path / "other"
    save_model(make_trained(bias=5.0), other)
    (saved / MODEL_FILE).write_bytes((other / MODEL_FILE).read_bytes())
    with pytest.raises(ModelFileError, match="hashes to"):
        load_model(saved, VERSION, NAMES)


def test_load_reports_missing_and_malformed_files(tmp_path: Path, saved: Path) -> None:
    with pytest.raises(ModelFileError, match="cannot read"):
        load_model(tmp_path / "nowhere", VERSION, NAMES)
    (saved / METADATA_FILE).write_bytes(b"{}")
    with pytest.raises(ModelFileError, match="malformed"):
        load_model(saved, VERSION, NAMES)


# --- reasons ------------------------------------------------------------------------------


def reasons_model(tmp_path: Path, weights: tuple[float, ...]) -> RiskModel:
    trained = make_trained(
        feature_names=("a", "b", "c", "d"),
        weights=weights,
        mean=(0.0,) * 4,
        std=(1.0,) * 4,
        bias=0.0,
        calibration=Calibration(),
    )
    save_model(trained, tmp_path)
    return load_model(tmp_path, VERSION, ("a", "b", "c", "d"))


def test_top_reasons_name_the_features_pushing_risk_up_most(tmp_path: Path) -> None:
    model = reasons_model(tmp_path, (2.0, -1.0, 0.5, 0.0))
    # contributions: a 2.0 (high), b 3.0 (low value, negative weight), c 2.0, d 0
    _, contributions = model.score(np.array([[1.0, -3.0, 4.0, 5.0]], dtype=np.float32))
    np.testing.assert_allclose(contributions[0], [2.0, 3.0, 2.0, 0.0])
    assert model.top_reasons(contributions[0]) == ("b low", "a high", "c high")
    assert model.top_reasons(contributions[0], k=2) == ("b low", "a high")
    reasons = model.reasons(contributions[0], k=1)
    assert reasons[0].feature == "b" and reasons[0].direction == "low"
    assert reasons[0].contribution == pytest.approx(3.0)


def test_features_that_lower_the_risk_are_no_reason(tmp_path: Path) -> None:
    model = reasons_model(tmp_path, (2.0, -1.0, 0.5, 0.0))
    _, contributions = model.score(np.array([[-1.0, 2.0, 0.0, 9.0]], dtype=np.float32))
    assert model.top_reasons(contributions[0]) == ()
    _, contributions = model.score(np.array([[-1.0, -0.5, 0.0, 9.0]], dtype=np.float32))
    assert model.top_reasons(contributions[0], k=3) == ("b low",)
    assert model.top_reasons(contributions[0], k=0) == ()


def test_reason_direction_follows_the_value_against_the_training_mean(tmp_path: Path) -> None:
    """login_trend below its mean and activity gap above it both raise the risk."""
    trained = make_trained()
    save_model(trained, tmp_path)
    model = load_model(tmp_path, VERSION, NAMES)
    x = np.array([[0.2, 12.0, 12.0, 0.5]], dtype=np.float32)  # trend low, long silence
    _, contributions = model.score(x)
    assert model.top_reasons(contributions[0]) == (
        "login_trend low", "days_since_last_activity high"
    )


@pytest.mark.parametrize("k", [0, 1, 3, 4])
def test_batch_reasons_equal_the_reasons_of_each_row(tmp_path: Path, k: int) -> None:
    """Ties keep definition order, zero and negative contributions are no reason."""
    model = reasons_model(tmp_path, (2.0, -1.0, 0.5, 0.0))
    rng = np.random.default_rng(k)
    x = rng.choice([-2.0, -0.5, 0.0, 1.0, 2.0], size=(300, 4)).astype(np.float32)
    _, contributions = model.score(x)
    batch = model.top_reasons_batch(contributions, k)
    assert batch == [model.top_reasons(row, k) for row in contributions]
    assert {len(reasons) for reasons in batch} == set(range(min(k, 3) + 1))  # d never counts
    with pytest.raises(ValueError, match="rows of 4"):
        model.top_reasons_batch(contributions[:, :3], k)


# --- the runtime stays light -------------------------------------------------------------


def test_runtime_imports_neither_onnx_nor_bytewax() -> None:
    code = (
        "import sys, scoring, scoring.model, scoring.risk, accounts.processor, "
        "decisions.engine, sinks.postgres\n"
        "bad = [m for m in ('onnx', 'bytewax') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[3])


def test_metadata_is_a_frozen_value(model: RiskModel) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.metadata.horizon_days = 7  # type: ignore[misc]
