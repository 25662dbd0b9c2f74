"""Account states compressed with a zstd dictionary trained on the process's own states.

A shard keeps each cold account as its pickled state, compressed, and every epoch
writes the states it changed (:mod:`dataflows.shard_log`). Each state is small
(about 1.3 KB pickled), and most of what zstd spends on one goes into building
the entropy tables of so little data, which a dictionary carries once for all:
on 3,000 states of the 7-day benchmark, level 1 alone took 7.4 us per state and
kept 589 B; with an 8 KB dictionary trained on 500 earlier states (scrubbed, as
below), 3.6 us and 429 B (decompression 2.6 -> 1.3 us). A shipped dictionary
would fit only the default product's states, so each codec trains its own from
the first :data:`SAMPLES` states it packs, then packs with it, and trains
another once it no longer fits (:data:`MEASURE_EVERY`: accounts' states change
as they gain history).

A frame names its dictionary (zstd's dictionary id in its header), so frames
packed before the dictionary (and those of older runs, and zlib streams and bare
pickles from older snapshots, see :meth:`StateCodec.unpack`) are read as they are.
With a directory (beside the shard log's files), the dictionary is written there,
on disk before any frame that names it is packed, and read back by id by any
process restarting from the snapshots; a codec that finds dictionaries there packs
with the newest instead of training. Without one (no recovery), they live in memory.
Training takes about 0.1 to 0.2 s of the worker's time (scrubbing about 60 ms,
training 40, alone), once per dictionary.

A dictionary holds pieces of the states it was trained on. So that it holds
nothing of any one account (an erasure could not remove it: frames depend on it),
the samples are trained on with every pickled string removed that fewer than
:data:`COMMON_SUBJECTS` of the sampled accounts hold (account, user and event ids,
names, ...): what stays is the pickles' shape, numbers, and strings many accounts
share (feature names, tiers, tenants).
"""

from __future__ import annotations

import logging
import pickletools
import secrets
import threading
import time
import zlib
from collections import defaultdict
from pathlib import Path
from typing import ClassVar

import zstandard

from dataflows.durable import write_file
from schemas.errors import ChurnwatchError

logger = logging.getLogger(__name__)

# zstd level 1: pack() runs for every account an epoch touched, which on a live
# stream is about one per event. On 996 account states of the 6-month history
# (1,456 B pickled on average; medians of 7 passes), without a dictionary, it took
# 10.9 us to compress and 3.8 us to decompress, and kept 644 B, where zlib level 1
# took 35.3 and 7.9 us and kept 648 B (zstd's fast mode, level -1: 5.6 and 2.2 us,
# but 680 B, and a cold account is held as these bytes: memory per account counts).
ZSTD_LEVEL = 1
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# Trained on 500 states, 8 KB: on the 7-day benchmark's states, 100 to 3,500 samples
# and 4 to 32 KB all gave 390 to 410 B per state (scrubbed as below: 429 B).
SAMPLES = 500
DICTIONARY_SIZE = 8192
# A sampled string is trained on only if the states of this many accounts hold it.
COMMON_SUBJECTS = 5
# A dictionary trained on an account's first states fits its later ones less well
# (in bench_shard_memory's logins, trained on the first epoch: 313 B per state at the
# twelfth against 335 without one; trained on the twelfth's, 154 B). So every 64th
# state is also compressed without it, and once the last 32 such say it saves less
# than a fifth, the codec samples and trains again: not sooner than 10 times
# SAMPLES states after the last training, and not once a codec counts 8 (those in
# its directory when it started, and its own trainings since; each stays while a
# state may name it).
MEASURE_EVERY = 64
MEASURED = 32
MIN_SAVING = 0.2
RETRAIN_AFTER = 10
MAX_DICTIONARIES = 8
DICTIONARY_FOLDER = "dictionaries"  # in the shard log's folder
SUFFIX = ".zdict"
# zstd's dictionary ids below 32,768 are reserved; ids are 32-bit.
_FIRST_ID, _LAST_ID = 32_768, 2**31 - 1
# The opcodes whose argument is a string's bytes as they are, right before the next
# opcode (protocol 0's and 1's str forms are escaped or latin-1: left as they are,
# since states are pickled with the highest protocol, which has none).
_STRINGS = frozenset({
    "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "SHORT_BINBYTES", "BINBYTES",
    "BINBYTES8", "BYTEARRAY8",
})


class StateDictionaryMissing(ChurnwatchError):
    """A packed state names a dictionary that is not there (``churnwatch run`` prints
    this and exits 74, as when a shard log's file is missing)."""

    exit_code: ClassVar[int] = 74  # sysexits.h EX_IOERR, dataflows.run.EXIT_RECOVERY_STORE

    def __init__(self, dictionary_id: int, path: Path | None) -> None:
        where = (
            f"{path}, which is missing: the recovery directory was copied or cleaned"
            " without it. Restore it, or start a fresh recovery directory (the input is"
            " then read again from the start)" if path is not None
            else "no file: this process keeps its dictionaries in memory (no recovery)"
        )
        super().__init__(f"an account state was packed with dictionary {dictionary_id}: {where}")
        self.dictionary_id = dictionary_id
        self.path = path


