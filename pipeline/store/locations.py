"""Locations of stored files: a local path or a pyarrow filesystem URI, and the filesystem behind it.

A *location* is a string or a path: a local path (``runs/a/pseudo_labels``) or a URI that
``pyarrow.fs.FileSystem.from_uri`` knows (``file:///abs/dir``, ``s3://bucket/prefix``,
``gs://bucket/prefix``, ``hdfs://...``). A URI's ``?query`` (e.g. ``?region=eu-west-1``) stays at
the end when names are joined onto it.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import pyarrow.fs as pafs

from pipeline.store.atomic_files import atomic_write


def is_uri(location: str | Path) -> bool:
    """True for ``scheme://...`` strings (pyarrow filesystem URIs), False for local paths."""
    return isinstance(location, str) and "://" in location


def _split_query(location: str) -> tuple[str, str]:
    """``("s3://b/p", "?region=x")`` for ``"s3://b/p?region=x"``; the query is kept when joining."""
    if is_uri(location) and "?" in location:
        base, query = location.split("?", 1)
        return base, "?" + query
    return location, ""


def join_location(location: str | Path, name: str) -> str:
    """``location/name`` for a local path or a URI (a URI's ``?query`` stays at the end)."""
    if not is_uri(location):
        return str(Path(location) / name)
    base, query = _split_query(str(location))
    return f"{base.rstrip('/')}/{name}{query}"


def split_location(location: str | Path) -> tuple[str, str]:
    """``(parent, name)`` of a local path or a URI."""
    if not is_uri(location):
        p = Path(location)
        return str(p.parent), p.name
    base, query = _split_query(str(location))
    parent, _, name = base.rstrip("/").rpartition("/")
    return parent + query, name


def filesystem_of(location: str | Path) -> tuple[pafs.FileSystem, str]:
    """The filesystem of a location and the location's path inside it (no trailing ``/``): a
    ``LocalFileSystem`` and the absolute path for a local path, ``FileSystem.from_uri`` for a URI."""
    if is_uri(location):
        fs, path = pafs.FileSystem.from_uri(str(location))
        return fs, path.rstrip("/")
    return pafs.LocalFileSystem(), os.path.abspath(location)


def exists(location: str | Path) -> bool:
    """True where a file or folder is at ``location``."""
    fs, path = filesystem_of(location)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def read_bytes(location: str | Path) -> bytes:
    """The whole file at ``location``; FileNotFoundError naming it when there is none."""
    fs, path = filesystem_of(location)
    if fs.get_file_info(path).type != pafs.FileType.File:
        raise FileNotFoundError(f"{location}: file not found")
    with fs.open_input_stream(path) as f:
        return f.read()


def list_files(location: str | Path, prefix: str = "", suffix: str = "") -> list[str]:
    """Locations of the files directly in folder ``location`` whose names start with ``prefix``
    and end with ``suffix``, sorted by name (none when the folder is absent)."""
    fs, path = filesystem_of(location)
    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    names = sorted(
        i.base_name
        for i in infos
        if i.type == pafs.FileType.File and i.base_name.startswith(prefix) and i.base_name.endswith(suffix)
    )
    return [join_location(location, n) for n in names]


@contextmanager
def whole_file(fs: pafs.FileSystem, path: str, mode: str = "wb", *, rename: bool = True) -> Iterator[IO]:
    """Write ``path`` in ``fs`` so that no reader ever sees it half written.

    With ``rename`` (a local disk) through :func:`pipeline.store.atomic_files.atomic_write`:
    a hidden temporary file beside it, fsynced, then renamed onto it. Without (an object store,
    which has no rename but publishes each object whole): spooled to a local temporary file,
    then uploaded as one object on a clean exit; an error while writing uploads nothing, and
    memory stays small however large the file. The parent folder must exist (object stores
    need none). ``mode`` is ``"wb"`` or ``"w"`` (UTF-8 text).
    """
    if rename:
        with atomic_write(path, mode) as f:
            yield f
        return
    with tempfile.TemporaryFile() as spool:
        if "b" in mode:
            yield spool
        else:
            text = io.TextIOWrapper(spool, encoding="utf-8")
            yield text
            text.flush()
            text.detach()
        spool.seek(0)
        with fs.open_output_stream(path) as out:
            shutil.copyfileobj(spool, out, 1 << 20)


@contextmanager
def open_for_writing(location: str | Path, mode: str = "wb") -> Iterator[IO]:
    """:func:`whole_file` at a local path or a URI (its parent folders are made)."""
    fs, path = filesystem_of(location)
    local = isinstance(fs, pafs.LocalFileSystem)
    parent = path.rpartition("/")[0]
    if parent and not local:
        fs.create_dir(parent, recursive=True)
    with whole_file(fs, path, mode, rename=local) as f:
        yield f
