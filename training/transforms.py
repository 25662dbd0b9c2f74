"""Declared feature transforms (``log1p``, ``clip``), applied the same in training and scoring.

A transform belongs to a model, not to the feature definitions: it is how one
model reads a feature, it lives inside that model's ONNX graph (so scoring needs
no Python mirror and the stream, Redis and the API keep the raw values), and
trying another transform retrains a model without changing ``feature_version``.
They are declared with ``churnwatch train`` flags and recorded in the model's
metadata as text (``clip:login_trend:-1:1``, ``log1p:logins_7d``).

Per feature, clipping comes first, then ``log1p``: ``log1p(max(x, 0))``, so a
negative value (which a count never is) cannot make a NaN. Computed in float32,
as the graph computes it (:func:`onnx_transform_nodes` builds the same steps),
so training sees the very values scoring will: the logarithm is taken in float64
and rounded to float32 on both sides (float32 logarithms of numpy and onnxruntime
may differ in the last bit, enough to send a row down the other side of a tree
split that sits on a training value).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt
from onnx import NodeProto, TensorProto, helper, numpy_helper

from training.errors import TrainingOptionError

# ``--log1p nonnegative``: every feature with no negative value in the training rows.
NONNEGATIVE = "nonnegative"


class TransformKind(StrEnum):
    LOG1P = "log1p"
    CLIP = "clip"


@dataclass(frozen=True, slots=True)
class Transform:
    """One feature's transform: ``log1p``, or ``clip`` to ``[low, high]``."""

    kind: TransformKind
    feature: str
    low: float = -math.inf
    high: float = math.inf

    def __str__(self) -> str:
        if self.kind is TransformKind.CLIP:
            return f"clip:{self.feature}:{self.low:g}:{self.high:g}"
        return f"log1p:{self.feature}"


def parse_clip(text: str) -> Transform:
    """``NAME:LOW:HIGH`` (either bound may be empty: unbounded on that side)."""
    name, sep, bounds = text.partition(":")
    low_text, sep2, high_text = bounds.partition(":")
    if not (name and sep and sep2):
        msg = f"--clip {text!r}: expected NAME:LOW:HIGH, e.g. login_trend:-1:1"
        raise TrainingOptionError(msg)
    try:
        low = float(low_text) if low_text else -math.inf
        high = float(high_text) if high_text else math.inf
    except ValueError:
        msg = f"--clip {text!r}: the bounds must be numbers"
        raise TrainingOptionError(msg) from None
    if not low < high:
        msg = f"--clip {text!r}: need LOW < HIGH"
        raise TrainingOptionError(msg)
    return Transform(TransformKind.CLIP, name, low, high)


def resolve_transforms(
    feature_names: Sequence[str],
    features: npt.NDArray[np.float32],
    *,
    log1p: Iterable[str] = (),
    clip: Iterable[Transform] = (),
) -> tuple[Transform, ...]:
    """The transforms to train with, in feature order (clip before log1p per feature).

    ``log1p`` names features, or is ``nonnegative``; every name must be a feature of
    the definitions (a typo is an error, never a silent no-op).
    """
    index = {name: i for i, name in enumerate(feature_names)}
    wanted_log: set[str] = set()
    for name in log1p:
        if name == NONNEGATIVE:
            mins = features.min(axis=0) if features.size else np.zeros(len(feature_names))
            wanted_log.update(n for n, low in zip(feature_names, mins, strict=True) if low >= 0)
        elif name in index:
            wanted_log.add(name)
        else:
            msg = f"--log1p {name!r}: no such feature (features: {', '.join(feature_names)})"
            raise TrainingOptionError(msg)
    clips: dict[str, Transform] = {}
    for transform in clip:
        if transform.feature not in index:
            msg = (f"--clip {transform.feature!r}: no such feature "
                   f"(features: {', '.join(feature_names)})")
            raise TrainingOptionError(msg)
        clips[transform.feature] = transform
    out: list[Transform] = []
    for name in feature_names:
        if name in clips:
            out.append(clips[name])
        if name in wanted_log:
            out.append(Transform(TransformKind.LOG1P, name))
    return tuple(out)


def _vectors(
    feature_names: Sequence[str], transforms: Sequence[Transform]
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """Per feature: lower and upper clip bound (float32 extremes: none) and the log1p mask."""
    big = float(np.finfo(np.float32).max)
    low = np.full(len(feature_names), -big, dtype=np.float32)
    high = np.full(len(feature_names), big, dtype=np.float32)
    mask = np.zeros(len(feature_names), dtype=bool)
    index = {name: i for i, name in enumerate(feature_names)}
    for transform in transforms:
        i = index[transform.feature]
        if transform.kind is TransformKind.CLIP:
            low[i] = max(transform.low, -big)
            high[i] = min(transform.high, big)
        else:
            mask[i] = True
    return low, high, mask


def apply_transforms(
    feature_names: Sequence[str], transforms: Sequence[Transform], features: npt.ArrayLike
) -> npt.NDArray[np.float32]:
    """The transformed rows, float32, computed as the ONNX graph computes them."""
    x = np.asarray(features, dtype=np.float32)
    if not transforms:
        return x
    low, high, mask = _vectors(feature_names, transforms)
    clipped = np.maximum(np.minimum(x, high), low)
    plus_one = np.maximum(clipped, np.float32(0.0)) + np.float32(1.0)
    logged = np.log(plus_one.astype(np.float64)).astype(np.float32)
    return np.where(mask, logged, clipped).astype(np.float32)


def onnx_transform_nodes(
    feature_names: Sequence[str], transforms: Sequence[Transform], source: str, target: str
) -> tuple[list[NodeProto], list[TensorProto]]:
    """Nodes (and their constants) that turn ``source`` into ``target`` in a graph:
    ``Where(mask, float(Log(double(Max(clipped, 0) + 1))), clipped)`` with
    ``clipped = Max(Min(x, high), low)``, the steps of :func:`apply_transforms`."""
    low, high, mask = _vectors(feature_names, transforms)
    initializers = [
        numpy_helper.from_array(low, "transform_low"),
        numpy_helper.from_array(high, "transform_high"),
        numpy_helper.from_array(mask, "transform_log1p"),
        numpy_helper.from_array(np.asarray([0.0], dtype=np.float32), "transform_zero"),
        numpy_helper.from_array(np.asarray([1.0], dtype=np.float32), "transform_one"),
    ]
    nodes = [
        helper.make_node("Min", [source, "transform_high"], ["clipped_high"], name="clip_high"),
        helper.make_node("Max", ["clipped_high", "transform_low"], ["clipped"], name="clip_low"),
        helper.make_node("Max", ["clipped", "transform_zero"], ["nonnegative"],
                         name="log1p_floor"),
        helper.make_node("Add", ["nonnegative", "transform_one"], ["plus_one"], name="log1p_add"),
        # The logarithm in float64, rounded to float32: float32 logarithms of two
        # libraries may differ in the last bit, and a tree split on that value would not.
        helper.make_node("Cast", ["plus_one"], ["plus_one_double"], name="log1p_widen",
                         to=TensorProto.DOUBLE),
        helper.make_node("Log", ["plus_one_double"], ["logged_double"], name="log1p_log"),
        helper.make_node("Cast", ["logged_double"], ["logged"], name="log1p_narrow",
                         to=TensorProto.FLOAT),
        helper.make_node("Where", ["transform_log1p", "logged", "clipped"], [target],
                         name="log1p_select"),
    ]
    return nodes, initializers
