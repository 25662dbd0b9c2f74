"""Export a :class:`~training.train.TrainedModel` as an ONNX graph (training time only).

Built node by node with ``onnx.helper``: no converter, no ZipMap (ZipMap made
inference 16x slower, DESIGN.md), and nothing in the file that changes between
two trainings on the same data (fixed producer, no timestamps, deterministic
serialisation), so the bytes, and the ``model_version`` derived from them, are
reproducible. ``onnx`` is needed here only; the runtime loads the file with
onnxruntime alone.

The graph, for ``features`` float32 ``[N, F]``::

    transformed   = declared transforms (clip, log1p), when the model has any
    standardized  = (features - mean) / std                    Sub, Div
    logit         = standardized @ W + bias                    MatMul, Add
    risk          = sigmoid(scale * logit + offset)  [N, 1]    Mul, Add, Sigmoid
    contributions = standardized * w                 [N, F]    Mul

``contributions`` explains a score: each feature's share of the raw logit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from training.train import TrainedModel
from training.transforms import onnx_transform_nodes
from training.trees import TrainedTrees

OPSET = 17
IR_VERSION = 8
PRODUCER_NAME = "churnwatch.scoring"
PRODUCER_VERSION = "1"  # the export format, not the package version: bump on graph changes
INPUT = "features"
RISK = "risk"
CONTRIBUTIONS = "contributions"


def _calibration_constants(scale: float, offset: float) -> list[onnx.TensorProto]:
    return [
        numpy_helper.from_array(np.asarray([scale], dtype=np.float32), "calibration_scale"),
        numpy_helper.from_array(np.asarray([offset], dtype=np.float32), "calibration_offset"),
    ]


def _calibrated_risk() -> list[onnx.NodeProto]:
    """``logit`` → ``risk`` = sigmoid(calibration_scale * logit + calibration_offset)."""
    return [
        helper.make_node("Mul", ["logit", "calibration_scale"], ["scaled_logit"],
                         name="calibrate_scale"),
        helper.make_node("Add", ["scaled_logit", "calibration_offset"], ["calibrated_logit"],
                         name="calibrate_offset"),
        helper.make_node("Sigmoid", ["calibrated_logit"], [RISK], name="risk"),
    ]


def _transformed(
    feature_names: tuple[str, ...], transforms: tuple[Any, ...],
    nodes: list[onnx.NodeProto], initializers: list[onnx.TensorProto],
) -> str:
    """The declared transforms' nodes and constants appended (they run first, in the
    graph: scoring needs no Python mirror); the name of the graph's features after them."""
    if not transforms:
        return INPUT
    transform_nodes, constants = onnx_transform_nodes(feature_names, transforms, INPUT,
                                                      "transformed")
    nodes.extend(transform_nodes)
    initializers.extend(constants)
    return "transformed"


def _model(
    nodes: list[onnx.NodeProto], initializers: list[onnx.TensorProto], features: int,
    opsets: list[onnx.OperatorSetIdProto], doc: str, props: dict[str, str],
) -> onnx.ModelProto:
    """The checked model: ``features`` float32 [N, F] in, ``risk`` [N, 1] and
    ``contributions`` [N, F] out; ``props`` read back by the runtime as a cross-check
    of metadata.json."""
    graph = helper.make_graph(
        nodes,
        "churn_risk",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", features])],
        [
            helper.make_tensor_value_info(RISK, TensorProto.FLOAT, ["N", 1]),
            helper.make_tensor_value_info(CONTRIBUTIONS, TensorProto.FLOAT, ["N", features]),
        ],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=opsets, producer_name=PRODUCER_NAME,
                              producer_version=PRODUCER_VERSION, doc_string=doc)
    model.ir_version = IR_VERSION
    helper.set_model_props(model, props)
    onnx.checker.check_model(model, full_check=True)
    return model


def _props(trained: TrainedModel | TrainedTrees, **extra: str) -> dict[str, str]:
    props = {
        "feature_version": trained.feature_version,
        "feature_names": ",".join(trained.feature_names),
        "horizon_days": str(trained.horizon_days),
        **extra,
    }
    if trained.transforms:
        props["transforms"] = ",".join(str(t) for t in trained.transforms)
    return props


def build_onnx(trained: TrainedModel) -> onnx.ModelProto:
    """The scoring graph of ``trained``, checked by ``onnx.checker``."""
    f = len(trained.feature_names)
    weights = np.asarray(trained.weights, dtype=np.float32)
    initializers = [
        numpy_helper.from_array(np.asarray(trained.mean, dtype=np.float32), "mean"),
        numpy_helper.from_array(np.asarray(trained.std, dtype=np.float32), "std"),
        numpy_helper.from_array(weights.reshape(f, 1), "weights"),
        numpy_helper.from_array(weights, "weights_row"),
        numpy_helper.from_array(np.asarray([trained.bias], dtype=np.float32), "bias"),
        *_calibration_constants(trained.calibration.scale, trained.calibration.offset),
    ]
    nodes: list[onnx.NodeProto] = []
    source = _transformed(trained.feature_names, trained.transforms, nodes, initializers)
    nodes += [
        helper.make_node("Sub", [source, "mean"], ["centered"], name="center"),
        helper.make_node("Div", ["centered", "std"], ["standardized"], name="scale"),
        helper.make_node("MatMul", ["standardized", "weights"], ["linear"], name="weigh"),
        helper.make_node("Add", ["linear", "bias"], ["logit"], name="add_bias"),
        *_calibrated_risk(),
        helper.make_node("Mul", ["standardized", "weights_row"], [CONTRIBUTIONS],
                         name="contributions"),
    ]
    return _model(nodes, initializers, f, [helper.make_opsetid("", OPSET)],
                  "churnwatch churn risk: calibrated logistic regression", _props(trained))


