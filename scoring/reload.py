"""The live model of a running flow: re-read when its directory changes, a bad one refused.

A deployment replaces a model by writing a new ``model.onnx`` and
``metadata.json`` into the model directory (``churnwatch train --out DIR``
does, each file atomically), or by swapping the directory (a symlink or a
Kubernetes ConfigMap). :class:`ModelHolder` notices, loads the new pair with
:func:`~scoring.model.load_model` (onnxruntime accepts it, its feature version
and names are the live definitions', ``model.onnx`` hashes to the version
``metadata.json`` names, it scores probe rows with finite risks in [0, 1]) and
swaps it in; a stream operator asks for :meth:`ModelHolder.current` once per
batch, so a swap falls between batches and one batch is scored by one model.
On any failure the last good model stays live, and the reason is logged and
counted. Tiers that training stored in a model's metadata move with it:
:func:`~scoring.risk.score_batch` tiers each batch by its live model (unless the
settings fix the tiers).

A pair caught mid-update must not be judged: two files cannot be replaced in
one step, and a directory copied file by file passes through states that are
neither model. The holder judges a change only once the files' identity (inode,
modification time, size) is the same at two looks ``settle_seconds`` apart, and
again after loading (a change during the load is not judged); the hash check
then refuses whatever still mixes two models.

Cheap on the hot path: ``current()`` costs a clock read between checks and
two ``stat`` calls per check; a load happens once per change. Several
Bytewax workers of a process share one holder: one of them checks while the
others go on with the live model.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from scoring.model import METADATA_FILE, MODEL_FILE, RiskModel, load_model

__all__ = ["ModelHolder", "live_model"]

log = logging.getLogger(__name__)

# (inode, mtime in ns, size) of model.onnx and of metadata.json; None: missing.
_FileStamp = tuple[int, int, int] | None
_Stamp = tuple[_FileStamp, _FileStamp]


class ModelHolder:
    """The live model of ``directory``, re-read when its files change.

    ``current()`` looks at the files at most every ``check_seconds`` (monotonic
    clock, injected; 0: never, the first model stays live). A change is judged
    once it has held still for ``settle_seconds``: the new pair is loaded and
    checked, and either replaces the live model (outcome ``accepted``) or is
    refused, the last good model staying live (``refused``, logged with the
    reason; the same refused files are not tried again until they change).
    ``on_change(outcome, live_model)`` hears ``loaded`` (the first model, at
    construction), ``accepted`` and ``refused``. ``role`` names the model in
    logs (``primary``, ``shadow``).

    The first model must be good: the constructor raises what
    :func:`~scoring.model.load_model` raises.
    """

    def __init__(
        self,
        directory: Path,
        feature_version: str,
        feature_names: Sequence[str],
        *,
        check_seconds: float = 30.0,
        settle_seconds: float = 1.0,
        role: str = "primary",
        on_change: Callable[[str, RiskModel], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._directory = Path(directory)
        self._feature_version = feature_version
        self._feature_names = tuple(feature_names)
        self._check_seconds = check_seconds
        self._settle_seconds = min(settle_seconds, check_seconds)
        self.role = role
        self._on_change = on_change
        self._clock = clock
        self._lock = threading.Lock()
        # The files last judged (loaded or refused), and a change seen once, settling.
        self._judged = self._stat()
        self._pending: _Stamp | None = None
        self._model = self._load()
        self._next_check = clock() + check_seconds
        self.reloaded = 0
        self.rejected = 0
        if on_change is not None:
            on_change("loaded", self._model)

    @property
    def directory(self) -> Path:
        return self._directory

    @property
    def model_version(self) -> str:
        return self._model.model_version

    def current(self) -> RiskModel:
        """The live model; first, if a check is due, look at the files (and maybe swap)."""
        # Another worker checking meanwhile (the lock taken): go on with the live model.
        if (
            self._check_seconds > 0
            and self._clock() >= self._next_check
            and self._lock.acquire(blocking=False)
        ):
            try:
                self._check()
            finally:
                self._lock.release()
        return self._model

    def _check(self) -> None:
        now = self._clock()
        if now < self._next_check:  # another worker checked while this one waited
            return
        stamp = self._stat()
        if stamp == self._judged:
            self._pending = None
            self._next_check = now + self._check_seconds
        elif stamp != self._pending:
            # Changed since the last look: look again once it may have settled.
            self._pending = stamp
            self._next_check = now + self._settle_seconds
        else:
            self._pending = None
            self._next_check = now + self._check_seconds
            self._reload(stamp)

    def _reload(self, stamp: _Stamp) -> None:
        try:
            model = self._load()
            problem = None
        except Exception as exc:  # any refusal keeps the last good model live
            model, problem = None, exc
        after = self._stat()
        if after != stamp:  # the files changed while they were read: judge them later
            self._pending = after
            self._next_check = self._clock() + self._settle_seconds
            return
        self._judged = stamp
        if model is None:
            self.rejected += 1
            log.error("%s model in %s refused; keeping %s: %s", self.role, self._directory,
                      self._model.model_version, problem)
            if self._on_change is not None:
                self._on_change("refused", self._model)
            return
        if model.model_version == self._model.model_version:
            return  # the same model written again
        self.reloaded += 1
        log.info("%s model reloaded from %s: %s -> %s", self.role, self._directory,
                 self._model.model_version, model.model_version)
        if model.metadata.tiers != self._model.metadata.tiers:
            # score_batch tiers each batch by its live model (RiskPolicy.for_model), so
            # model-relative tiers move with the model; fixed tiers (settings) do not.
            tiers = model.metadata.tiers
            log.info("%s model tiers now %s", self.role, "the fixed ones (none in its "
                     "metadata)" if tiers is None else
                     f"medium >= {tiers.medium_at:.4g}, high >= {tiers.high_at:.4g}")
        self._model = model
        if self._on_change is not None:
            self._on_change("accepted", model)

    def _load(self) -> RiskModel:
        return load_model(self._directory, self._feature_version, self._feature_names)

    def _stat(self) -> _Stamp:
        return (self._stat_file(MODEL_FILE), self._stat_file(METADATA_FILE))

    def _stat_file(self, name: str) -> _FileStamp:
        try:
            info = os.stat(self._directory / name)  # follows a swapped symlink
        except OSError:
            return None
        return info.st_ino, info.st_mtime_ns, info.st_size


def live_model(source: RiskModel | ModelHolder) -> RiskModel:
    """The model to score with now: ``source`` itself, or its holder's live model."""
    return source.current() if isinstance(source, ModelHolder) else source
