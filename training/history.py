"""Train a churn model from a JSONL history and save it (behind ``churnwatch train``).

The history is replayed with the stream's own per-account processing (see
:mod:`training.dataset`), so the model learns from exactly the feature values
the dataflow will hand it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from enum import StrEnum
from pathlib import Path

import numpy as np

from accounts.backfill import read_jsonl
from accounts.config import AccountConfig
from schemas.event import EventLimits
from scoring.metadata import ModelMetadata
from training.dataset import Dataset, build_dataset
from training.onnx_export import export_model
from training.save import save_model
from training.tiers import TierOptions, choose_tiers, exported_risks
from training.train import TRAIN, TrainedModel, split_accounts, train
from training.transforms import Transform, resolve_transforms
from training.trees import TrainedTrees, train_trees

log = logging.getLogger(__name__)


class ModelFamily(StrEnum):
    LOGISTIC = "logistic"
    TREES = "trees"


def describe_history(history: Path) -> str:
    """``"<file name> sha256:<first 16 hex>"``: names the data, not where it lay."""
    digest = hashlib.sha256()
    with history.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return f"{history.name} sha256:{digest.hexdigest()[:16]}"


def fit(
    dataset: Dataset,
    *,
    family: ModelFamily = ModelFamily.LOGISTIC,
    seed: int = 0,
    log1p: Sequence[str] = (),
    clip: Sequence[Transform] = (),
) -> TrainedModel | TrainedTrees:
    """Fit a model of ``family`` on ``dataset`` with the declared transforms."""
    transforms = resolve_transforms(dataset.feature_names, dataset.X, log1p=log1p, clip=clip)
    if family is ModelFamily.TREES:
        return train_trees(dataset, seed=seed, transforms=transforms)
    return train(dataset, seed=seed, transforms=transforms)


def save_with_tiers(
    trained: TrainedModel | TrainedTrees,
    dataset: Dataset,
    out_dir: Path,
    tiers: TierOptions,
) -> ModelMetadata:
    """Choose the tiers from the exported graph's own risks on ``dataset`` and save."""
    thresholds = None
    if not tiers.fixed:
        risks = exported_risks(export_model(trained), dataset.X)
        unfitted = split_accounts(dataset.accounts, trained.seed) != TRAIN
        thresholds = choose_tiers(tiers, risks, dataset.y, np.asarray(unfitted))
    return save_model(trained, out_dir, thresholds)


def train_from_history(
    history: Path,
    out_dir: Path,
    *,
    config: AccountConfig,
    limits: EventLimits,
    horizon_days: int,
    seed: int,
    now: datetime | None = None,
    family: ModelFamily = ModelFamily.LOGISTIC,
    log1p: Sequence[str] = (),
    clip: Sequence[Transform] = (),
    tiers: TierOptions | None = None,
    messages: Callable[[Path], Iterable[bytes]] = read_jsonl,
    stage: Callable[[str], None] = lambda name: None,
) -> TrainedModel | TrainedTrees:
    """Build the dataset of ``history``, train, save ``model.onnx`` and
    ``metadata.json`` into ``out_dir``, and return the trained model.

    ``config`` and ``limits`` are the stream's own (so the model learns from the
    feature values the dataflow will hand it); ``now`` is the clock of the
    future-time check (default: the wall clock). ``tiers``: how to set the model's
    tiers (default: by share, top 5 % high, next 15 % medium). ``messages`` reads the
    history (a progress display wraps it); ``stage`` hears each stage's name.
    """
    # A misspelt feature in --log1p / --clip is refused before the history is read.
    names = config.features.feature_set.names
    resolve_transforms(names, np.zeros((0, len(names)), dtype=np.float32), log1p=log1p,
                       clip=clip)
    stage("reading events")
    dataset = build_dataset(
        messages(history),
        config,
        limits,
        horizon_days=horizon_days,
        now=now,
        source=describe_history(history),
    )
    stage(f"fitting {family} model")
    trained = fit(dataset, family=family, seed=seed, log1p=log1p, clip=clip)
    stage("choosing tiers and saving")
    metadata = save_with_tiers(trained, dataset, out_dir, tiers or TierOptions())
    log.info(
        "trained model %s on %d rows (%d positives) of %s: holdout roc_auc=%s",
        metadata.model_version,
        dataset.rows,
        dataset.positives,
        dataset.source,
        trained.metrics.roc_auc,
    )
    return trained
