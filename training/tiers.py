"""Tier thresholds relative to a model: from its own risks on the training history.

Fixed risk levels (0.4 / 0.7) suit a model whose calibrated risks reach them; a
product with a low churn rate has calibrated risks that rarely do, and then its
riskiest accounts never reach the high tier. Training therefore sets the tiers
from the model's own score distribution and stores them in its metadata
(:class:`~scoring.metadata.TierThresholds`); the service uses them unless the
settings fix the tiers (``CHURNWATCH_RISK_TIERS``).

- by share (the default): high = the top ``high_share`` of the account-days,
  medium = the next ``medium_share``. Counted on every labelled row of the
  history, scored by the exported graph itself (float32, as the service scores),
  so ``risk >= high_at`` holds for that share of them (more only where risks tie
  at the cut).
- by precision: high = the lowest risk whose high-tier alerts are at least
  ``high_precision`` precise, measured on the rows of accounts the model was not
  fitted on (on fitted rows, a tree model's precision is optimistic); medium =
  the next ``medium_share`` below it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from scoring.metadata import TierThresholds
from training.errors import TrainingOptionError

DEFAULT_HIGH_SHARE = 0.05
DEFAULT_MEDIUM_SHARE = 0.15


def _check_share(name: str, value: float) -> None:
    if not 0.0 < value < 1.0:
        msg = f"{name} must be in (0, 1), got {value}"
        raise TrainingOptionError(msg)


def _risk_at_rank(sorted_desc: npt.NDArray[np.float64], share: float) -> float:
    """The risk of the ``ceil(share * n)``-th riskiest row: at least that share is at
    or above it."""
    # less a whisker: 0.4 + 0.2 of 10 rows is 6.000000000000001, and means 6
    k = min(max(math.ceil(share * sorted_desc.size - 1e-9), 1), sorted_desc.size)
    return float(sorted_desc[k - 1])


def tiers_by_share(
    risks: npt.ArrayLike,
    *,
    high_share: float = DEFAULT_HIGH_SHARE,
    medium_share: float = DEFAULT_MEDIUM_SHARE,
) -> TierThresholds:
    """High = the top ``high_share`` of ``risks``, medium = the next ``medium_share``."""
    _check_share("high share", high_share)
    _check_share("medium share", medium_share)
    if high_share + medium_share >= 1.0:
        msg = f"high and medium shares must add up to less than 1, got {high_share + medium_share}"
        raise TrainingOptionError(msg)
    r = np.sort(np.asarray(risks, dtype=np.float64).ravel())[::-1]
    if r.size == 0:
        msg = "no rows to set the tiers on"
        raise TrainingOptionError(msg)
    high_at = _risk_at_rank(r, high_share)
    medium_at = min(_risk_at_rank(r, high_share + medium_share), high_at)
    return _thresholds(r, medium_at, high_at, "share", None)


def tiers_by_precision(
    risks: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    high_precision: float,
    medium_share: float = DEFAULT_MEDIUM_SHARE,
) -> TierThresholds:
    """High = the lowest risk at which the rows at or above it are at least
    ``high_precision`` positive; medium = the next ``medium_share`` of rows below."""
    if not 0.0 < high_precision <= 1.0:
        msg = f"high precision must be in (0, 1], got {high_precision}"
        raise TrainingOptionError(msg)
    _check_share("medium share", medium_share)
    r = np.asarray(risks, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel().astype(bool)
    order = np.argsort(-r, kind="mergesort")
    r_sorted, y_sorted = r[order], y[order]
    # Cut only between distinct risks: the last row of each tie group.
    ends = np.concatenate((np.flatnonzero(np.diff(r_sorted)), [r_sorted.size - 1]))
    if r_sorted.size == 0:
        msg = "no rows to set the tiers on"
        raise TrainingOptionError(msg)
    precision = np.cumsum(y_sorted)[ends] / (ends + 1)
    reached = np.flatnonzero(precision >= high_precision)
    if reached.size == 0:
        best = float(precision.max())
        msg = (f"no threshold reaches a high-tier precision of {high_precision:g} "
               f"(the best is {best:.3f}): lower --high-precision")
        raise TrainingOptionError(msg)
    cut = int(ends[reached[-1]])
    high_at = float(r_sorted[cut])
    high_share = (cut + 1) / r_sorted.size
    medium_at = min(_risk_at_rank(r_sorted, min(high_share + medium_share, 1.0)), high_at)
    return _thresholds(np.sort(r)[::-1], medium_at, high_at, "precision", high_precision)


def _thresholds(
    sorted_desc: npt.NDArray[np.float64], medium_at: float, high_at: float, method: str,
    high_precision: float | None,
) -> TierThresholds:
    n = sorted_desc.size
    high = int((sorted_desc >= high_at).sum())
    medium = int((sorted_desc >= medium_at).sum()) - high
    return TierThresholds(
        medium_at=medium_at,
        high_at=high_at,
        method=method,
        rows=n,
        medium_share=medium / n,
        high_share=high / n,
        high_precision=high_precision,
    )


@dataclass(frozen=True, slots=True)
class TierOptions:
    """How training sets a model's tiers (``churnwatch train`` flags).

    ``fixed``: set none (the service then uses the settings' or 0.4 / 0.7);
    ``high_precision``: by precision, else by ``high_share``.
    """

    high_share: float = DEFAULT_HIGH_SHARE
    medium_share: float = DEFAULT_MEDIUM_SHARE
    high_precision: float | None = None
    fixed: bool = False

    def __post_init__(self) -> None:
        """Refuse impossible options at once, not after reading a history."""
        if self.fixed:
            return
        _check_share("medium share", self.medium_share)
        if self.high_precision is not None:
            if not 0.0 < self.high_precision <= 1.0:
                msg = f"high precision must be in (0, 1], got {self.high_precision}"
                raise TrainingOptionError(msg)
            return
        _check_share("high share", self.high_share)
        if self.high_share + self.medium_share >= 1.0:
            msg = (f"high and medium shares must add up to less than 1, got "
                   f"{self.high_share + self.medium_share}")
            raise TrainingOptionError(msg)


def exported_risks(model_bytes: bytes, features: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """The risks the exported graph gives ``features``, by onnxruntime as the service
    scores (float32), so thresholds sit exactly on the scores they will be compared with."""
    import onnxruntime as ort

    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    x = np.ascontiguousarray(features, dtype=np.float32)
    if x.shape[0] == 0:
        return np.empty(0, dtype=np.float32)
    risk = session.run(["risk"], {"features": x})[0]
    return np.asarray(risk, dtype=np.float32).reshape(-1)


def choose_tiers(
    options: TierOptions,
    risks: npt.NDArray[np.float32],
    labels: npt.ArrayLike,
    unfitted: npt.NDArray[np.bool_],
) -> TierThresholds | None:
    """The thresholds ``options`` ask for, from the model's ``risks`` on every labelled
    row (``unfitted``: the rows of accounts it was not fitted on, for precision)."""
    if options.fixed:
        return None
    if options.high_precision is not None:
        return tiers_by_precision(
            risks[unfitted], np.asarray(labels)[unfitted],
            high_precision=options.high_precision, medium_share=options.medium_share,
        )
    return tiers_by_share(risks, high_share=options.high_share,
                          medium_share=options.medium_share)
