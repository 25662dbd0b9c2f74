"""The second model family: gradient-boosted trees (``churnwatch train --model trees``).

scikit-learn's ``HistGradientBoostingClassifier`` fitted on the train split (the
same account split as the logistic model, :func:`training.train.split_accounts`),
its raw score Platt-calibrated on the calibration split, graded on the holdout.

Reasons are per-feature contributions computed in the graph, exactly: for every
tree, each node's expected raw score is the training-count-weighted mean of the
leaves below it, and each step of a row's path from the root to its leaf credits
the change in expected score to the feature the step split on (Saabas'
decomposition). A leaf therefore carries one contribution per feature, and
``sum(contributions) + base`` is the raw score itself, so the ONNX graph
(:func:`training.onnx_export.build_tree_onnx`) computes risk and contributions with
one tree ensemble walk and no Python mirror. A reason names a feature whose
contribution raises this row's risk, "high" when the row is above the feature's
training mean, "low" below.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from scoring.evaluation import Metrics, evaluate
from scoring.metadata import Calibration, TrainingWindow
from training.dataset import Dataset
from training.errors import TrainingError
from training.train import CALIBRATION, HOLDOUT, TRAIN, _sigmoid, fit_platt, split_accounts
from training.transforms import Transform, apply_transforms

Float64Array = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, eq=False)
class Tree:
    """One fitted tree as arrays over its nodes (node 0 is the root).

    ``threshold`` is float32, the largest float32 not above scikit-learn's float64
    threshold, so ``x <= threshold`` decides a float32 input exactly as scikit-learn
    decides it. ``contributions[node]`` is a leaf's per-feature credit (zeros
    elsewhere); ``value[node]`` a leaf's raw score.
    """

    feature: npt.NDArray[np.int64]
    threshold: npt.NDArray[np.float32]
    left: npt.NDArray[np.int64]
    right: npt.NDArray[np.int64]
    missing_left: npt.NDArray[np.bool_]
    is_leaf: npt.NDArray[np.bool_]
    value: Float64Array
    contributions: Float64Array  # [nodes, features]
    expected_root: float


@dataclass(frozen=True, slots=True, eq=False)
class TrainedTrees:
    """A fitted tree model: ``risk = sigmoid(a * raw + b)``, ``raw = base +
    sum(contributions)`` over the (transformed) features."""

    feature_names: tuple[str, ...]
    feature_version: str
    trees: tuple[Tree, ...]
    base: float  # baseline prediction plus every tree's expected root score
    calibration: Calibration
    metrics: Metrics
    window: TrainingWindow
    horizon_days: int
    seed: int
    iterations: int
    train_rows: int
    train_accounts: int
    created_from: str
    feature_means: tuple[float, ...]  # raw features, train split
    transforms: tuple[Transform, ...] = ()
    # Kept for tests that compare the graph with scikit-learn itself; not saved.
    estimator: object = None

    def contributions(self, features: npt.ArrayLike) -> Float64Array:
        """Per row and feature, the credit of the feature in the raw score."""
        x = apply_transforms(self.feature_names, self.transforms, features)
        out = np.zeros((x.shape[0], len(self.feature_names)))
        for tree in self.trees:
            out += tree.contributions[_leaves(tree, x)]
        return out

    def raw_score(self, features: npt.ArrayLike) -> Float64Array:
        x = apply_transforms(self.feature_names, self.transforms, features)
        total = np.full(x.shape[0], self.base)
        for tree in self.trees:
            total += tree.value[_leaves(tree, x)] - tree.expected_root
        return total

    def predict(self, features: npt.ArrayLike) -> Float64Array:
        """Calibrated churn risk per row, in [0, 1]."""
        z = self.raw_score(features)
        return _sigmoid(self.calibration.scale * z + self.calibration.offset)


def _leaves(tree: Tree, x: npt.NDArray[np.float32]) -> npt.NDArray[np.int64]:
    """The leaf each row of ``x`` reaches."""
    node = np.zeros(x.shape[0], dtype=np.int64)
    rows = np.arange(x.shape[0])
    while True:
        inner = ~tree.is_leaf[node]
        if not inner.any():
            return node
        values = x[rows, tree.feature[node]]
        go_left = np.where(np.isnan(values), tree.missing_left[node],
                           values <= tree.threshold[node])
        node = np.where(inner, np.where(go_left, tree.left[node], tree.right[node]), node)


def _float32_floor(values: Float64Array) -> npt.NDArray[np.float32]:
    """The largest float32 not above each value (float32 inputs compare the same)."""
    rounded = values.astype(np.float32)
    above = rounded.astype(np.float64) > values
    rounded[above] = np.nextafter(rounded[above], np.float32(-np.inf))
    return rounded


def tree_from_predictor(nodes: np.ndarray, feature_count: int) -> Tree:
    """A :class:`Tree` from a scikit-learn ``TreePredictor.nodes`` array, with each
    leaf's Saabas contributions (see the module docstring)."""
    n = nodes.shape[0]
    is_leaf = nodes["is_leaf"].astype(bool)
    left = nodes["left"].astype(np.int64)
    right = nodes["right"].astype(np.int64)
    count = nodes["count"].astype(np.float64)
    value = np.where(is_leaf, nodes["value"].astype(np.float64), 0.0)
    if np.any(nodes["is_categorical"][~is_leaf]):
        msg = "categorical splits are not supported"
        raise ValueError(msg)
    # Expected score of each node: count-weighted mean of its leaves (children first).
    expected = np.zeros(n)
    weight = np.zeros(n)
    preorder: list[int] = []
    stack = [0]
    while stack:
        i = stack.pop()
        preorder.append(i)
        if not is_leaf[i]:
            stack += [int(left[i]), int(right[i])]
    for i in reversed(preorder):
        if is_leaf[i]:
            expected[i], weight[i] = value[i], max(count[i], 1.0)
        else:
            a, b = left[i], right[i]
            weight[i] = weight[a] + weight[b]
            expected[i] = (expected[a] * weight[a] + expected[b] * weight[b]) / weight[i]
    contributions = np.zeros((n, feature_count))
    stack = [0]
    while stack:
        i = stack.pop()
        if is_leaf[i]:
            continue
        f = int(nodes["feature_idx"][i])
        for child in (left[i], right[i]):
            contributions[child] = contributions[i]
            contributions[child, f] += expected[child] - expected[i]
            stack.append(int(child))
    contributions[~is_leaf] = 0.0
    return Tree(
        feature=nodes["feature_idx"].astype(np.int64),
        threshold=_float32_floor(nodes["num_threshold"].astype(np.float64)),
        left=left,
        right=right,
        missing_left=nodes["missing_go_to_left"].astype(bool),
        is_leaf=is_leaf,
        value=value,
        contributions=contributions,
        expected_root=float(expected[0]),
    )