class StateCodec:
    """Packs and unpacks account states (one per process and recovery directory; its
    compressors are per thread: zstd's are not thread-safe). ``samples``: how many
    states each dictionary is trained on; 0, none is (states packed without one)."""

    def __init__(self, directory: Path | None = None, *, samples: int = SAMPLES,
                 size: int = DICTIONARY_SIZE) -> None:
        self.directory = directory
        self._wanted = samples
        self._size = size
        self._lock = threading.Lock()
        self._dictionaries: dict[int, zstandard.ZstdCompressionDict] = {}
        on_disk = self._on_disk()
        # packs with the newest there (samples 0: with none, reading those named)
        self._dictionary = self._load(on_disk[-1]) if on_disk and samples > 0 else None
        # Dictionaries trained for the directory (or this codec, without one), at most
        # MAX_DICTIONARIES: each stays while any state may name it.
        self._trained = len(on_disk)
        # (subject, state) of the states packed since sampling began, until trained on:
        # from the first state without a dictionary; again once it no longer fits.
        self._samples: list[tuple[str, bytes]] | None = (
            [] if self._dictionary is None and samples > 0 else None)
        self._packs = 0
        # How the dictionary fits: every MEASURE_EVERY-th state is also compressed
        # without it; a moving average of the sizes' ratio (with / without).
        self._ratio = 0.0
        self._measured = 0
        self._retrain_after = 0  # packs: none sooner after a training
        self._compressing = threading.local()  # .compressor, for self._dictionary
        self._decompressing = threading.local()  # .by_id: dictionary id -> decompressor

    @property
    def dictionary_id(self) -> int:
        """The id of the dictionary states are packed with now; 0: none (yet)."""
        return 0 if self._dictionary is None else self._dictionary.dict_id()

    def pack(self, state: bytes, subject: str) -> bytes:
        """``state`` (an account's pickled state; ``subject``'s) compressed."""
        self._packs += 1
        samples = self._samples
        if samples is not None:
            samples.append((subject, state))
            if len(samples) >= self._wanted:
                self._train(samples)
        local = self._compressing
        try:
            compressor = local.compressor
        except AttributeError:
            compressor = local.compressor = zstandard.ZstdCompressor(
                level=ZSTD_LEVEL, dict_data=self._dictionary)
        # Copied out: the compressor's bytes keep the allocation of the worst case
        # (about 2.5 times the pickle), so 200,000 states of 649 B held 1,628 B of RSS
        # each; copies hold 739 B (zlib's: 734 B).
        packed = bytes(memoryview(compressor.compress(state)))
        if self._packs % MEASURE_EVERY == 0 and self._dictionary is not None:
            self._measure(state, len(packed))
        return packed

    def _measure(self, state: bytes, packed: int) -> None:
        """How much smaller the dictionary made ``state``; sampling for a new one once,
        on average, it saves less than :data:`MIN_SAVING` (the states have changed
        since it was trained: accounts gained history, the definitions changed)."""
        local = self._compressing
        try:
            plain = local.plain
        except AttributeError:
            plain = local.plain = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
        ratio = packed / max(1, len(plain.compress(state)))
        self._measured += 1
        self._ratio += (ratio - self._ratio) / min(self._measured, MEASURED)
        if (self._measured >= MEASURED and self._ratio > 1.0 - MIN_SAVING
                and self._packs >= self._retrain_after and self._samples is None
                and self._trained < MAX_DICTIONARIES):
            logger.info("account states: dictionary %d saves %.1f %% now; sampling for"
                        " another", self.dictionary_id, 100 * (1.0 - self._ratio))
            self._samples = []

    def unpack(self, blob: bytes) -> bytes:
        """The pickled state in ``blob``: a zstd frame, with the dictionary it names or
        none; or from an older snapshot a zlib stream (2026-11-29 to 2026-11-30), or
        the pickle itself (before: protocol 2+ pickles begin with 0x80; zstd frames
        with their magic number; zlib streams with neither)."""
        if blob[:1] == b"\x80":
            return blob
        if blob[:4] != ZSTD_MAGIC:
            return zlib.decompress(blob)
        dictionary_id = zstandard.get_frame_parameters(blob).dict_id
        local = self._decompressing
        try:
            by_id = local.by_id
        except AttributeError:
            by_id = local.by_id = {}
        decompressor = by_id.get(dictionary_id)
        if decompressor is None:
            decompressor = by_id[dictionary_id] = zstandard.ZstdDecompressor(
                dict_data=self._dictionary_of(dictionary_id))
        state: bytes = decompressor.decompress(blob)
        return state

    # -- the dictionary ----------------------------------------------------------

    def _train(self, samples: list[tuple[str, bytes]]) -> None:
        """Train a dictionary on ``samples`` (scrubbed), keep it, pack with it. An
        attempt that fails counts as one (the states go on as they were packed), so a
        codec whose states teach nothing does not try again and again."""
        with self._lock:
            if self._samples is not samples:  # another thread got there first
                return
            self._samples = None
            self._trained += 1
            self._measured = 0
            self._retrain_after = self._packs + RETRAIN_AFTER * self._wanted
        started = time.perf_counter()
        try:
            # too little to learn from (ZstdError), or not pickles (which no shard packs)
            dictionary = self._keep(zstandard.train_dictionary(
                self._size, scrubbed(samples), level=ZSTD_LEVEL))
        except (zstandard.ZstdError, ValueError, OSError) as exc:  # OSError: not kept,
            # so its states could not be read after a restart
            logger.warning("account states: no new dictionary (%s); packed as before, with"
                           " dictionary %d (0: none)", exc, self.dictionary_id)
            return
        self._dictionaries[dictionary.dict_id()] = dictionary
        self._dictionary = dictionary
        self._compressing = threading.local()  # each thread's next pack makes its own
        logger.info("account states are packed with dictionary %d (trained on %d states"
                    " in %.0f ms)", dictionary.dict_id(), len(samples),
                    (time.perf_counter() - started) * 1000)

    def _keep(self, dictionary: zstandard.ZstdCompressionDict) -> zstandard.ZstdCompressionDict:
        """Write ``dictionary`` to the directory (if any) under its id, on disk before
        it is used; another with the same id there (another process's): a new id."""
        directory = self.directory
        if directory is None:
            return dictionary
        directory.mkdir(parents=True, exist_ok=True)
        data = dictionary.as_bytes()
        while not write_file(self._path(int.from_bytes(data[4:8], "little")), data,
                             replace=False):
            # another's under that id (zstd's ids are random: seldom): another id
            other = secrets.randbelow(_LAST_ID - _FIRST_ID) + _FIRST_ID
            data = data[:4] + other.to_bytes(4, "little") + data[8:]
        return zstandard.ZstdCompressionDict(data)

    def _dictionary_of(self, dictionary_id: int) -> zstandard.ZstdCompressionDict | None:
        if dictionary_id == 0:
            return None
        dictionary = self._dictionaries.get(dictionary_id)
        if dictionary is not None:
            return dictionary
        if self.directory is None:
            raise StateDictionaryMissing(dictionary_id, None)
        path = self._path(dictionary_id)
        try:
            return self._load(path)
        except FileNotFoundError:
            raise StateDictionaryMissing(dictionary_id, path) from None

    def _on_disk(self) -> list[Path]:
        """The directory's dictionaries, oldest first."""
        if self.directory is None or not self.directory.is_dir():
            return []
        return sorted(self.directory.glob(f"*{SUFFIX}"),
                      key=lambda path: (path.stat().st_mtime_ns, path.name))

    def _load(self, path: Path) -> zstandard.ZstdCompressionDict:
        """The dictionary in ``path``, kept by its id."""
        dictionary = zstandard.ZstdCompressionDict(path.read_bytes())
        self._dictionaries[dictionary.dict_id()] = dictionary
        return dictionary

    def _path(self, dictionary_id: int) -> Path:
        assert self.directory is not None
        return self.directory / f"{dictionary_id:08x}{SUFFIX}"


