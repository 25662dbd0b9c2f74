"""Declared transforms and the tree model family: the ONNX graph scores as the fitted
pipeline does (to 1e-6), and tree reasons are faithful."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pytest

from scoring.model import RiskModel, load_model
from tests.unit.training.test_train import synthetic_dataset
from training.dataset import Dataset
from training.errors import TrainingOptionError
from training.history import ModelFamily, fit, save_with_tiers
from training.onnx_export import build_tree_onnx, export_model
from training.tiers import TierOptions
from training.train import train
from training.transforms import (
    Transform,
    TransformKind,
    apply_transforms,
    parse_clip,
    resolve_transforms,
)
from training.trees import TrainedTrees, train_trees


def skewed_dataset(accounts: int = 400, days: int = 10, seed: int = 3) -> Dataset:
    """Counts with a long tail (``a``, ``c``), a signed trend (``b``); churn rises with
    few ``a`` events, with a falling ``b`` and with ``c`` above 20 only."""
    base = synthetic_dataset(accounts, days, seed)
    rng = np.random.default_rng(seed)
    n = base.rows
    a = rng.lognormal(1.5, 1.0, n)
    b = rng.normal(0.0, 1.0, n)
    c = rng.poisson(15, n).astype(np.float64)
    logit = -1.2 * np.log1p(a) - 0.8 * b + 1.5 * (c > 20) - 0.5
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    return Dataset(
        X=np.column_stack([a, b, c]).astype(np.float32), y=y, accounts=base.accounts,
        observed_at=base.observed_at, feature_names=base.feature_names,
        feature_version=base.feature_version, horizon_days=base.horizon_days,
        history_start=base.history_start, history_end=base.history_end, source="skewed",
    )


TRANSFORMS = (Transform(TransformKind.LOG1P, "a"), Transform(TransformKind.CLIP, "b", -1.5, 1.5),
              Transform(TransformKind.CLIP, "c", 0.0, 30.0), Transform(TransformKind.LOG1P, "c"))


def saved(tmp_path: Path, trained: object, data: Dataset) -> RiskModel:
    save_with_tiers(trained, data, tmp_path, TierOptions())  # type: ignore[arg-type]
    return load_model(tmp_path, data.feature_version, data.feature_names)


# --- transforms ---------------------------------------------------------------------------


def test_transforms_are_declared_by_name_and_checked() -> None:
    data = skewed_dataset()
    resolved = resolve_transforms(data.feature_names, data.X, log1p=["nonnegative"],
                                  clip=[parse_clip("b:-1.5:1.5")])
    assert [str(t) for t in resolved] == ["log1p:a", "clip:b:-1.5:1.5", "log1p:c"]
    assert str(parse_clip("c::30")) == "clip:c:-inf:30"
    with pytest.raises(TrainingOptionError, match="no such feature"):
        resolve_transforms(data.feature_names, data.X, log1p=["logins"])
    with pytest.raises(TrainingOptionError, match="NAME:LOW:HIGH"):
        parse_clip("b")
    with pytest.raises(TrainingOptionError, match="LOW < HIGH"):
        parse_clip("b:2:1")


def test_transforms_clip_before_log1p_and_never_make_nan() -> None:
    x = np.array([[-3.0, -3.0, 50.0], [0.0, 0.5, 10.0], [9.0, 3.0, -2.0]], dtype=np.float32)
    out = apply_transforms(("a", "b", "c"), TRANSFORMS, x)
    expected = np.array([[0.0, -1.5, math.log(31.0)], [0.0, 0.5, math.log(11.0)],
                         [math.log(10.0), 1.5, 0.0]])
    np.testing.assert_allclose(out, expected, rtol=1e-7)
    assert np.isfinite(out).all()


@pytest.mark.parametrize("family", [ModelFamily.LOGISTIC, ModelFamily.TREES])
def test_onnx_scores_equal_the_fitted_pipeline_with_transforms(tmp_path: Path,
                                                               family: ModelFamily) -> None:
    data = skewed_dataset()
    trained = (train_trees(data, transforms=TRANSFORMS) if family is ModelFamily.TREES
               else train(data, transforms=TRANSFORMS))
    model = saved(tmp_path, trained, data)
    rng = np.random.default_rng(1)
    batch = np.vstack([data.X[:1500], rng.normal(5, 20, (500, 3)).astype(np.float32)])
    risk, contributions = model.score(batch)
    if isinstance(trained, TrainedTrees):
        # scikit-learn's own raw score of the transformed rows, calibrated
        estimator = trained.estimator
        raw = estimator._raw_predict(  # type: ignore[attr-defined]
            apply_transforms(data.feature_names, TRANSFORMS, batch).astype(np.float64))[:, 0]
        reference = 1 / (1 + np.exp(-(trained.calibration.scale * raw
                                      + trained.calibration.offset)))
        np.testing.assert_allclose(contributions, trained.contributions(batch), atol=1e-5)
    else:
        reference = trained.predict(batch)
        np.testing.assert_allclose(contributions, trained.contributions(batch), atol=1e-4)
    assert np.abs(risk - reference).max() <= 1e-6
    assert model.metadata.transforms == tuple(str(t) for t in TRANSFORMS)


def test_a_model_without_transforms_exports_the_graph_it_always_did() -> None:
    data = synthetic_dataset()
    graph = onnx.load_from_string(export_model(train(data)))
    assert [n.op_type for n in graph.graph.node][:2] == ["Sub", "Div"]
    with_transforms = onnx.load_from_string(
        export_model(train(data, transforms=(Transform(TransformKind.LOG1P, "c"),))))
    assert "Log" in {n.op_type for n in with_transforms.graph.node}


# --- trees ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trees() -> tuple[Dataset, TrainedTrees]:
    data = skewed_dataset()
    return data, train_trees(data, transforms=TRANSFORMS)


def test_tree_contributions_sum_to_the_raw_score(trees: tuple[Dataset, TrainedTrees]) -> None:
    data, trained = trees
    contributions = trained.contributions(data.X[:500])
    np.testing.assert_allclose(contributions.sum(axis=1) + trained.base,
                               trained.raw_score(data.X[:500]), atol=1e-9)
    graph = build_tree_onnx(trained)
    assert {n.op_type for n in graph.graph.node} >= {"TreeEnsembleRegressor", "Sigmoid"}
    assert "ZipMap" not in {n.op_type for n in graph.graph.node}


def test_tree_reasons_are_faithful(tmp_path: Path, trees: tuple[Dataset, TrainedTrees]) -> None:
    """Moving the top reason's feature of a high-risk row to the population mean lowers
    its risk: for every one of the riskiest 10 % of rows but a small share."""
    data, trained = trees
    model = saved(tmp_path, trained, data)
    risk, contributions = model.score(data.X)
    top = np.argsort(-risk)[: data.rows // 10]
    means = np.asarray(model.metadata.feature_means, dtype=np.float32)
    lowered = 0
    for row in top:
        reason = model.top_reasons(contributions[row], 1, data.X[row])
        assert reason, "a high-risk row has a reason"
        feature = model.feature_names.index(reason[0].split(" ")[0])
        moved = data.X[row].copy()
        moved[feature] = means[feature]
        after, _ = model.score(moved.reshape(1, -1))
        lowered += bool(after[0] < risk[row])
    assert lowered / top.size >= 0.9, f"{lowered} of {top.size}"


def test_tree_reason_directions_follow_the_row_against_the_mean(
    tmp_path: Path, trees: tuple[Dataset, TrainedTrees],
) -> None:
    data, trained = trees
    model = saved(tmp_path, trained, data)
    _, contributions = model.score(data.X[:300])
    batch = model.top_reasons_batch(contributions, 3, data.X[:300])
    means = model.metadata.feature_means
    for i, reasons in enumerate(batch):
        assert reasons == model.top_reasons(contributions[i], 3, data.X[i])
        for text in reasons:
            name, direction = text.split(" ")
            j = model.feature_names.index(name)
            assert direction == ("high" if data.X[i, j] > np.float32(means[j]) else "low")
    assert model.metadata.family == "trees" and model.metadata.coefficients == ()


def test_fit_chooses_the_family_and_transforms(trees: tuple[Dataset, TrainedTrees]) -> None:
    data, _ = trees
    fitted = fit(data, family=ModelFamily.TREES, log1p=["a"])
    assert isinstance(fitted, TrainedTrees)
    assert [str(t) for t in fitted.transforms] == ["log1p:a"]


def test_score_batch_tiers_a_tree_model_by_its_own_tiers_and_explains_it(
    tmp_path: Path, trees: tuple[Dataset, TrainedTrees],
) -> None:
    from accounts.debounce import ScoreRequest
    from scoring.risk import RiskPolicy, score_batch

    data, trained = trees
    model = saved(tmp_path, trained, data)
    tiers = model.metadata.tiers
    assert tiers is not None
    requests = [ScoreRequest("t", f"a{i}", tuple(float(v) for v in data.X[i]),
                             1_790_000_000.0, 0.0, f"e{i}") for i in range(200)]
    scores = score_batch(requests, model, RiskPolicy(tiers_from_model=True))
    risk, contributions = model.score(data.X[:200])
    for score, r, row, x in zip(scores, risk, contributions, data.X[:200], strict=True):
        expected = ("high" if r >= tiers.high_at else "medium" if r >= tiers.medium_at
                    else "low")
        assert str(score.tier) == expected
        assert score.reasons == model.top_reasons(row, 3, x)
    assert {str(s.tier) for s in scores} >= {"low", "high"}


def test_train_command_writes_a_tree_model_with_tiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    from churnwatch.cli import main
    from churnwatch.simulator import simulate, write_jsonl
    from featurestore.definitions import load_definitions

    history = tmp_path / "history.jsonl"
    write_jsonl(simulate(accounts=80, days=40, seed=5), history)
    assert main(["train", "--history", str(history), "--out", str(tmp_path / "m"),
                 "--model", "trees", "--log1p", "nonnegative", "--clip",
                 "login_trend:-1:1", "--horizon-days", "14", "--high-share", "0.1"]) == 0
    out = capsys.readouterr().out
    assert "trees model written" in out and "tiers (share)" in out
    feature_set = load_definitions()
    model = load_model(tmp_path / "m", feature_set.version, feature_set.names)
    assert model.metadata.family == "trees"
    assert "clip:login_trend:-1:1" in model.metadata.transforms
    assert model.metadata.tiers is not None and model.metadata.tiers.high_share >= 0.1
