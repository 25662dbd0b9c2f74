"""Save a trained model: ``model.onnx`` and ``metadata.json``, deterministic and atomic.

``scoring.model.load_model`` reads what this writes; the file names and the
metadata format are the runtime's (``scoring.model``, ``scoring.metadata``).
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson

from scoring.metadata import ModelMetadata, model_version_of
from scoring.model import METADATA_FILE, MODEL_FILE
from training.onnx_export import export_onnx
from training.train import TrainedModel


def metadata_for(trained: TrainedModel, model_bytes: bytes) -> ModelMetadata:
    """The metadata of ``trained`` exported as ``model_bytes``."""
    return ModelMetadata(
        model_version=model_version_of(model_bytes),
        feature_names=trained.feature_names,
        feature_version=trained.feature_version,
        horizon_days=trained.horizon_days,
        calibration=trained.calibration,
        training_window=trained.window,
        holdout_metrics=trained.metrics,
        created_from=trained.created_from,
        coefficients=tuple(float(w) for w in trained.weights),
        intercept=float(trained.bias),
        seed=int(trained.seed),
        l2=float(trained.l2),
    )


def _write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def save_model(trained: TrainedModel, directory: Path) -> ModelMetadata:
    """Write ``model.onnx`` and ``metadata.json`` (sorted keys) into ``directory``.

    Both files are deterministic: the same ``trained`` writes the same bytes.
    Each is replaced atomically; a reader that catches the pair mid-update
    sees a hash mismatch and refuses, never a silently mixed model.
    """
    model_bytes = export_onnx(trained)
    metadata = metadata_for(trained, model_bytes)
    directory.mkdir(parents=True, exist_ok=True)
    _write_atomically(directory / MODEL_FILE, model_bytes)
    document = orjson.dumps(
        metadata.to_document(), option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2
    )
    _write_atomically(directory / METADATA_FILE, document + b"\n")
    return metadata
