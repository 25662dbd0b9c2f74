"""Save a trained model: ``model.onnx`` and ``metadata.json``, deterministic and atomic.

``scoring.model.load_model`` reads what this writes; the file names and the
metadata format are the runtime's (``scoring.model``, ``scoring.metadata``).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import orjson

from scoring.metadata import ModelMetadata, TierThresholds, model_version_of
from scoring.model import METADATA_FILE, MODEL_FILE
from training.onnx_export import export_model
from training.train import TrainedModel
from training.trees import TrainedTrees


def metadata_for(
    trained: TrainedModel | TrainedTrees, model_bytes: bytes,
    tiers: TierThresholds | None = None,
) -> ModelMetadata:
    """The metadata of ``trained`` exported as ``model_bytes`` (with the tiers training
    chose, if any)."""
    common = ModelMetadata(
        model_version=model_version_of(model_bytes),
        feature_names=trained.feature_names,
        feature_version=trained.feature_version,
        horizon_days=trained.horizon_days,
        calibration=trained.calibration,
        training_window=trained.window,
        holdout_metrics=trained.metrics,
        created_from=trained.created_from,
        seed=int(trained.seed),
        tiers=tiers,
        transforms=tuple(str(t) for t in trained.transforms),
    )
    if isinstance(trained, TrainedTrees):
        return replace(common, intercept=float(trained.base), family="trees",
                       feature_means=trained.feature_means)
    return replace(common, coefficients=tuple(float(w) for w in trained.weights),
                   intercept=float(trained.bias), l2=float(trained.l2))


def _write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def save_model(
    trained: TrainedModel | TrainedTrees,
    directory: Path,
    tiers: TierThresholds | None = None,
) -> ModelMetadata:
    """Write ``model.onnx`` and ``metadata.json`` (sorted keys) into ``directory``;
    ``tiers``: the thresholds training chose (None: the service's fixed ones).

    Both files are deterministic: the same ``trained`` writes the same bytes.
    Each is replaced atomically; a reader that catches the pair mid-update
    sees a hash mismatch and refuses, never a silently mixed model.
    """
    model_bytes = export_model(trained)
    metadata = metadata_for(trained, model_bytes, tiers)
    directory.mkdir(parents=True, exist_ok=True)
    _write_atomically(directory / MODEL_FILE, model_bytes)
    document = orjson.dumps(
        metadata.to_document(), option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2
    )
    _write_atomically(directory / METADATA_FILE, document + b"\n")
    return metadata
