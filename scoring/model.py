"""The runtime model: load a saved churn model and score batches with onnxruntime.

Needs numpy and onnxruntime only (``onnx`` is a training-time dependency:
``training.save`` writes models). A model directory
holds ``model.onnx`` and ``metadata.json``; :func:`load_model` refuses a model
whose feature version or feature names (in order) differ from the live
definitions, one whose file does not hash to the version its metadata
names, and one that does not score probe rows with finite risks in [0, 1].
:class:`~scoring.reload.ModelHolder` re-reads a model directory that changes
under a running flow, with the same checks.

:meth:`RiskModel.score` scores a whole batch in one onnxruntime call: a stream
operator gathers the feature vectors of every account a batch touched into one
``[N, F]`` float32 matrix (rows of ``AccountFeatures.values``, which come in
definition order) and pays the call overhead once (DESIGN.md: ~6 us per call,
~18 ns per row at batch 1000).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import orjson

from scoring.errors import ModelFileError, ModelMismatchError
from scoring.metadata import Calibration, ModelMetadata, TrainingWindow, model_version_of
from scoring.reasons import top_indexes, top_reasons, top_reasons_by_side

__all__ = [
    "METADATA_FILE",
    "MODEL_FILE",
    "Calibration",
    "Direction",
    "ModelMetadata",
    "Reason",
    "RiskModel",
    "TrainingWindow",
    "load_model",
]

MODEL_FILE = "model.onnx"
METADATA_FILE = "metadata.json"
_INPUT = "features"
_OUTPUTS = ["risk", "contributions"]


class Direction(StrEnum):
    """Which side of its training mean a feature is on when it raises the risk."""

    HIGH = "high"
    LOW = "low"


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a score is high: a feature whose value pushes the risk up.

    ``direction`` is ``"high"`` when the feature is above its training mean on
    a feature whose weight is positive, ``"low"`` when below it on one whose
    weight is negative; ``contribution`` is its share of the raw logit.
    """

    feature: str
    direction: Direction
    contribution: float

    def __str__(self) -> str:
        return f"{self.feature} {self.direction}"


