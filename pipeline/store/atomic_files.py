"""Atomic file writes: a temporary file in the target's folder, fsync, then ``os.replace``.

A reader sees either the old file or the complete new one, never a partial file; a writer
killed mid-write leaves at most a hidden ``.<name>.<random>.tmp`` next to the target.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (best effort: some file systems refuse)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. a file system that cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file for writing; on a clean exit it replaces ``path`` atomically.

    ``mode`` is ``"wb"`` or ``"w"`` (UTF-8 text). On an exception the temporary file is removed
    and ``path`` is untouched. Parent folders are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would make every output private
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as compact JSON (no spaces) to ``path`` through :func:`atomic_write`."""
    with atomic_write(path, "w") as f:
        json.dump(obj, f, separators=(",", ":"))


def holds_json(path: Path, obj: Any) -> bool:
    """True where ``path`` exists and holds JSON equal to ``obj`` (e.g. the recipe a cached
    artefact was made with, written by :func:`write_json_atomic`)."""
    return path.is_file() and json.loads(path.read_text()) == obj