def export_onnx(trained: TrainedModel) -> bytes:
    """The serialised model: the same ``trained`` always gives the same bytes."""
    return build_onnx(trained).SerializeToString(deterministic=True)


ML_DOMAIN = "ai.onnx.ml"
ML_OPSET = 3


def build_tree_onnx(trained: TrainedTrees) -> onnx.ModelProto:
    """The scoring graph of a tree model (:mod:`training.trees`), for ``features``
    float32 ``[N, F]``::

        transformed   = declared transforms (clip, log1p)       as the logistic graph
        walk          = TreeEnsembleRegressor(transformed)  [N, F + 1]
                        targets 0..F-1: each leaf's per-feature contributions,
                        target F: each leaf's raw score
        contributions = walk[:, :F]                         [N, F]
        risk          = sigmoid(scale * (walk[:, F] + base) + offset)  [N, 1]

    One walk of the ensemble gives both outputs; every leaf's contributions sum to
    its score minus its tree's expected root score, so the contributions explain
    the raw score exactly.
    """
    f = len(trained.feature_names)
    nodes: list[onnx.NodeProto] = []
    initializers: list[onnx.TensorProto] = []
    source = _transformed(trained.feature_names, trained.transforms, nodes, initializers)
    attributes: dict[str, Any] = {key: [] for key in (
        "nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_values", "nodes_modes",
        "nodes_truenodeids", "nodes_falsenodeids", "nodes_missing_value_tracks_true",
        "target_treeids", "target_nodeids", "target_ids", "target_weights",
    )}
    for tree_id, tree in enumerate(trained.trees):
        for node in range(tree.is_leaf.shape[0]):
            leaf = bool(tree.is_leaf[node])
            attributes["nodes_treeids"].append(tree_id)
            attributes["nodes_nodeids"].append(node)
            attributes["nodes_featureids"].append(0 if leaf else int(tree.feature[node]))
            attributes["nodes_values"].append(0.0 if leaf else float(tree.threshold[node]))
            attributes["nodes_modes"].append("LEAF" if leaf else "BRANCH_LEQ")
            attributes["nodes_truenodeids"].append(0 if leaf else int(tree.left[node]))
            attributes["nodes_falsenodeids"].append(0 if leaf else int(tree.right[node]))
            attributes["nodes_missing_value_tracks_true"].append(
                0 if leaf else int(tree.missing_left[node])
            )
            if not leaf:
                continue
            weights = [(i, float(c)) for i, c in enumerate(tree.contributions[node]) if c != 0.0]
            weights.append((f, float(tree.value[node])))
            for target, weight in weights:
                attributes["target_treeids"].append(tree_id)
                attributes["target_nodeids"].append(node)
                attributes["target_ids"].append(target)
                attributes["target_weights"].append(weight)
    initializers += [
        numpy_helper.from_array(np.asarray([0], dtype=np.int64), "slice_start"),
        numpy_helper.from_array(np.asarray([f], dtype=np.int64), "slice_split"),
        numpy_helper.from_array(np.asarray([f + 1], dtype=np.int64), "slice_end"),
        numpy_helper.from_array(np.asarray([1], dtype=np.int64), "slice_axis"),
        numpy_helper.from_array(
            np.asarray([trained.base - sum(t.expected_root for t in trained.trees)],
                       dtype=np.float32), "baseline"),
        *_calibration_constants(trained.calibration.scale, trained.calibration.offset),
    ]
    nodes += [
        helper.make_node("TreeEnsembleRegressor", [source], ["walk"], name="trees",
                         domain=ML_DOMAIN, n_targets=f + 1, aggregate_function="SUM",
                         post_transform="NONE", **attributes),
        helper.make_node("Slice", ["walk", "slice_start", "slice_split", "slice_axis"],
                         [CONTRIBUTIONS], name="contributions"),
        helper.make_node("Slice", ["walk", "slice_split", "slice_end", "slice_axis"],
                         ["leaf_sum"], name="leaf_sum"),
        helper.make_node("Add", ["leaf_sum", "baseline"], ["logit"], name="add_baseline"),
        *_calibrated_risk(),
    ]
    return _model(
        nodes, initializers, f,
        [helper.make_opsetid("", OPSET), helper.make_opsetid(ML_DOMAIN, ML_OPSET)],
        "churnwatch churn risk: calibrated gradient-boosted trees",
        _props(trained, family="trees"),
    )


def export_model(trained: TrainedModel | TrainedTrees) -> bytes:
    """The serialised graph of either model family (deterministic bytes)."""
    if isinstance(trained, TrainedTrees):
        return build_tree_onnx(trained).SerializeToString(deterministic=True)
    return export_onnx(trained)