class RiskModel:
    """A loaded model: one onnxruntime session and its metadata. Thread-compatible
    (onnxruntime sessions may be shared by threads); immutable after load."""

    __slots__ = ("_directions", "_means", "_means_list", "_reason_texts", "_session",
                 "_texts_by_side", "metadata")

    def __init__(self, session: ort.InferenceSession, metadata: ModelMetadata) -> None:
        self._session = session
        self.metadata = metadata
        # A model whose metadata gives the training means (trees): a reason's direction is
        # the row's side of the mean, since a tree's credit to a feature has no fixed sign.
        self._means = (
            np.asarray(metadata.feature_means, dtype=np.float32)
            if metadata.feature_means else None
        )
        # the same float32 means as Python floats, for scoring.reasons
        self._means_list = None if self._means is None else self._means.tolist()
        self._directions = self._weight_signs()
        # Each feature's reason as text: a feature's direction is its weight's sign.
        self._reason_texts = tuple(
            str(Reason(name, Direction.HIGH if sign > 0 else Direction.LOW, 0.0))
            for name, sign in zip(metadata.feature_names, self._directions, strict=True)
        )
        self._texts_by_side = (
            tuple(str(Reason(n, Direction.LOW, 0.0)) for n in metadata.feature_names),
            tuple(str(Reason(n, Direction.HIGH, 0.0)) for n in metadata.feature_names),
        )

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.metadata.feature_names

    @property
    def model_version(self) -> str:
        return self.metadata.model_version

    def _weight_signs(self) -> npt.NDArray[np.float32]:
        """The sign of each feature's weight, read from the graph itself.

        ``contributions(x) = (x - mean) / std * w`` and ``std > 0``, so the
        contributions of the ones vector minus those of the zeros vector have
        the sign of ``w``; no need to trust the informational coefficients.
        """
        f = len(self.metadata.feature_names)
        _, contributions = self.score(np.vstack([np.zeros(f), np.ones(f)]).astype(np.float32))
        signs = np.sign(contributions[1] - contributions[0])
        if self.metadata.coefficients:
            # A feature clipped to the same bound at 0 and 1 shows no sign there.
            signs = np.where(signs == 0, np.sign(self.metadata.coefficients), signs)
        return signs.astype(np.float32)

    def score(
        self, matrix: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Risk ``[N]`` in [0, 1] and contributions ``[N, F]`` of a batch, in one call.

        ``matrix`` holds one row per account, columns in ``feature_names``
        order; float32 C-contiguous input is passed without a copy.
        """
        x = np.ascontiguousarray(matrix, dtype=np.float32)
        f = len(self.metadata.feature_names)
        if x.ndim != 2 or x.shape[1] != f:
            msg = f"expected a [N, {f}] matrix, got shape {x.shape}"
            raise ValueError(msg)
        if x.shape[0] == 0:
            return np.empty(0, dtype=np.float32), np.empty((0, f), dtype=np.float32)
        risk, contributions = self._session.run(_OUTPUTS, {_INPUT: x})
        return risk.reshape(-1), contributions

    def reasons(
        self, contributions_row: npt.ArrayLike, k: int = 3,
        features_row: npt.ArrayLike | None = None,
    ) -> tuple[Reason, ...]:
        """The up to ``k`` features pushing this risk up most, largest first.

        Only positive contributions count (a feature that lowers the risk is
        no reason for an alert); equal contributions keep definition order.
        ``features_row``: the scored row, which sets a tree model's directions.
        """
        row = np.asarray(contributions_row, dtype=np.float64).reshape(-1)
        names = self.metadata.feature_names
        if row.shape[0] != len(names):
            msg = f"expected {len(names)} contributions, got {row.shape[0]}"
            raise ValueError(msg)
        out: list[Reason] = []
        for index in top_indexes(row.tolist(), k):  # the batch's rule, one row
            value = float(row[index])
            if self._means is not None and features_row is not None:
                above = np.asarray(features_row, dtype=np.float32).reshape(-1)[index] > \
                    self._means[index]
            else:
                above = self._directions[index] > 0
            direction = Direction.HIGH if above else Direction.LOW
            out.append(Reason(names[index], direction, value))
        return tuple(out)

    def top_reasons_batch(
        self, contributions: npt.ArrayLike, k: int = 3, features: npt.ArrayLike | None = None
    ) -> list[tuple[str, ...]]:
        """:meth:`top_reasons` of every row of ``contributions`` (one row per score).
        ``features``: the scored rows, which set a tree model's directions (each row's
        side of the training mean).

        The rows are picked in compiled loops (:mod:`scoring.reasons`): row by row
        through :meth:`reasons`, the sort and the ``Reason`` objects cost more than the
        model call (7.8 % of the workers' CPU against 1.7 %), and so, for the 10 to 35
        rows a shard scores at a time, did one numpy sort of the batch."""
        matrix = np.asarray(contributions)
        names = self.metadata.feature_names
        if matrix.ndim != 2 or matrix.shape[1] != len(names):
            msg = f"expected rows of {len(names)} contributions, got shape {matrix.shape}"
            raise ValueError(msg)
        # float32 and float64 values compare alike as Python floats: exact either way
        rows = matrix.tolist()
        if self._means_list is not None and features is not None:
            low, high = self._texts_by_side
            return top_reasons_by_side(
                rows, k, np.asarray(features, dtype=np.float32).tolist(), self._means_list,
                low, high)
        return top_reasons(rows, k, self._reason_texts)

    def top_reasons(
        self, contributions_row: npt.ArrayLike, k: int = 3,
        features_row: npt.ArrayLike | None = None,
    ) -> tuple[str, ...]:
        """:meth:`reasons` as text, e.g. ``("days_since_last_activity high",
        "login_trend low")``, ready for an alert's ``reasons``."""
        return tuple(str(r) for r in self.reasons(contributions_row, k, features_row))


def read_metadata(directory: Path) -> ModelMetadata:
    """Parse a model directory's ``metadata.json``."""
    path = directory / METADATA_FILE
    try:
        document = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise ModelFileError(str(path), f"cannot read: {exc.strerror}") from None
    except orjson.JSONDecodeError as exc:
        raise ModelFileError(str(path), f"not JSON: {exc}") from None
    try:
        return ModelMetadata.from_document(document)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelFileError(str(path), f"malformed metadata: {exc!r}") from None


def _check_names(directory: Path, expected: tuple[str, ...], found: tuple[str, ...]) -> None:
    if expected == found:
        return
    for position, (want, have) in enumerate(zip(expected, found, strict=False)):
        if want != have:
            detail = (f"position {position} is {have!r} in the model, {want!r} in the live "
                      "definitions")
            break
    else:
        detail = f"the model has {len(found)} features, the live definitions {len(expected)}"
    raise ModelMismatchError(str(directory), "feature_names", expected, found, detail)


def load_model(
    directory: Path,
    expected_feature_version: str,
    expected_names: Sequence[str],
) -> RiskModel:
    """Load the model in ``directory`` for the live feature definitions.

    Raises :class:`ModelMismatchError` when the model was trained on another
    ``feature_version`` or other feature names or order, and
    :class:`ModelFileError` when a file is missing, malformed, or
    ``model.onnx`` does not hash to the version ``metadata.json`` names, or the
    model does not answer probe rows (all 0, all 1, all 10000) with finite
    risks in [0, 1] and finite contributions.
    """
    metadata = read_metadata(directory)
    if metadata.feature_version != expected_feature_version:
        raise ModelMismatchError(
            str(directory),
            "feature_version",
            expected_feature_version,
            metadata.feature_version,
            f"the model was trained on feature_version {metadata.feature_version!r}, "
            f"the live definitions are {expected_feature_version!r}: retrain it",
        )
    _check_names(directory, tuple(expected_names), metadata.feature_names)
    model_path = directory / MODEL_FILE
    try:
        model_bytes = model_path.read_bytes()
    except OSError as exc:
        raise ModelFileError(str(model_path), f"cannot read: {exc.strerror}") from None
    if model_version_of(model_bytes) != metadata.model_version:
        raise ModelFileError(
            str(model_path),
            f"hashes to {model_version_of(model_bytes)}, metadata.json names "
            f"{metadata.model_version}",
        )
    options = ort.SessionOptions()
    # One thread each: the stream scales with processes, and a thread pool per
    # session would contend with the other workers for the cores.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    try:
        session = ort.InferenceSession(
            model_bytes, sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own untyped exceptions
        raise ModelFileError(str(model_path), f"onnxruntime refused it: {exc}") from None
    props = session.get_modelmeta().custom_metadata_map
    if props.get("feature_version") != metadata.feature_version or props.get(
        "feature_names"
    ) != ",".join(metadata.feature_names):
        raise ModelFileError(str(model_path), "its embedded features disagree with metadata.json")
    try:
        model = RiskModel(session, metadata)
        problem = _probe(model)
    except Exception as exc:  # a graph whose inputs or outputs are not ours
        problem = f"cannot score: {exc}"
    if problem:
        raise ModelFileError(str(model_path), problem)
    return model


# Probe rows: every feature 0, every feature 1, and every feature at a magnitude live
# vectors reach (days of tenure, seats): a model must answer each with a risk in [0, 1].
_PROBE = np.array([[0.0], [1.0], [10_000.0]], dtype=np.float32)


def _probe(model: RiskModel) -> str | None:
    """What is wrong with ``model``'s answers to the probe rows, or ``None``."""
    f = len(model.feature_names)
    risk, contributions = model.score(np.repeat(_PROBE, f, axis=1))
    rows = _PROBE.shape[0]
    if risk.shape != (rows,) or np.shape(contributions) != (rows, f):
        return (f"on a probe batch of {rows} rows it gave risk {risk.shape} and contributions "
                f"{np.shape(contributions)}, not ({rows},) and ({rows}, {f})")
    if not (np.all(np.isfinite(risk)) and np.all((risk >= 0.0) & (risk <= 1.0))):
        return f"on probe rows (all 0, all 1, all 10000) it gave risks {risk.tolist()}"
    if not np.all(np.isfinite(contributions)):
        return "on probe rows (all 0, all 1, all 10000) it gave non-finite contributions"
    return None
