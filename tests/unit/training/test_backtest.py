"""``churnwatch evaluate``: the backtest against metrics computed by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
import pytest

from churnwatch.cli import main
from featurestore.definitions import load_definitions
from scoring.evaluation import Metrics
from scoring.metadata import Calibration, TrainingWindow
from tests.builders import event_bytes
from training.backtest import cross_fitted_baseline, tier_outcome
from training.dataset import Dataset
from training.save import save_model
from training.train import TrainedModel

DAY0 = datetime(2026, 8, 1, tzinfo=UTC)  # in the past: future events are refused
DAY = 86_400.0


def test_tier_outcome_by_hand() -> None:
    at = DAY0.timestamp()
    accounts = ("t:a", "t:a", "t:a", "t:b", "t:b", "t:c", "t:c", "t:d")
    observed = np.array([at, at + 7 * DAY, at + 14 * DAY, at, at + 7 * DAY, at, at + 7 * DAY,
                         at])
    labels = np.array([0, 1, 1, 0, 1, 0, 0, 0], dtype=np.int8)
    risks = np.array([0.9, 0.5, 0.95, 0.1, 0.2, 0.8, 0.9, 0.3])
    cancellations = {"t:a": at + 20 * DAY, "t:b": at + 10 * DAY}
    outcome = tier_outcome(accounts, observed, labels, risks, cancellations, high_at=0.8)
    # high rows: a@0 (label 0), a@14 (1), c@0 (0), c@7 (0): 4 alerts, 1 followed by churn
    assert outcome.alerts == 4 and outcome.precision == 0.25
    # churned: a (caught at day 14, on a labelled row: its day-0 high is 20 days before),
    # b (never high)
    assert (outcome.churned_accounts, outcome.caught_accounts, outcome.recall) == (2, 1, 0.5)
    assert outcome.median_lead_days == 6.0


def test_the_baseline_never_scores_a_row_with_a_fit_that_saw_its_account() -> None:
    rng = np.random.default_rng(0)
    n = 600
    accounts = tuple(f"t:{i // 6}" for i in range(n))
    x = rng.normal(size=(n, 2))
    y = (rng.random(n) < 1 / (1 + np.exp(-2 * x[:, 0]))).astype(np.int8)
    data = Dataset(X=x.astype(np.float32), y=y, accounts=accounts,
                   observed_at=np.zeros(n), feature_names=("x0", "x1"), feature_version="v",
                   horizon_days=28, history_start=0.0, history_end=1.0)
    first = cross_fitted_baseline(data, x)
    # Changing one account's labels moves no score of that account.
    flipped = np.array(y)
    mine = np.array([a == "t:0" for a in accounts])
    flipped[mine] = 1 - flipped[mine]
    second = cross_fitted_baseline(
        Dataset(X=data.X, y=flipped, accounts=accounts, observed_at=data.observed_at,
                feature_names=data.feature_names, feature_version="v", horizon_days=28,
                history_start=0.0, history_end=1.0), x)
    np.testing.assert_array_equal(first[mine], second[mine])
    assert not np.array_equal(first[~mine], second[~mine])


def inactivity_model(directory: Path) -> None:
    """Risk rises with days_since_last_activity alone: sigmoid(d - 3)."""
    feature_set = load_definitions()
    names = feature_set.names
    weights = tuple(1.0 if n == "days_since_last_activity" else 0.0 for n in names)
    save_model(TrainedModel(
        feature_names=names, feature_version=feature_set.version, weights=weights, bias=-3.0,
        mean=(0.0,) * len(names), std=(1.0,) * len(names), calibration=Calibration(),
        metrics=Metrics(1, 1, 0, None, None, None, None, None, None),
        window=TrainingWindow(DAY0, DAY0, DAY0, DAY0), horizon_days=14, seed=0, l2=0.0,
        iterations=0, train_rows=0, train_accounts=0, created_from="hand-made"), directory)


def tiny_history(path: Path) -> None:
    """a logs in on days 0-19 and cancels on day 30; b and c log in on days 0-69."""
    lines = []
    for account, last_day in (("a", 19), ("b", 69), ("c", 69)):
        for day in range(last_day + 1):
            at = DAY0 + timedelta(days=day, hours=12)
            lines.append(event_bytes(event_id=f"{account}-{day}", tenant_id="t",
                                     account_id=account, event_time=at.isoformat()))
    lines.append(event_bytes(event_id="a-cancel", tenant_id="t", account_id="a",
                             event_type="subscription.cancelled",
                             event_time=(DAY0 + timedelta(days=30, hours=12)).isoformat()))
    lines.sort(key=lambda line: orjson.loads(line)["event_time"])
    path.write_bytes(b"\n".join(lines) + b"\n")


def test_evaluate_on_a_tiny_history_against_hand_computed_metrics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    tiny_history(tmp_path / "events.jsonl")
    inactivity_model(tmp_path / "model")
    monkeypatch.setenv("CHURNWATCH_RISK_TIERS", "0.1,0.15")
    code = main(["evaluate", "--events", str(tmp_path / "events.jsonl"), "--model",
                 str(tmp_path / "model"), "--horizon-days", "14", "--every", "7d",
                 "--from", "2026-08-08", "--format", "json", "--baseline"])
    assert code == 0
    report = orjson.loads(capsys.readouterr().out)
    model, baseline = report["results"]
    # Dates Aug 8, 15, ... (midnight, the end of the day before). a: Aug 8 and 15 (no
    # cancellation within 14 days: 0), Aug 22 and 29 (1); after Aug 31 dropped. b, c:
    # Aug 8 .. Sep 19 (7 each, 0); Sep 26 + 14 days passes the history's end (Oct 9 noon).
    metrics = model["metrics"]
    assert (metrics["rows"], metrics["positives"], metrics["accounts"]) == (18, 2, 3)
    assert metrics["base_rate"] == pytest.approx(2 / 18)
    # a's two silent rows (1.5 and 8.5 days without activity) outrank every other row,
    # which all sit at half a day: a perfect ranking; the top decile (2 rows) is both.
    assert metrics["roc_auc"] == 1.0 and metrics["average_precision"] == 1.0
    assert metrics["top_decile_lift"] == pytest.approx(9.0)
    high = model["high_tier"]
    # sigmoid(1.5 - 3) = 0.18 and sigmoid(8.5 - 3) = 0.996 are high; sigmoid(0.5 - 3) = 0.076
    assert (high["high_at"], high["alerts"], high["precision"]) == (0.15, 2, 1.0)
    assert (high["churned_accounts"], high["caught_accounts"], high["recall"]) == (1, 1, 1.0)
    # first high: Aug 22 00:00; cancelled Aug 31 12:00
    assert high["median_lead_days"] == pytest.approx(9.5)
    assert report["first_date"].startswith("2026-08-08")
    assert baseline["name"] == "baseline" and baseline["metrics"]["rows"] == 18
    assert baseline["high_tier"]["alerts"] >= 2  # the same share of rows as the model's


def test_evaluate_text_shows_the_model_and_baseline_side_by_side(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    tiny_history(tmp_path / "events.jsonl")
    inactivity_model(tmp_path / "model")
    assert main(["evaluate", "--events", str(tmp_path / "events.jsonl"), "--model",
                 str(tmp_path / "model"), "--horizon-days", "14", "--baseline"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[1]
    assert "model " in header and "baseline" in header
    for label in ("ROC AUC", "average precision", "top-decile lift", "base rate",
                  "alert precision", "recall (accounts)", "median lead (days)"):
        assert label in out


def test_evaluate_says_when_the_history_is_too_short(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "events.jsonl").write_bytes(event_bytes() + b"\n")
    inactivity_model(tmp_path / "model")
    code = main(["evaluate", "--events", str(tmp_path / "events.jsonl"), "--model",
                 str(tmp_path / "model")])
    assert code == 1
    assert "no labelled observation" in capsys.readouterr().err


def test_the_baseline_can_be_fitted_on_another_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    tiny_history(tmp_path / "events.jsonl")
    tiny_history(tmp_path / "training.jsonl")
    inactivity_model(tmp_path / "model")
    assert main(["evaluate", "--events", str(tmp_path / "events.jsonl"), "--model",
                 str(tmp_path / "model"), "--horizon-days", "14", "--format", "json",
                 "--baseline-history", str(tmp_path / "training.jsonl")]) == 0
    model, other = orjson.loads(capsys.readouterr().out)["results"]
    assert other["name"] == "baseline (training.jsonl)"
    assert other["metrics"]["rows"] == model["metrics"]["rows"]
    assert other["metrics"]["roc_auc"] is not None
    # its high tier: the same share of rows as the model's (a's Aug 29 row, 8.5 days silent)
    assert model["high_tier"]["alerts"] == 1 and other["high_tier"]["alerts"] >= 1
