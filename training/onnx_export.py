"""Export a :class:`~training.train.TrainedModel` as an ONNX graph (training time only).

Built node by node with ``onnx.helper``: no converter, no ZipMap (ZipMap made
inference 16x slower, DESIGN.md), and nothing in the file that changes between
two trainings on the same data (fixed producer, no timestamps, deterministic
serialisation), so the bytes, and the ``model_version`` derived from them, are
reproducible. ``onnx`` is needed here only; the runtime loads the file with
onnxruntime alone.

The graph, for ``features`` float32 ``[N, F]``::

    standardized  = (features - mean) / std                    Sub, Div
    logit         = standardized @ W + bias                    MatMul, Add
    risk          = sigmoid(scale * logit + offset)  [N, 1]    Mul, Add, Sigmoid
    contributions = standardized * w                 [N, F]    Mul

``contributions`` explains a score: each feature's share of the raw logit.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from training.train import TrainedModel

OPSET = 17
IR_VERSION = 8
PRODUCER_NAME = "churnwatch.scoring"
PRODUCER_VERSION = "1"  # the export format, not the package version: bump on graph changes
INPUT = "features"
RISK = "risk"
CONTRIBUTIONS = "contributions"


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
        numpy_helper.from_array(
            np.asarray([trained.calibration.scale], dtype=np.float32), "calibration_scale"
        ),
        numpy_helper.from_array(
            np.asarray([trained.calibration.offset], dtype=np.float32), "calibration_offset"
        ),
    ]
    nodes = [
        helper.make_node("Sub", [INPUT, "mean"], ["centered"], name="center"),
        helper.make_node("Div", ["centered", "std"], ["standardized"], name="scale"),
        helper.make_node("MatMul", ["standardized", "weights"], ["linear"], name="weigh"),
        helper.make_node("Add", ["linear", "bias"], ["logit"], name="add_bias"),
        helper.make_node("Mul", ["logit", "calibration_scale"], ["scaled_logit"],
                         name="calibrate_scale"),
        helper.make_node("Add", ["scaled_logit", "calibration_offset"], ["calibrated_logit"],
                         name="calibrate_offset"),
        helper.make_node("Sigmoid", ["calibrated_logit"], [RISK], name="risk"),
        helper.make_node("Mul", ["standardized", "weights_row"], [CONTRIBUTIONS],
                         name="contributions"),
    ]
    graph = helper.make_graph(
        nodes,
        "churn_risk",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", f])],
        [
            helper.make_tensor_value_info(RISK, TensorProto.FLOAT, ["N", 1]),
            helper.make_tensor_value_info(CONTRIBUTIONS, TensorProto.FLOAT, ["N", f]),
        ],
        initializer=initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name=PRODUCER_NAME,
        producer_version=PRODUCER_VERSION,
        doc_string="churnwatch churn risk: calibrated logistic regression",
    )
    model.ir_version = IR_VERSION
    # Read back by the runtime as a cross-check of metadata.json.
    helper.set_model_props(
        model,
        {
            "feature_version": trained.feature_version,
            "feature_names": ",".join(trained.feature_names),
            "horizon_days": str(trained.horizon_days),
        },
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def export_onnx(trained: TrainedModel) -> bytes:
    """The serialised model: the same ``trained`` always gives the same bytes."""
    return build_onnx(trained).SerializeToString(deterministic=True)
