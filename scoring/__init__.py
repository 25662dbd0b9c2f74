"""Runtime churn-risk scoring: load a model, score batches, blend risks, tier them.

Numpy and onnxruntime only (what a stream operator imports)::

    model = load_model(directory, feature_set.version, feature_set.names)
    risk, contributions = model.score(matrix)        # [N, F] float32, one call
    reasons = model.top_reasons(contributions[i])    # ("login_trend low", ...)
    scores = score_batch(requests, model, policy)    # RiskScore per ScoreRequest

Modules: ``model`` (load, score, explain), ``metadata`` (``metadata.json``
values), ``reload`` (the live model, re-read when its directory changes),
``evaluation`` (ROC AUC, average precision, lift: the quality a
model's metadata records), ``risk`` (blend, tiers, tier-rise alerts),
``errors``. Training (datasets, fitting, export, saving) is the ``training``
package; no module here imports Bytewax or onnx.
"""

from scoring.errors import ModelFileError, ModelMismatchError, ScoringError
from scoring.evaluation import Metrics, average_precision, roc_auc, top_decile_lift
from scoring.metadata import Calibration, ModelMetadata, TrainingWindow
from scoring.model import Direction, Reason, RiskModel, load_model
from scoring.reload import ModelHolder, live_model
from scoring.risk import Blend, RiskPolicy, RiskTierTracker, score_batch

__all__ = [
    "Blend",
    "Calibration",
    "Direction",
    "Metrics",
    "ModelFileError",
    "ModelHolder",
    "ModelMetadata",
    "ModelMismatchError",
    "Reason",
    "RiskModel",
    "RiskPolicy",
    "RiskTierTracker",
    "ScoringError",
    "TrainingWindow",
    "average_precision",
    "live_model",
    "load_model",
    "roc_auc",
    "score_batch",
    "top_decile_lift",
]