def scrubbed(samples: list[tuple[str, bytes]]) -> list[bytes | bytearray | memoryview]:
    """Each sampled pickle without the contents of the strings that the states of
    fewer than :data:`COMMON_SUBJECTS` accounts hold (their opcodes and lengths stay).
    Not pickles any more: only what a dictionary may learn from."""
    found: list[list[tuple[int, int, bytes]]] = []
    holders: defaultdict[bytes, set[str]] = defaultdict(set)
    for subject, state in samples:
        strings: list[tuple[int, int, bytes]] = []
        string: bytes | None = None
        for opcode, value, position in pickletools.genops(state):
            assert position is not None  # read from bytes: every opcode has one
            if string is not None:  # the previous opcode's content ends where this begins
                strings.append((position - len(string), position, string))
                holders[string].add(subject)
            string = None
            if opcode.name in _STRINGS and isinstance(value, str | bytes | bytearray):
                string = value.encode("utf-8", "surrogatepass") if isinstance(value, str) \
                    else bytes(value)
        found.append(strings)
    out: list[bytes | bytearray | memoryview] = []
    for (_, state), strings in zip(samples, found, strict=True):
        kept = bytearray(state)
        for start, end, raw in reversed(strings):
            if len(holders[raw]) < COMMON_SUBJECTS:
                del kept[start:end]
        out.append(bytes(kept))
    return out
