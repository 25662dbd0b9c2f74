"""Churn-risk scoring: training data, model training, ONNX export and the runtime model.

Runtime (numpy and onnxruntime only; what a stream operator imports)::

    model = load_model(directory, feature_set.version, feature_set.names)
    risk, contributions = model.score(matrix)        # [N, F] float32, one call
    reasons = model.top_reasons(contributions[i])    # ("login_trend low", ...)

Training (``onnx`` is needed only to save)::

    dataset = build_dataset(messages, account_config, limits, horizon_days=28)
    trained = train(dataset, seed=0)
    save_model(trained, directory)                    # model.onnx + metadata.json

Modules: ``dataset`` (history -> labelled rows, no leakage), ``metrics`` (ROC
AUC, average precision, lift), ``train`` (numpy logistic regression with Platt
calibration), ``onnx_export`` (the graph), ``model`` (load, score, explain),
``metadata`` (``metadata.json`` values), ``training_cli`` (file in, model out),
``errors``.

The training names are imported on first use: ``scoring.dataset`` builds on
``dataflows.account``, and a runtime import of ``scoring`` must stay light and
must not make ``dataflows`` and ``scoring`` import each other in a cycle once the
dataflow scores. No module here imports Bytewax at import time.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from scoring.errors import ModelFileError, ModelMismatchError, ScoringError, TrainingError
from scoring.metadata import Calibration, ModelMetadata, TrainingWindow
from scoring.metrics import Metrics, average_precision, roc_auc, top_decile_lift
from scoring.model import Direction, Reason, RiskModel, load_model, save_model

if TYPE_CHECKING:
    from scoring.dataset import (
        Dataset,
        Observations,
        build_dataset,
        label_observations,
        observe_history,
    )
    from scoring.train import TrainedModel, train
    from scoring.training_cli import train_from_history

_LAZY = {
    "Dataset": "scoring.dataset",
    "Observations": "scoring.dataset",
    "build_dataset": "scoring.dataset",
    "label_observations": "scoring.dataset",
    "observe_history": "scoring.dataset",
    "TrainedModel": "scoring.train",
    "train": "scoring.train",
    "train_from_history": "scoring.training_cli",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        msg = f"module 'scoring' has no attribute {name!r}"
        raise AttributeError(msg)
    return getattr(importlib.import_module(module), name)


__all__ = [
    "Calibration",
    "Dataset",
    "Direction",
    "Metrics",
    "ModelFileError",
    "ModelMetadata",
    "ModelMismatchError",
    "Observations",
    "Reason",
    "RiskModel",
    "ScoringError",
    "TrainedModel",
    "TrainingError",
    "TrainingWindow",
    "average_precision",
    "build_dataset",
    "label_observations",
    "load_model",
    "observe_history",
    "roc_auc",
    "save_model",
    "top_decile_lift",
    "train",
    "train_from_history",
]
