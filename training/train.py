"""Train the churn model: L2 logistic regression, Platt calibration, holdout metrics.

numpy only, deterministic: the same dataset and seed give the same weights to
the last bit (on the same numpy build), so a retrained model file is
byte-identical and keeps its ``model_version``.

Rows are split by account, never by row: an account's days are strongly
alike, so rows of one account on both sides of a split would let the model be
graded on what it has already seen. Each account goes to a split by a hash of
``seed`` and its key, so the split is stable across runs and machines.

- train (60 %): features standardised with this split's mean and standard
  deviation (a constant feature keeps scale 1); weights by Newton's method
  (IRLS) on the mean log-loss plus ``l2/2 * |w|^2`` (intercept not penalised),
  with step halving and a fixed iteration budget.
- calibration (20 %): Platt scaling ``sigmoid(a * z + b)`` of the raw logit
  ``z``, fitted with Platt's smoothed targets.
- holdout (20 %): ROC AUC, average precision, top-decile lift, Brier, log-loss
  of the calibrated risk.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from scoring.evaluation import Metrics, evaluate
from scoring.metadata import Calibration, TrainingWindow
from training.dataset import Dataset
from training.errors import TrainingError
from training.transforms import Transform, apply_transforms

TRAIN, CALIBRATION, HOLDOUT = 0, 1, 2
MAX_ITERATIONS = 50
# Newton steps smaller than this (largest coordinate) end the fit early.
TOLERANCE = 1e-10

Float64Array = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class TrainedModel:
    """A fitted model: standardisation, weights, calibration and how it fared.

    ``risk = sigmoid(a * (((x - mean) / std) . weights + bias) + b)`` with
    ``(a, b) = (calibration.scale, calibration.offset)``.
    """

    feature_names: tuple[str, ...]
    feature_version: str
    weights: tuple[float, ...]
    bias: float
    mean: tuple[float, ...]
    std: tuple[float, ...]
    calibration: Calibration
    metrics: Metrics  # on the holdout split
    window: TrainingWindow
    horizon_days: int
    seed: int
    l2: float
    iterations: int
    train_rows: int
    train_accounts: int
    created_from: str
    # Applied to the raw features before standardising (inside the ONNX graph too).
    transforms: tuple[Transform, ...] = ()

    def standardize(self, features: npt.ArrayLike) -> Float64Array:
        """``(transformed - mean) / std`` per row (raw features in)."""
        if self.transforms:
            features = apply_transforms(self.feature_names, self.transforms, features)
        x = np.asarray(features, dtype=np.float64)
        return (x - np.asarray(self.mean)) / np.asarray(self.std)

    def raw_logit(self, features: npt.ArrayLike) -> Float64Array:
        """The uncalibrated score ``z`` per row."""
        return self.standardize(features) @ np.asarray(self.weights) + self.bias

    def predict(self, features: npt.ArrayLike) -> Float64Array:
        """Calibrated churn risk per row, in [0, 1]."""
        z = self.raw_logit(features)
        return _sigmoid(self.calibration.scale * z + self.calibration.offset)

    def contributions(self, features: npt.ArrayLike) -> Float64Array:
        """Per row and feature, standardised value times weight (sums to ``z - bias``)."""
        return self.standardize(features) * np.asarray(self.weights)


def _sigmoid(z: Float64Array) -> Float64Array:
    return np.exp(-np.logaddexp(0.0, -z))


def split_of(account: str, seed: int, calibration_fraction: float,
             holdout_fraction: float) -> int:
    """Which split an account belongs to: TRAIN, CALIBRATION or HOLDOUT."""
    digest = hashlib.sha256(f"{seed}:{account}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    if u < holdout_fraction:
        return HOLDOUT
    if u < holdout_fraction + calibration_fraction:
        return CALIBRATION
    return TRAIN


def split_accounts(accounts: Sequence[str], seed: int, *, calibration_fraction: float = 0.2,
                   holdout_fraction: float = 0.2) -> npt.NDArray[np.int8]:
    """The split of each row, decided once per distinct account."""
    decided: dict[str, int] = {}
    out = np.empty(len(accounts), dtype=np.int8)
    for i, account in enumerate(accounts):
        split = decided.get(account)
        if split is None:
            split = decided[account] = split_of(
                account, seed, calibration_fraction, holdout_fraction
            )
        out[i] = split
    return out


def fit_logistic(
    design: Float64Array,
    targets: Float64Array,
    *,
    l2: float,
    max_iterations: int = MAX_ITERATIONS,
) -> tuple[Float64Array, float, int]:
    """Newton/IRLS for ``mean(log-loss) + l2/2 |w|^2``; targets may be soft (in [0, 1]).

    Returns ``(weights, intercept, iterations)``. Each Newton step is halved
    until the objective does not rise, so the fit cannot diverge on nearly
    separable data.
    """
    n, f = design.shape
    a = np.hstack([design, np.ones((n, 1))])
    penalty = np.full(f + 1, l2)
    penalty[-1] = 0.0
    # A whisker on the diagonal keeps the Hessian invertible on degenerate data.
    ridge = np.diag(penalty + 1e-12)

    def objective(beta: Float64Array) -> float:
        z = a @ beta
        return float(np.mean(np.logaddexp(0.0, z) - targets * z) + 0.5 * penalty @ (beta * beta))

    beta = np.zeros(f + 1)
    current = objective(beta)
    iterations = 0
    for iterations in range(1, max_iterations + 1):  # noqa: B007 - reported below
        p = _sigmoid(a @ beta)
        gradient = a.T @ (p - targets) / n + penalty * beta
        hessian = (a.T * (p * (1.0 - p))) @ a / n + ridge
        step = np.linalg.solve(hessian, gradient)
        scale = 1.0
        candidate = beta - step
        value = objective(candidate)
        while value > current and scale > 1e-6:
            scale /= 2.0
            candidate = beta - scale * step
            value = objective(candidate)
        if value > current:
            break  # no descent left at machine precision
        beta, current = candidate, value
        if float(np.max(np.abs(scale * step))) < TOLERANCE:
            break
    return beta[:f], float(beta[f]), iterations


def fit_platt(raw_logits: Float64Array, labels: npt.NDArray[np.int8]) -> Calibration:
    """Platt scaling of ``raw_logits`` against ``labels``, with Platt's smoothed
    targets ``(N+ + 1) / (N+ + 2)`` and ``1 / (N- + 2)``; the identity when the
    labels hold a single class."""
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        return Calibration()
    targets = np.where(labels == 1, (positives + 1) / (positives + 2), 1.0 / (negatives + 2))
    weights, intercept, _ = fit_logistic(raw_logits.reshape(-1, 1), targets, l2=0.0)
    return Calibration(float(weights[0]), intercept, int(labels.size), positives)


def train(
    dataset: Dataset,
    *,
    seed: int = 0,
    l2: float = 1e-3,
    calibration_fraction: float = 0.2,
    holdout_fraction: float = 0.2,
    max_iterations: int = MAX_ITERATIONS,
    transforms: Sequence[Transform] = (),
) -> TrainedModel:
    """Fit, calibrate and evaluate a model on ``dataset`` (splits by account), on the
    features after ``transforms``."""
    splits = split_accounts(
        dataset.accounts,
        seed,
        calibration_fraction=calibration_fraction,
        holdout_fraction=holdout_fraction,
    )
    accounts = np.asarray(dataset.accounts, dtype=object)
    transforms = tuple(transforms)
    x = apply_transforms(dataset.feature_names, transforms, dataset.X).astype(np.float64)
    y = dataset.y
    on_train = splits == TRAIN
    train_positives = int(y[on_train].sum())
    if train_positives == 0 or train_positives == int(on_train.sum()):
        raise TrainingError(
            "the training split needs both churned and retained rows",
            rows=int(on_train.sum()),
            positives=train_positives,
        )
    mean = x[on_train].mean(axis=0)
    std = x[on_train].std(axis=0)
    std = np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), std, 1.0)
    z = (x - mean) / std
    weights, bias, iterations = fit_logistic(
        z[on_train], y[on_train].astype(np.float64), l2=l2, max_iterations=max_iterations
    )
    raw = z @ weights + bias
    on_calibration = splits == CALIBRATION
    calibration = fit_platt(raw[on_calibration], y[on_calibration])
    on_holdout = splits == HOLDOUT
    risk = _sigmoid(calibration.scale * raw[on_holdout] + calibration.offset)
    metrics = evaluate(y[on_holdout], risk, accounts=len(set(accounts[on_holdout])))
    return TrainedModel(
        feature_names=dataset.feature_names,
        feature_version=dataset.feature_version,
        weights=tuple(float(w) for w in weights),
        bias=bias,
        mean=tuple(float(m) for m in mean),
        std=tuple(float(s) for s in std),
        calibration=calibration,
        metrics=metrics,
        window=dataset.window,
        horizon_days=dataset.horizon_days,
        seed=seed,
        l2=l2,
        iterations=iterations,
        train_rows=int(on_train.sum()),
        train_accounts=len(set(accounts[on_train])),
        created_from=dataset.source,
        transforms=transforms,
    )
