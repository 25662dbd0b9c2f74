"""What a saved model says about itself: ``metadata.json`` as frozen values.

Pure values and their JSON form, no numpy and no onnxruntime, so the training
side (which writes it) and the runtime (which checks it before scoring) share
one definition. ``model_version`` is derived from the model bytes, so two
trainings that produce the same file carry the same version.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from schemas.event import format_time
from scoring.evaluation import Metrics

METADATA_FORMAT = 1


def model_version_of(model_bytes: bytes) -> str:
    """The first 16 hex digits of the SHA-256 of the ONNX file."""
    return hashlib.sha256(model_bytes).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Calibration:
    """Platt scaling of the raw logit ``z``: ``risk = sigmoid(scale * z + offset)``.

    ``rows`` and ``positives`` are the calibration split it was fitted on (0
    rows: the split had a single class and the identity was kept).
    """

    scale: float = 1.0
    offset: float = 0.0
    rows: int = 0
    positives: int = 0

    def to_document(self) -> dict[str, Any]:
        return {"scale": self.scale, "offset": self.offset, "rows": self.rows,
                "positives": self.positives}

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> Calibration:
        return cls(float(document["scale"]), float(document["offset"]),
                   int(document["rows"]), int(document["positives"]))


@dataclass(frozen=True, slots=True)
class TrainingWindow:
    """The event time the training data covers, and its first and last observation."""

    history_start: datetime
    history_end: datetime
    first_observation: datetime
    last_observation: datetime

    @classmethod
    def from_epoch(cls, history_start: float, history_end: float, first_observation: float,
                   last_observation: float) -> TrainingWindow:
        return cls(*(datetime.fromtimestamp(t, UTC) for t in
                     (history_start, history_end, first_observation, last_observation)))

    def to_document(self) -> dict[str, str]:
        return {
            "history_start": format_time(self.history_start),
            "history_end": format_time(self.history_end),
            "first_observation": format_time(self.first_observation),
            "last_observation": format_time(self.last_observation),
        }

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> TrainingWindow:
        return cls(*(datetime.fromisoformat(document[name]).astimezone(UTC) for name in
                     ("history_start", "history_end", "first_observation", "last_observation")))


@dataclass(frozen=True, slots=True)
class TierThresholds:
    """Where a model's medium and high tiers begin, set by training from the model's own
    risks (``training.tiers``): ``risk >= high_at`` is high, ``>= medium_at`` medium.

    ``method`` is how they were chosen: ``share`` (high = the top ``high_share`` of
    the training history's account-days, medium = the next ``medium_share``) or
    ``precision`` (high = the lowest risk whose alerts were at least
    ``high_precision`` precise on the rows the model was not fitted on). ``rows`` is
    how many account-days they were chosen on; ``shares`` what share of them landed
    in medium and high.
    """

    medium_at: float
    high_at: float
    method: str
    rows: int
    medium_share: float
    high_share: float
    high_precision: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.medium_at <= self.high_at <= 1.0:
            msg = f"need 0 <= medium_at <= high_at <= 1, got {self.medium_at}, {self.high_at}"
            raise ValueError(msg)

    def to_document(self) -> dict[str, Any]:
        return {"medium_at": self.medium_at, "high_at": self.high_at, "method": self.method,
                "rows": self.rows, "medium_share": self.medium_share,
                "high_share": self.high_share, "high_precision": self.high_precision}

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> TierThresholds:
        precision = document.get("high_precision")
        return cls(float(document["medium_at"]), float(document["high_at"]),
                   str(document["method"]), int(document["rows"]),
                   float(document["medium_share"]), float(document["high_share"]),
                   None if precision is None else float(precision))


@dataclass(frozen=True, slots=True)
class ModelMetadata:
    """Everything a deployment needs to know about a model before it scores with it.

    ``coefficients`` (one per feature, on the standardised scale, in
    ``feature_names`` order) and ``intercept`` are informational: the ONNX file
    is what scores.
    """

    model_version: str
    feature_names: tuple[str, ...]
    feature_version: str
    horizon_days: int
    calibration: Calibration
    training_window: TrainingWindow
    holdout_metrics: Metrics
    created_from: str
    coefficients: tuple[float, ...] = ()
    intercept: float = 0.0
    seed: int = 0
    l2: float = 0.0
    # Written only when set, so a model trained without them keeps its metadata bytes:
    # the tiers training chose (None: the settings' fixed ones), the model family, the
    # feature transforms inside the graph (informational, as ``coefficients``), and each
    # feature's training mean (reasons of a tree model say "high" above it, "low" below).
    tiers: TierThresholds | None = None
    family: str = "logistic"
    transforms: tuple[str, ...] = ()
    feature_means: tuple[float, ...] = ()

    def to_document(self) -> dict[str, Any]:
        document = self._base_document()
        if self.tiers is not None:
            document["tiers"] = self.tiers.to_document()
        if self.family != "logistic":
            document["family"] = self.family
        if self.transforms:
            document["transforms"] = list(self.transforms)
        if self.feature_means:
            document["feature_means"] = dict(
                zip(self.feature_names, self.feature_means, strict=True)
            )
        return document

    def _base_document(self) -> dict[str, Any]:
        return {
            "format": METADATA_FORMAT,
            "model_version": self.model_version,
            "feature_names": list(self.feature_names),
            "feature_version": self.feature_version,
            "horizon_days": self.horizon_days,
            "calibration": self.calibration.to_document(),
            "training_window": self.training_window.to_document(),
            "holdout_metrics": self.holdout_metrics.to_document(),
            "created_from": self.created_from,
            # none for a tree model
            "coefficients": dict(zip(self.feature_names, self.coefficients, strict=True))
            if self.coefficients else {},
            "intercept": self.intercept,
            "seed": self.seed,
            "l2": self.l2,
        }

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> ModelMetadata:
        """Parse ``metadata.json``; ``KeyError``, ``ValueError`` or ``TypeError`` if malformed."""
        if document.get("format") != METADATA_FORMAT:
            msg = f"unsupported metadata format {document.get('format')!r}"
            raise ValueError(msg)
        names = tuple(str(n) for n in document["feature_names"])
        coefficients = document["coefficients"]
        tiers = document.get("tiers")
        means = document.get("feature_means") or {}
        return cls(
            model_version=str(document["model_version"]),
            feature_names=names,
            feature_version=str(document["feature_version"]),
            horizon_days=int(document["horizon_days"]),
            calibration=Calibration.from_document(document["calibration"]),
            training_window=TrainingWindow.from_document(document["training_window"]),
            holdout_metrics=Metrics.from_document(document["holdout_metrics"]),
            created_from=str(document["created_from"]),
            coefficients=tuple(float(coefficients[n]) for n in names) if coefficients else (),
            intercept=float(document["intercept"]),
            seed=int(document["seed"]),
            l2=float(document["l2"]),
            tiers=None if tiers is None else TierThresholds.from_document(tiers),
            family=str(document.get("family", "logistic")),
            transforms=tuple(str(t) for t in document.get("transforms", ())),
            feature_means=tuple(float(means[n]) for n in names) if means else (),
        )