def train_trees(
    dataset: Dataset,
    *,
    seed: int = 0,
    transforms: tuple[Transform, ...] = (),
    max_iter: int = 200,
    learning_rate: float = 0.05,
    max_leaf_nodes: int = 15,
    min_samples_leaf: int = 100,
    l2_regularization: float = 1.0,
    calibration_fraction: float = 0.2,
    holdout_fraction: float = 0.2,
) -> TrainedTrees:
    """Fit, calibrate and evaluate a gradient-boosted tree model on ``dataset``."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    splits = split_accounts(dataset.accounts, seed, calibration_fraction=calibration_fraction,
                            holdout_fraction=holdout_fraction)
    accounts = np.asarray(dataset.accounts, dtype=object)
    y = dataset.y
    on_train = splits == TRAIN
    positives = int(y[on_train].sum())
    if positives == 0 or positives == int(on_train.sum()):
        raise TrainingError("the training split needs both churned and retained rows",
                            rows=int(on_train.sum()), positives=positives)
    x = apply_transforms(dataset.feature_names, transforms, dataset.X)
    estimator = HistGradientBoostingClassifier(
        max_iter=max_iter,
        learning_rate=learning_rate,
        max_leaf_nodes=max_leaf_nodes,
        min_samples_leaf=min_samples_leaf,
        l2_regularization=l2_regularization,
        early_stopping=False,
        random_state=seed,
    )
    # float64 of the float32 values the graph will see: the same splits.
    estimator.fit(x[on_train].astype(np.float64), y[on_train])
    f = len(dataset.feature_names)
    trees = tuple(tree_from_predictor(p[0].nodes, f) for p in estimator._predictors)
    baseline = float(np.ravel(estimator._baseline_prediction)[0])
    base = baseline + sum(tree.expected_root for tree in trees)
    raw = estimator._raw_predict(x.astype(np.float64))[:, 0]
    on_calibration = splits == CALIBRATION
    calibration = fit_platt(raw[on_calibration], y[on_calibration])
    on_holdout = splits == HOLDOUT
    risk = _sigmoid(calibration.scale * raw[on_holdout] + calibration.offset)
    metrics = evaluate(y[on_holdout], risk, accounts=len(set(accounts[on_holdout])))
    means = dataset.X[on_train].astype(np.float64).mean(axis=0)
    return TrainedTrees(
        feature_names=dataset.feature_names,
        feature_version=dataset.feature_version,
        trees=trees,
        base=base,
        calibration=calibration,
        metrics=metrics,
        window=dataset.window,
        horizon_days=dataset.horizon_days,
        seed=seed,
        iterations=int(estimator.n_iter_),
        train_rows=int(on_train.sum()),
        train_accounts=len(set(accounts[on_train])),
        created_from=dataset.source,
        feature_means=tuple(float(m) for m in means),
        transforms=tuple(transforms),
        estimator=estimator,
    )
