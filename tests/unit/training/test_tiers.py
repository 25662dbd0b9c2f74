"""Model-relative tiers: chosen by training from the model's own risks, stored in its
metadata, used by the service unless the settings fix them, moved by a reload."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import numpy as np
import orjson
import pytest

from churnwatch.settings import Settings
from churnwatch.wiring import risk_policy
from scoring.metadata import TierThresholds
from scoring.model import METADATA_FILE, load_model, read_metadata
from scoring.reload import ModelHolder
from scoring.risk import RiskPolicy
from tests.unit.training.test_train import synthetic_dataset
from training.errors import TrainingOptionError
from training.history import save_with_tiers
from training.tiers import TierOptions, tiers_by_precision, tiers_by_share
from training.train import train

SHIPPED = Path(__file__).resolve().parents[3] / "scoring" / "models" / "default"


def tier_shares(risks: np.ndarray, tiers: TierThresholds) -> tuple[float, float]:
    high = float((risks >= tiers.high_at).mean())
    medium = float(((risks >= tiers.medium_at) & (risks < tiers.high_at)).mean())
    return medium, high


@pytest.mark.parametrize(("high_share", "medium_share"), [(0.05, 0.15), (0.02, 0.1)])
def test_tiers_put_the_configured_share_of_the_training_history_in_each_tier(
    tmp_path: Path, high_share: float, medium_share: float
) -> None:
    data = synthetic_dataset(accounts=400, days=10)
    trained = train(data, seed=0)
    save_with_tiers(trained, data, tmp_path, TierOptions(high_share, medium_share))
    model = load_model(tmp_path, data.feature_version, data.feature_names)
    tiers = model.metadata.tiers
    assert tiers is not None and tiers.method == "share" and tiers.rows == data.rows
    # The service's own scores of the training history (onnxruntime, float32).
    risks, _ = model.score(data.X)
    medium, high = tier_shares(risks, tiers)
    n = data.rows
    assert high_share <= high <= high_share + 2 / n
    assert medium_share - 2 / n <= medium <= medium_share + 2 / n
    assert (tiers.medium_share, tiers.high_share) == pytest.approx((medium, high))


def test_tiers_by_share_on_hand_made_risks() -> None:
    risks = np.arange(100, 0, -1) / 100.0  # 1.00, 0.99, ... 0.01
    tiers = tiers_by_share(risks, high_share=0.05, medium_share=0.15)
    assert (tiers.high_at, tiers.medium_at) == (0.96, 0.81)
    assert (tiers.high_share, tiers.medium_share) == (0.05, 0.15)


def test_tiers_by_precision_pick_the_lowest_threshold_reaching_it() -> None:
    risks = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
    labels = np.array([1, 1, 0, 1, 0, 0, 1, 0, 0, 0])
    # precision at each cut, highest first: 1, 1, .67, .75, .6, .5, .57, .5, .44, .4
    tiers = tiers_by_precision(risks, labels, high_precision=0.7, medium_share=0.2)
    assert tiers.high_at == 0.6 and tiers.high_share == 0.4
    assert tiers.medium_at == 0.4 and tiers.medium_share == 0.2
    assert tiers_by_precision(risks, labels, high_precision=0.5, medium_share=0.1).high_at == 0.2
    with pytest.raises(TrainingOptionError, match=r"precision of 1 \(the best is 0.900\)"):
        tiers_by_precision(risks, np.ones(10) - np.eye(10)[0], high_precision=1.0)
    with pytest.raises(TrainingOptionError, match=r"best is 0\.000"):
        tiers_by_precision(risks, np.zeros(10), high_precision=0.5)


def test_precision_tiers_reach_the_precision_on_held_out_accounts(tmp_path: Path) -> None:
    data = synthetic_dataset(accounts=400, days=10)
    trained = train(data, seed=0)
    metadata = save_with_tiers(trained, data, tmp_path, TierOptions(high_precision=0.8))
    assert metadata.tiers is not None and metadata.tiers.method == "precision"
    assert metadata.tiers.high_precision == 0.8
    assert 0 < metadata.tiers.high_share < 0.5


def test_fixed_tiers_store_none_and_keep_the_metadata_format(tmp_path: Path) -> None:
    data = synthetic_dataset()
    metadata = save_with_tiers(train(data), data, tmp_path, TierOptions(fixed=True))
    assert metadata.tiers is None
    document = orjson.loads((tmp_path / METADATA_FILE).read_bytes())
    assert "tiers" not in document and "family" not in document


def test_bad_shares_are_refused() -> None:
    with pytest.raises(TrainingOptionError, match="add up"):
        tiers_by_share([0.1, 0.2], high_share=0.5, medium_share=0.6)
    with pytest.raises(TrainingOptionError, match="high share"):
        tiers_by_share([0.1, 0.2], high_share=0.0)


def test_the_shipped_model_carries_no_tiers() -> None:
    assert read_metadata(SHIPPED).tiers is None


# --- where the service takes its tiers from -------------------------------------------


@pytest.fixture
def tiered_model(tmp_path: Path) -> Path:
    data = synthetic_dataset(accounts=300, days=10)
    save_with_tiers(train(data), data, tmp_path / "model", TierOptions())
    return tmp_path / "model"


def test_settings_tiers_win_then_the_model_then_the_defaults(tiered_model: Path) -> None:
    data = synthetic_dataset()
    model = load_model(tiered_model, data.feature_version, data.feature_names)
    tiers = model.metadata.tiers
    assert tiers is not None
    from_model = risk_policy(Settings()).for_model(model)
    assert (from_model.medium_at, from_model.high_at) == (tiers.medium_at, tiers.high_at)
    fixed = risk_policy(Settings.from_env({"CHURNWATCH_RISK_TIERS": "0.3,0.6"})).for_model(model)
    assert (fixed.medium_at, fixed.high_at) == (0.3, 0.6)
    shipped = load_model(SHIPPED, *_shipped_features())
    default = risk_policy(Settings()).for_model(shipped)
    assert (default.medium_at, default.high_at) == (0.4, 0.7)


def _shipped_features() -> tuple[str, tuple[str, ...]]:
    from featurestore.definitions import load_definitions

    feature_set = load_definitions()
    return feature_set.version, feature_set.names


def test_unset_tiers_leave_no_variable_for_child_processes() -> None:
    assert not any(k.endswith("RISK_TIERS") for k in Settings().to_env())
    assert Settings.from_env(Settings(risk_tiers=(0.3, 0.6)).to_env()).risk_tiers == (0.3, 0.6)


def test_tiers_move_with_a_reloaded_model(tmp_path: Path) -> None:
    data = synthetic_dataset(accounts=300, days=10)
    directory = tmp_path / "live"
    save_with_tiers(train(data), data, directory, TierOptions(fixed=True))
    now = [0.0]
    holder = ModelHolder(directory, data.feature_version, data.feature_names,
                         check_seconds=10, settle_seconds=1, clock=lambda: now[0])
    policy = risk_policy(Settings())
    before = policy.for_model(holder.current())
    assert (before.medium_at, before.high_at) == (0.4, 0.7)
    # A retrained model (another seed) with tiers of its own replaces it.
    save_with_tiers(train(data, seed=1), data, directory, TierOptions(high_share=0.1))
    stamp = os.stat(directory / METADATA_FILE).st_mtime_ns
    os.utime(directory / METADATA_FILE, ns=(stamp, stamp + int(timedelta(seconds=5) / timedelta(
        microseconds=1)) * 1000))
    for moment in (10.0, 11.0):
        now[0] = moment
        holder.current()
    live = holder.current()
    assert live.metadata.tiers is not None
    after = policy.for_model(live)
    assert (after.medium_at, after.high_at) == (live.metadata.tiers.medium_at,
                                                live.metadata.tiers.high_at)
    assert after.high_at != before.high_at


def test_a_policy_with_fixed_tiers_ignores_the_model(tiered_model: Path) -> None:
    data = synthetic_dataset()
    model = load_model(tiered_model, data.feature_version, data.feature_names)
    policy = RiskPolicy(medium_at=0.2, high_at=0.5)
    assert policy.for_model(model) is policy


def test_bad_options_are_refused_before_the_history_is_read(tmp_path: Path) -> None:
    from churnwatch.wiring import account_config, event_limits
    from featurestore.definitions import load_definitions
    from training.history import train_from_history
    from training.transforms import parse_clip

    with pytest.raises(TrainingOptionError, match="add up"):
        TierOptions(high_share=0.5, medium_share=0.5)
    missing = tmp_path / "no-such-history.jsonl"  # never opened: the check comes first
    with pytest.raises(TrainingOptionError, match="no such feature"):
        train_from_history(missing, tmp_path / "m", config=account_config(
            Settings(), load_definitions()), limits=event_limits(Settings()), horizon_days=14,
            seed=0, clip=[parse_clip("logins:0:5")])


def test_rule_risks_keep_the_fixed_tiers_under_model_tiers(tmp_path: Path) -> None:
    """A decisive event's rule risk is on the fixed scale: low severity (0.3) stays low
    however low the model's high tier starts; high severity (0.9) is high."""
    from accounts.debounce import ScoreRequest
    from schemas.score import RiskTier
    from scoring.risk import score_batch

    data = synthetic_dataset()
    # half the rows high: the high tier starts near the median risk, about 0.2
    save_with_tiers(train(data), data, tmp_path, TierOptions(high_share=0.5, medium_share=0.3))
    model = load_model(tmp_path, data.feature_version, data.feature_names)
    tiers = model.metadata.tiers
    assert tiers is not None and tiers.high_at < 0.3  # the case that matters
    risks, _ = model.score(data.X)
    quiet = int(np.argmin(risks))  # a row the model calls low
    # a row high by the model's tiers, low by the fixed ones
    middling = int(np.flatnonzero((risks >= tiers.high_at) & (risks < 0.4))[0])
    values = tuple(float(v) for v in data.X[quiet])
    policy = risk_policy(Settings())
    low_rule, high_rule, none = score_batch([
        ScoreRequest("t", "a", values, 1_790_000_000.0, 0.3, "e1"),
        ScoreRequest("t", "b", values, 1_790_000_000.0, 0.9, "e2"),
        ScoreRequest("t", "c", tuple(float(v) for v in data.X[middling]),
                     1_790_000_000.0, 0.0, "e3"),
    ], model, policy)
    assert (low_rule.risk, low_rule.tier) == (0.3, RiskTier.LOW)
    assert high_rule.tier is RiskTier.HIGH
    assert none.tier is RiskTier.HIGH and none.risk < 0.4  # the model's own high tier
