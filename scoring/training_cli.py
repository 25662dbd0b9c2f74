"""Train a churn model from a JSONL history and save it (behind ``churnwatch train``).

The history is replayed with the stream's own per-account processing (see
:mod:`scoring.dataset`), so the model learns from exactly the feature values
the dataflow will hand it.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime
from pathlib import Path

from churnwatch.settings import Settings
from dataflows.backfill import read_jsonl
from featurestore.definitions import load_definitions
from schemas.event import EventLimits
from scoring.dataset import build_dataset
from scoring.model import save_model
from scoring.train import TrainedModel, train

log = logging.getLogger(__name__)


def describe_history(history: Path) -> str:
    """``"<file name> sha256:<first 16 hex>"``: names the data, not where it lay."""
    digest = hashlib.sha256()
    with history.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return f"{history.name} sha256:{digest.hexdigest()[:16]}"


def train_from_history(
    history: Path,
    out_dir: Path,
    *,
    definitions: Path | None,
    horizon_days: int,
    seed: int,
    settings: Settings | None = None,
    now: datetime | None = None,
) -> TrainedModel:
    """Build the dataset of ``history``, train, save ``model.onnx`` and
    ``metadata.json`` into ``out_dir``, and return the trained model.

    ``definitions`` ``None`` means the settings' file (by default the shipped
    definitions); ``settings`` defaults to ``Settings()``; ``now`` is the clock
    of the future-time check (default: the wall clock).
    """
    # account_config lives beside the Bytewax runner; importing it here rather
    # than at module level keeps `import scoring.training_cli` engine-free.
    from dataflows.account import account_config

    settings = settings if settings is not None else Settings()
    feature_set = load_definitions(
        definitions if definitions is not None else settings.feature_definitions
    )
    config = account_config(settings, feature_set)
    limits = EventLimits(settings.max_message_bytes, settings.max_future_skew)
    dataset = build_dataset(
        read_jsonl(history),
        config,
        limits,
        horizon_days=horizon_days,
        now=now,
        source=describe_history(history),
    )
    trained = train(dataset, seed=seed)
    metadata = save_model(trained, out_dir)
    log.info(
        "trained model %s on %d rows (%d positives) of %s: holdout roc_auc=%s",
        metadata.model_version,
        dataset.rows,
        dataset.positives,
        dataset.source,
        trained.metrics.roc_auc,
    )
    return trained
