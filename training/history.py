"""Train a churn model from a JSONL history and save it (behind ``churnwatch train``).

The history is replayed with the stream's own per-account processing (see
:mod:`training.dataset`), so the model learns from exactly the feature values
the dataflow will hand it.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime
from pathlib import Path

from accounts.backfill import read_jsonl
from accounts.config import AccountConfig
from schemas.event import EventLimits
from training.dataset import build_dataset
from training.save import save_model
from training.train import TrainedModel, train

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
    config: AccountConfig,
    limits: EventLimits,
    horizon_days: int,
    seed: int,
    now: datetime | None = None,
) -> TrainedModel:
    """Build the dataset of ``history``, train, save ``model.onnx`` and
    ``metadata.json`` into ``out_dir``, and return the trained model.

    ``config`` and ``limits`` are the stream's own (so the model learns from the
    feature values the dataflow will hand it); ``now`` is the clock of the
    future-time check (default: the wall clock).
    """
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
