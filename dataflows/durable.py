"""Files a crash cannot leave half-written: written beside their place, synced, then
moved into it, and the folder synced.

The recovery directory's own files are written this way: the shard and absence
logs' files (a snapshot names them, so they must be on disk before Bytewax takes
it), the state codec's dictionaries (never replaced: frames name them) and the
directory's shard count.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_file(path: Path, data: bytes, *, replace: bool = True) -> bool:
    """Put ``data`` at ``path``, synced with its folder's entry; a crash leaves the old
    file or none, never part of this one.

    ``replace=False`` never replaces a file already at ``path`` (one that older data
    names, or another process's): the answer is then whether that file holds
    ``data``. A failed write (a full disk) leaves no partial file behind and raises
    its ``OSError`` naming ``path``, so the run can say which directory filled.
    """
    partial = path.parent / f".{path.name}.{secrets.token_hex(4)}.partial"
    try:
        with open(partial, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        if replace:
            os.replace(partial, path)
        else:
            os.link(partial, path)
    except FileExistsError:  # only os.link raises it
        return path.read_bytes() == data
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    finally:
        partial.unlink(missing_ok=True)
    sync_folder(path.parent)
    return True


def sync_folder(folder: Path) -> None:
    """Sync ``folder``'s entries: a file moved or linked into it stays after a crash."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
