"""training.train and training.history: splits, the fit, determinism, and model quality
on simulated histories."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from churnwatch.settings import Settings
from churnwatch.simulator import simulate, write_jsonl
from churnwatch.wiring import account_config, event_limits
from featurestore.definitions import load_definitions
from schemas.event import EventLimits
from scoring.evaluation import evaluate
from scoring.model import METADATA_FILE, MODEL_FILE, load_model
from training.dataset import Dataset, Observations, label_observations, observe_history
from training.errors import TrainingError
from training.history import train_from_history
from training.save import save_model
from training.train import (
    CALIBRATION,
    HOLDOUT,
    TRAIN,
    fit_logistic,
    fit_platt,
    split_accounts,
    train,
)

NOW = datetime(2027, 1, 1, tzinfo=UTC)
START = datetime(2026, 10, 1, tzinfo=UTC).timestamp()

CONFIG = account_config(Settings(), load_definitions())
LIMITS = event_limits(Settings())


def synthetic_dataset(accounts: int = 300, days: int = 10, seed: int = 0) -> Dataset:
    """Three features; churn depends on the first (up) and second (down) only,
    the third is constant (its scale must stay 1)."""
    rng = np.random.default_rng(seed)
    n = accounts * days
    x = np.column_stack([rng.normal(5, 2, n), rng.normal(0, 1, n), np.full(n, 3.0)])
    logit = 1.2 * (x[:, 0] - 5) / 2 - 0.7 * x[:, 1] - 1.5
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    keys = tuple(f"t:acct-{i // days}" for i in range(n))
    at = np.array([START + (i % days + 1) * 86_400.0 for i in range(n)])
    return Dataset(
        X=x.astype(np.float32),
        y=y,
        accounts=keys,
        observed_at=at,
        feature_names=("a", "b", "c"),
        feature_version="v-synthetic",
        horizon_days=14,
        history_start=START,
        history_end=START + 40 * 86_400.0,
        source="synthetic",
    )


# --- splits -------------------------------------------------------------------------------


def test_every_account_is_in_exactly_one_split() -> None:
    data = synthetic_dataset()
    splits = split_accounts(data.accounts, seed=0)
    by_account: dict[str, set[int]] = {}
    for key, split in zip(data.accounts, splits, strict=True):
        by_account.setdefault(key, set()).add(int(split))
    assert all(len(s) == 1 for s in by_account.values())
    shares = np.bincount([next(iter(s)) for s in by_account.values()], minlength=3) / 300
    assert shares[TRAIN] == pytest.approx(0.6, abs=0.1)
    assert shares[CALIBRATION] == pytest.approx(0.2, abs=0.07)
    assert shares[HOLDOUT] == pytest.approx(0.2, abs=0.07)


def test_splits_are_stable_for_a_seed_and_change_with_it() -> None:
    keys = [f"t:acct-{i}" for i in range(200)]
    assert split_accounts(keys, 0).tolist() == split_accounts(keys, 0).tolist()
    assert split_accounts(keys, 0).tolist() != split_accounts(keys, 1).tolist()
    # an account's split does not depend on the other accounts
    assert split_accounts(keys[50:], 0).tolist() == split_accounts(keys, 0)[50:].tolist()


# --- the fit ------------------------------------------------------------------------------


def test_newton_reaches_the_regularised_optimum() -> None:
    data = synthetic_dataset()
    x = data.X[:, :2].astype(np.float64)
    y = data.y.astype(np.float64)
    l2 = 1e-2
    weights, intercept, iterations = fit_logistic(x, y, l2=l2)
    assert iterations < 20
    p = 1 / (1 + np.exp(-(x @ weights + intercept)))
    gradient = np.append(x.T @ (p - y) / len(y) + l2 * weights, np.mean(p - y))
    assert np.max(np.abs(gradient)) < 1e-9


def test_platt_recovers_the_identity_on_calibrated_scores() -> None:
    rng = np.random.default_rng(3)
    z = rng.normal(-1.0, 1.5, 50_000)
    labels = (rng.random(z.size) < 1 / (1 + np.exp(-z))).astype(np.int8)
    calibration = fit_platt(z, labels)
    assert calibration.scale == pytest.approx(1.0, abs=0.05)
    assert calibration.offset == pytest.approx(0.0, abs=0.05)
    assert calibration.rows == z.size and calibration.positives == int(labels.sum())


def test_platt_keeps_the_identity_on_a_single_class() -> None:
    calibration = fit_platt(np.array([0.1, 0.2]), np.array([0, 0], dtype=np.int8))
    assert (calibration.scale, calibration.offset, calibration.rows) == (1.0, 0.0, 0)


def test_train_finds_the_signal_and_keeps_a_constant_feature_neutral() -> None:
    trained = train(synthetic_dataset())
    a, b, c = trained.weights
    assert a > 0.8 and b < -0.4 and c == 0.0
    assert trained.std[2] == 1.0
    assert trained.metrics.roc_auc is not None and trained.metrics.roc_auc > 0.75
    assert trained.feature_version == "v-synthetic"
    assert trained.metrics.rows + trained.train_rows + trained.calibration.rows == 3000


def test_training_is_deterministic_down_to_the_file_bytes(tmp_path: Path) -> None:
    first = train(synthetic_dataset(), seed=4)
    second = train(synthetic_dataset(), seed=4)
    assert first == second
    save_model(first, tmp_path / "a")
    save_model(second, tmp_path / "b")
    for name in (MODEL_FILE, METADATA_FILE):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert train(synthetic_dataset(), seed=5).weights != first.weights


def test_a_single_class_cannot_train() -> None:
    data = synthetic_dataset(accounts=20)
    data = Dataset(**{**{f: getattr(data, f) for f in data.__dataclass_fields__},
                      "y": np.zeros_like(data.y)})
    with pytest.raises(TrainingError, match="both churned and retained") as caught:
        train(data)
    assert caught.value.positives == 0


# --- on simulated histories ---------------------------------------------------------------


@pytest.fixture(scope="module")
def simulated() -> dict[int, Observations]:
    """Observations of two independent simulated businesses (600 accounts, 60 days)."""
    config = account_config(Settings(), load_definitions())
    out = {}
    for seed in (1, 2):
        simulation = simulate(accounts=600, days=60, seed=seed)
        out[seed] = observe_history(
            (m.value for m in simulation.messages), config, EventLimits(), now=NOW,
            source=f"simulate(accounts=600, days=60, seed={seed})",
        )
    return out


def score_other_business(observations: dict[int, Observations], horizon_days: int,
                         directory: Path) -> float:
    """Train on seed 1, save, load with onnxruntime, score seed 2: its ROC AUC."""
    trained = train(label_observations(observations[1], horizon_days), seed=0)
    save_model(trained, directory)
    feature_set = load_definitions()
    model = load_model(directory, feature_set.version, feature_set.names)
    other = label_observations(observations[2], horizon_days)
    risk, _ = model.score(other.X)
    metrics = evaluate(other.y, risk, accounts=len(set(other.accounts)))
    assert metrics.roc_auc is not None
    return metrics.roc_auc


def test_model_ranks_churners_of_another_business(simulated: dict[int, Observations],
                                                  tmp_path: Path) -> None:
    """At a 14-day horizon. Measured: ROC AUC 0.86 (AP 0.57, top-decile lift 5.7).

    The horizon is 14 days, not the 28 of ``build_dataset``'s default, on
    purpose: in the simulator a disengaging account declines for 10-16 days
    before it cancels and a failing card is dunned for 1-9 days, so no event
    says anything earlier; see the 28-day test below.
    """
    assert score_other_business(simulated, 14, tmp_path) >= 0.80


@pytest.mark.xfail(
    strict=True,
    reason=(
        "28-day horizon: measured ROC AUC 0.725 on seed 2. About half of the positive rows "
        "lie before the simulated account shows any change (decline 10-16 days, dunning 1-9); "
        "an oracle that knows from the ground truth whether the decline or dunning has begun "
        "reaches only 0.80 on these rows. Longer-lead features or a shorter horizon move it."
    ),
)
def test_model_ranks_churners_28_days_ahead(simulated: dict[int, Observations],
                                            tmp_path: Path) -> None:
    assert score_other_business(simulated, 28, tmp_path) >= 0.80


def test_train_from_history_writes_a_loadable_reproducible_model(tmp_path: Path) -> None:
    history = tmp_path / "history.jsonl"
    write_jsonl(simulate(accounts=80, days=40, seed=5), history)
    trained = train_from_history(
        history, tmp_path / "model", config=CONFIG, limits=LIMITS, horizon_days=14, seed=0,
        now=NOW,
    )
    feature_set = load_definitions()
    model = load_model(tmp_path / "model", feature_set.version, feature_set.names)
    assert model.metadata.created_from.startswith("history.jsonl sha256:")
    assert model.metadata.horizon_days == 14
    assert model.metadata.coefficients == trained.weights
    window = model.metadata.training_window
    assert window.history_start >= datetime(2026, 9, 1, tzinfo=UTC)
    assert window.history_end - window.history_start < timedelta(days=40)
    again = train_from_history(
        history, tmp_path / "again", config=CONFIG, limits=LIMITS, horizon_days=14, seed=0,
        now=NOW,
    )
    assert again == trained
    for name in (MODEL_FILE, METADATA_FILE):
        assert (tmp_path / "model" / name).read_bytes() == (tmp_path / "again" / name).read_bytes()
