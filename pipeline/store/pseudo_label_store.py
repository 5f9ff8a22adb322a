"""The pseudo-label store: a Parquet dataset of PCM's pseudo labels, one directory per epoch.

ROOT is a local directory or a pyarrow filesystem URI (``file:///abs/dir``, ``s3://bucket/prefix``,
``gs://bucket/prefix``). Layout::

    ROOT/_store.json                       schema version, joints, heatmap size (for humans and open())
    ROOT/epoch_0003/part-00000123.parquet  step file: one per (epoch, key); key = global step or batch
    ROOT/epoch_0003/part-00000123-w01.parquet  the same for writer 1 of a data-parallel run
        (writer r = lane r, which labels the r-th shard of every batch)
    ROOT/epoch_0003/part-00000000-00000999-w01.parquet  compacted file: the rows of keys 0 to 999
        of writer 1 (``part-00000000-00000999.parquet`` for a run with one writer)

While an epoch runs, every step adds a step file. When the epoch ends, the trainer compacts it
(:meth:`PseudoLabelStore.compact`): each writer's step files become one compacted file (or
several of at most ``method.store_rows_per_file`` rows each), holding the same rows in key
order, and the step files are deleted. A name tells the keys a file holds, so readers need no
index: a step file whose key lies in the range of a compacted file of the same writer, and a
compacted file whose range lies inside another one's of the same writer, were replaced and are
not read. A compaction interrupted between writing a compacted file and deleting the files it
replaced therefore leaves a store that reads the same (through this class), and running it
again deletes the leftovers. Files without ``-wRR`` belong to writer 0.

One row per (image, person). Columns (K joints; image space unless stated)::

    epoch int32, key int64, image_id int64, person_index int64 (position in the pool: the row key),
    image_file string, bbox fixed_size_list<float32>[4] (x, y, w, h),
    kpts_a, kpts_b, kpts_corrected fixed_size_list<float32>[K*3] ((x, y, confidence) per joint,
        joint-major: the (K, 3) array flattened),
    pi fixed_size_list<float32>[K] (position inconsistency of PCM's chosen pair / heatmap diagonal),
    weights fixed_size_list<float32>[K] (PCM's mask: 0 = joint dropped),
    matrix fixed_size_list<float64>[6] (the (2, 3) image -> input matrix of the easy view), flipped bool,
    heatmap_codes binary, heatmap_offset, heatmap_step fixed_size_list<float32>[K]
        (only in a store made with ``heatmap_size``: PCM's corrected heatmaps in the easy view's
        heatmap space, encoded by :func:`encode_heatmaps`).

Directory names carry no ``=`` on purpose: hive partition inference in pyarrow, Ray Data and
DuckDB would otherwise add (or clash with) an ``epoch`` column. Each file holds its own ``epoch``
column instead, so ``pyarrow.dataset.dataset(ROOT)``, ``ray.data.read_parquet(ROOT)`` and DuckDB's
``read_parquet('ROOT/**/*.parquet')`` all read the same columns and values.

Writes are atomic. On a local disk (a path or ``file://``) a file is written to a hidden
temporary file in its epoch directory (leading ``.``, suffix ``.tmp``: no reader's listing
includes it), fsynced, then renamed onto its final name with ``os.replace``; on an object store
it is written as one object in one request. A reader never sees a partial file, a writer killed
mid-write leaves at most a hidden temporary file, and re-writing an (epoch, key) replaces that
file (no duplicates). A run restored from a checkpoint first drops the labels of the steps it
will label again (:meth:`PseudoLabelStore.forget_from`): step files are deleted and a compacted
file holding keys on both sides is rewritten without the later keys (its name changes with its
range), so a relabelled step is never hidden by, nor doubled with, a compacted file.

Readers other than this class (pyarrow, Ray Data, DuckDB) read every file: they see each row
once except in the short window of a compaction (a compacted file and the files it replaces) or
after one that was interrupted and not yet run again.

Every file's key-value metadata carries ``sspcm.schema_version`` (:data:`SCHEMA_VERSION`),
``sspcm.num_joints``, ``sspcm.heatmap_size`` (JSON ``[w, h]`` or ``null``) and
``sspcm.heatmap_encoding``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from pipeline.store.locations import filesystem_of, is_uri, join_location, split_location, whole_file

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
STORE_FILE = "_store.json"
META_VERSION = b"sspcm.schema_version"
META_JOINTS = b"sspcm.num_joints"
META_HEATMAP = b"sspcm.heatmap_size"
META_ENCODING = b"sspcm.heatmap_encoding"
HEATMAP_ENCODING = "uint8-offset-step"
HEATMAP_COLUMNS = ("heatmap_codes", "heatmap_offset", "heatmap_step")
HEATMAP_MAX_ERROR = 0.99 / 255  # decode error bound of every joint whose value range is <= 2 * 255 * this
ZSTD_LEVEL = 6  # Parquet compression; higher levels save ~10% on heatmaps and write several times slower
COMPACT_ROW_GROUP_ROWS = 1024  # rows per Parquet row group of a compacted file (and in memory while merging)


class StoreError(Exception):
    """A store that cannot be read or written as asked; the message names the path and the field."""


@dataclass
class PseudoLabelRows:
    """One batch of unlabeled persons. N persons, K joints, heatmap (h, w)."""

    image_id: np.ndarray  # (N,) int64
    person_index: np.ndarray  # (N,) int64 position of the person in the pool: the stable row key
    image_file: list[str]  # N file names
    bbox: np.ndarray  # (N,4) float32 xywh, image space
    kpts_a: np.ndarray  # (N,K,3) float32 teacher A's keypoints x, y, confidence (image space)
    kpts_b: np.ndarray  # (N,K,3) teacher B
    pi: np.ndarray  # (N,K) float32 position inconsistency of the chosen pair (PCM)
    kpts_corrected: np.ndarray  # (N,K,3) corrected keypoints x, y, confidence (image space)
    weights: np.ndarray  # (N,K) float32 PCM weights (0 = masked joint)
    heatmaps: np.ndarray | None = None  # (N,K,h,w) float32 corrected heatmaps, easy view's heatmap space
    matrix: np.ndarray | None = None  # (N,2,3) float64 image -> input matrix of that easy view
    flipped: np.ndarray | None = None  # (N,) bool, the easy view was flipped

    def __len__(self) -> int:
        return len(self.image_id)


ROW_FIELDS = tuple(f.name for f in fields(PseudoLabelRows))


# ---- heatmap codec -----------------------------------------------------------------------------


def encode_heatmaps(hm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quantise heatmaps to one byte per pixel with a per-joint offset and step.

    Args:
        hm: (N, K, h, w) float heatmaps (any space; finite values).

    Returns:
        codes (N, K, h, w) uint8, offset (N, K) float32 and step (N, K) float32, with
        ``hm ~= offset + codes * step``. The step is ``2 * HEATMAP_MAX_ERROR``: every joint spends
        the whole error budget, so a near-zero background has few distinct codes and compresses.
        The offset is a whole number of steps, which puts 0 at the centre of a code's bin (a
        background within ``HEATMAP_MAX_ERROR`` of 0 is one code). A joint whose value range
        is wider than 254 steps (> ~1.97) gets the step ``range / 254`` instead (its error is
        then ``range / 508``; never the case for Gaussian-like maps).
    """
    hm = np.asarray(hm, dtype=np.float32)
    low = hm.min(axis=(-2, -1))
    span = hm.max(axis=(-2, -1)) - low
    step = np.maximum(np.float32(2 * HEATMAP_MAX_ERROR), span / np.float32(254)).astype(np.float32)
    offset = (np.rint(low / step) * step).astype(np.float32)
    codes = np.rint((hm - offset[..., None, None]) / step[..., None, None])
    return np.clip(codes, 0, 255).astype(np.uint8), offset, step


def decode_heatmaps(codes: np.ndarray, offset: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode_heatmaps`: codes (N,K,h,w) uint8, offset and step (N,K) ->
    (N,K,h,w) float32 heatmaps (max abs error ``HEATMAP_MAX_ERROR`` for Gaussian-like maps)."""
    offset = np.asarray(offset, dtype=np.float32)[..., None, None]
    step = np.asarray(step, dtype=np.float32)[..., None, None]
    return offset + np.asarray(codes, dtype=np.float32) * step


def heatmap_bytes(path: str | Path) -> int:
    """Compressed bytes of the heatmap columns (``heatmap_*``) in one Parquet file of the store
    (a local path or a URI)."""
    fs, fs_path = filesystem_of(path)
    with fs.open_input_file(fs_path) as f:
        meta = pq.ParquetFile(f).metadata
    return sum(
        meta.row_group(g).column(c).total_compressed_size
        for g in range(meta.num_row_groups)
        for c in range(meta.num_columns)
        if meta.row_group(g).column(c).path_in_schema.startswith("heatmap_")
    )


# ---- arrow conversion --------------------------------------------------------------------------


def _fixed(values: np.ndarray, size: int, dtype: type) -> pa.FixedSizeListArray:
    """(N, ...) array -> fixed_size_list column of ``size`` values per row (row-major flatten)."""
    flat = np.ascontiguousarray(values, dtype=dtype).reshape(-1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat), size)


def _unfixed(column: pa.ChunkedArray | pa.Array, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """fixed_size_list column of N rows -> (N, *shape) array."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    flat = column.flatten().to_numpy(zero_copy_only=False)
    return np.asarray(flat, dtype=dtype).reshape((len(column), *shape))


def _check_shape(name: str, value: np.ndarray | list, shape: tuple[int, ...]) -> None:
    if tuple(np.shape(value)) != shape:
        raise StoreError(f"PseudoLabelRows.{name}: expected shape {shape}, got {tuple(np.shape(value))}")


def _latest_per_person(keys: np.ndarray, person: np.ndarray) -> np.ndarray:
    """Row numbers keeping, for each person, the row with the largest key; sorted by person."""
    order = np.lexsort((-keys, person))  # by person, then largest key first
    _, first = np.unique(person[order], return_index=True)
    return order[first]


# ---- file names ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreFile:
    """One complete file of an epoch directory, as its name describes it.

    ``first`` .. ``last`` are the keys it holds (``first == last`` for a step file); ``writer`` is
    0 for a name without ``-wRR``; ``suffixed`` tells whether the name carries ``-wRR``.
    """

    name: str
    first: int
    last: int
    writer: int
    compacted: bool
    suffixed: bool

    @property
    def order(self) -> tuple[int, int, int]:
        """Sort key of an epoch's files: (first key, writer, last key)."""
        return self.first, self.writer, self.last


def parse_file_name(name: str) -> StoreFile | None:
    """The :class:`StoreFile` of a step file (``part-KKKKKKKK[-wRR].parquet``) or a compacted file
    (``part-KKKKKKKK-LLLLLLLL[-wRR].parquet``); None for any other name (hidden temporary files)."""
    if not (name.startswith("part-") and name.endswith(".parquet")):
        return None
    parts = name[len("part-") : -len(".parquet")].split("-")
    writer, suffixed = 0, False
    if len(parts) > 1 and parts[-1][:1] == "w" and parts[-1][1:].isdigit():
        writer, suffixed = int(parts[-1][1:]), True
        parts = parts[:-1]
    if len(parts) not in (1, 2) or not all(p.isdigit() for p in parts):
        return None
    first, last = int(parts[0]), int(parts[-1])
    if last < first:
        return None
    return StoreFile(name, first, last, writer, compacted=len(parts) == 2, suffixed=suffixed)


def step_file_name(key: int, writer: int | None = None) -> str:
    """``part-KKKKKKKK.parquet``, or ``part-KKKKKKKK-wRR.parquet`` for writer RR."""
    suffix = "" if writer is None else f"-w{int(writer):02d}"
    return f"part-{int(key):08d}{suffix}.parquet"


def compacted_file_name(first: int, last: int, writer: int, suffixed: bool) -> str:
    """``part-KKKKKKKK-LLLLLLLL.parquet`` (keys KKKKKKKK to LLLLLLLL), ``-wRR`` added when ``suffixed``."""
    suffix = f"-w{int(writer):02d}" if suffixed else ""
    return f"part-{int(first):08d}-{int(last):08d}{suffix}.parquet"


def _file_order(path: str | Path) -> tuple[int, int, int]:
    """(first key, writer, last key) of a store file's path, location or name."""
    parsed = parse_file_name(split_location(path)[1])
    if parsed is None:
        raise StoreError(f"{path}: not a pseudo-label store file name")
    return parsed.order


def _hidden(f: StoreFile, compacted: list[StoreFile]) -> bool:
    """True for a file readers skip: a step file whose key a compacted file of its writer holds, or
    a compacted file whose key range lies inside another compacted file's of its writer (the one
    that replaced it; of two with the same range, the first name in sort order is read)."""
    for c in compacted:
        if c.writer != f.writer or c.name == f.name:
            continue
        if not f.compacted and c.first <= f.first <= c.last:
            return True
        if f.compacted and c.first <= f.first and f.last <= c.last:
            if (c.first, c.last) != (f.first, f.last) or c.name < f.name:
                return True
    return False


def visible_files(files: list[StoreFile]) -> list[StoreFile]:
    """The files of an epoch that readers read, in (first key, writer, last key) order."""
    compacted = [f for f in files if f.compacted]
    return sorted((f for f in files if not _hidden(f, compacted)), key=lambda f: f.order)


def _groups(files: list[StoreFile], rows: list[int], cap: int) -> list[list[StoreFile]]:
    """Consecutive files packed greedily into groups of at most ``cap`` rows (0: one group); a
    file is never split, so a file of more than ``cap`` rows is a group of its own."""
    groups: list[list[StoreFile]] = []
    current: list[StoreFile] = []
    size = 0
    for f, n in zip(files, rows):
        if current and cap and size + n > cap:
            groups.append(current)
            current, size = [], 0
        current.append(f)
        size += n
    if current:
        groups.append(current)
    return groups


Location = Path | str  # a local path (local store) or a URI (store given by URI)


class PseudoLabelStore:
    """Write and read the pseudo-label store at ``root``.

    Args:
        root: the store's directory: a local path or a pyarrow filesystem URI (``file:///abs/dir``,
            ``s3://bucket/prefix``, ``gs://bucket/prefix``); created if missing, an existing
            store must match.
        num_joints: K.
        heatmap_size: (w, h) of the stored heatmaps (heatmap space), or None for a store without
            heatmaps.

    Paths this object returns (:meth:`epoch_dir`, :meth:`files`, :meth:`write_batch`, ...) are
    ``Path`` objects for a local root and URIs (``str``) for a URI root.
    """

    def __init__(self, root: str | Path, *, num_joints: int, heatmap_size: tuple[int, int] | None = None):
        self.root: Location = root if is_uri(root) else Path(root)
        self.fs, self.fs_root = filesystem_of(root)
        # a local disk renames atomically; an object store writes an object whole in one request
        self.local = isinstance(self.fs, pafs.LocalFileSystem)
        self.num_joints = int(num_joints)
        self.heatmap_size = (int(heatmap_size[0]), int(heatmap_size[1])) if heatmap_size is not None else None
        # epoch -> (file names, sorted person_index (M,), {"kpts_a": (M,K,3), "kpts_b": (M,K,3)})
        self._index: dict[int, tuple[tuple, np.ndarray, dict[str, np.ndarray]]] = {}
        self._made_dirs: set[str] = set()
        meta_path = self._fs_path(STORE_FILE)
        if self._is_file(meta_path):
            location = self._location(STORE_FILE)
            self._check_meta(_read_meta(self.fs, meta_path, location), location)
            return
        with self._output(meta_path) as f:
            f.write(json.dumps(self._meta(), indent=2).encode())

    def _meta(self) -> dict:
        return {
            "schema_version": SCHEMA_VERSION,
            "num_joints": self.num_joints,
            "heatmap_size": list(self.heatmap_size) if self.heatmap_size else None,
            "heatmap_encoding": HEATMAP_ENCODING,
        }

    def _check_meta(self, meta: dict, path: Location) -> None:
        for field, want in (("num_joints", self.num_joints), ("heatmap_size", self.heatmap_size)):
            have = meta.get(field)
            have = tuple(have) if isinstance(have, list) else have
            if have != want:
                raise StoreError(f"{path}: field {field!r} is {have}, this writer has {want}")

    @classmethod
    def open(cls, root: str | Path) -> PseudoLabelStore:
        """Open an existing store (local path or URI); StoreError if it is absent or of another
        schema version."""
        fs, fs_root = filesystem_of(root)
        meta_path = f"{fs_root}/{STORE_FILE}"
        if fs.get_file_info(meta_path).type != pafs.FileType.File:
            raise StoreError(f"{root}: not a pseudo-label store (no {STORE_FILE})")
        location = join_location(root, STORE_FILE)
        meta = _read_meta(fs, meta_path, location)
        for field in ("num_joints", "heatmap_size"):
            if field not in meta:
                raise StoreError(f"{location}: field {field!r} is missing")
        hm = meta["heatmap_size"]
        return cls(root, num_joints=int(meta["num_joints"]), heatmap_size=tuple(hm) if hm else None)

    # ---- paths and filesystem ------------------------------------------------------------------
    def _fs_path(self, *names: str) -> str:
        """Path inside the filesystem of ``ROOT/names...``."""
        return "/".join([self.fs_root, *names])

    def _location(self, *names: str) -> Location:
        """``ROOT/names...`` as this store shows it: a Path (local root) or a URI (URI root)."""
        if isinstance(self.root, Path):
            return self.root.joinpath(*names)
        return join_location(self.root, "/".join(names))

    def _is_file(self, fs_path: str) -> bool:
        return self.fs.get_file_info(fs_path).type == pafs.FileType.File

    @contextmanager
    def _output(self, fs_path: str) -> Iterator[Any]:
        """A binary file whose content becomes ``fs_path`` all at once on a clean exit
        (:func:`pipeline.store.locations.whole_file`: temporary file and rename on a local disk,
        one upload on an object store)."""
        parent = fs_path.rpartition("/")[0]
        if not self.local and parent not in self._made_dirs:
            self.fs.create_dir(parent, recursive=True)
            self._made_dirs.add(parent)
        with whole_file(self.fs, fs_path, rename=self.local) as f:
            yield f

    def _delete(self, fs_path: str) -> None:
        try:
            self.fs.delete_file(fs_path)
        except FileNotFoundError:  # another lane deleted it already
            pass

    @staticmethod
    def _epoch_name(epoch: int) -> str:
        return f"epoch_{int(epoch):04d}"

    def epoch_dir(self, epoch: int) -> Location:
        return self._location(self._epoch_name(epoch))

    def file_for(self, epoch: int, key: int, writer: int | None = None) -> Location:
        """The step file of (epoch, key) of ``writer`` (None: the only writer)."""
        return self._location(self._epoch_name(epoch), step_file_name(key, writer))

    def _listing(self, epoch_name: str) -> list[StoreFile]:
        """Every complete file of an epoch directory (visible to readers or not), unordered."""
        selector = pafs.FileSelector(self._fs_path(epoch_name), allow_not_found=True)
        found = []
        for info in self.fs.get_file_info(selector):
            parsed = parse_file_name(info.base_name) if info.type == pafs.FileType.File else None
            if parsed is not None:
                found.append(parsed)
        return found

    def epochs(self) -> list[int]:
        """Epochs whose directory holds at least one complete file, ascending."""
        out = []
        for info in self.fs.get_file_info(pafs.FileSelector(self.fs_root, allow_not_found=True)):
            name = info.base_name
            is_epoch = name.startswith("epoch_") and name[6:].isdigit()
            if info.type == pafs.FileType.Directory and is_epoch and self._listing(name):
                out.append(int(name[6:]))
        return sorted(out)

    def _visible(self, epoch: int) -> list[StoreFile]:
        """The files readers read; StoreError naming the epoch if there are none."""
        name = self._epoch_name(epoch)
        found = visible_files(self._listing(name))
        if not found:
            raise StoreError(
                f"{self.root}: partition for epoch {epoch} ({name}) is missing; epochs present: "
                f"{self.epochs()}"
            )
        return found

    def files(self, epoch: int) -> list[Location]:
        """The epoch's files that readers read, in (first key, writer) order: step files and
        compacted files, without those a compacted file replaced (see the module docstring);
        StoreError naming the epoch if there are none."""
        name = self._epoch_name(epoch)
        return [self._location(name, f.name) for f in self._visible(epoch)]

    def writers(self, epoch: int) -> list[int]:
        """Writer ids with files in the epoch, ascending (0 for files without ``-wRR``)."""
        return sorted({f.writer for f in self._listing(self._epoch_name(epoch))})

    # ---- writing -------------------------------------------------------------------------------
    def to_table(self, epoch: int, key: int, rows: PseudoLabelRows) -> pa.Table:
        """The Arrow table of one batch (shapes validated; StoreError naming the field if wrong)."""
        n, k = len(rows.image_id), self.num_joints
        _check_shape("image_id", rows.image_id, (n,))
        _check_shape("person_index", rows.person_index, (n,))
        _check_shape("image_file", rows.image_file, (n,))
        _check_shape("bbox", rows.bbox, (n, 4))
        for name in ("kpts_a", "kpts_b", "kpts_corrected"):
            _check_shape(name, getattr(rows, name), (n, k, 3))
        for name in ("pi", "weights"):
            _check_shape(name, getattr(rows, name), (n, k))
        matrix = rows.matrix if rows.matrix is not None else np.full((n, 2, 3), np.nan)
        flipped = rows.flipped if rows.flipped is not None else np.zeros(n, dtype=bool)
        _check_shape("matrix", matrix, (n, 2, 3))
        _check_shape("flipped", flipped, (n,))
        cols = {
            "epoch": pa.array(np.full(n, epoch, dtype=np.int32)),
            "key": pa.array(np.full(n, key, dtype=np.int64)),
            "image_id": pa.array(np.asarray(rows.image_id, dtype=np.int64)),
            "person_index": pa.array(np.asarray(rows.person_index, dtype=np.int64)),
            "image_file": pa.array([str(f) for f in rows.image_file], type=pa.string()),
            "bbox": _fixed(rows.bbox, 4, np.float32),
            "kpts_a": _fixed(rows.kpts_a, k * 3, np.float32),
            "kpts_b": _fixed(rows.kpts_b, k * 3, np.float32),
            "pi": _fixed(rows.pi, k, np.float32),
            "kpts_corrected": _fixed(rows.kpts_corrected, k * 3, np.float32),
            "weights": _fixed(rows.weights, k, np.float32),
            "matrix": _fixed(matrix, 6, np.float64),
            "flipped": pa.array(np.asarray(flipped, dtype=bool)),
        }
        if self.heatmap_size is None and rows.heatmaps is not None:
            raise StoreError(f"{self.root}: PseudoLabelRows.heatmaps given; the store has no heatmap_size")
        if self.heatmap_size is not None and rows.heatmaps is None:  # a batch without maps: nulls
            cols["heatmap_codes"] = pa.nulls(n, type=pa.binary())
            cols["heatmap_offset"] = pa.nulls(n, type=pa.list_(pa.float32(), k))
            cols["heatmap_step"] = pa.nulls(n, type=pa.list_(pa.float32(), k))
        elif self.heatmap_size is not None:
            w, h = self.heatmap_size
            _check_shape("heatmaps", rows.heatmaps, (n, k, h, w))
            if not np.isfinite(rows.heatmaps).all():
                raise StoreError(f"{self.root}: PseudoLabelRows.heatmaps has non-finite values")
            codes, offset, step = encode_heatmaps(rows.heatmaps)
            cols["heatmap_codes"] = pa.array([c.tobytes() for c in codes], type=pa.binary())
            cols["heatmap_offset"] = _fixed(offset, k, np.float32)
            cols["heatmap_step"] = _fixed(step, k, np.float32)
        meta = {
            META_VERSION: str(SCHEMA_VERSION).encode(),
            META_JOINTS: str(k).encode(),
            META_HEATMAP: json.dumps(list(self.heatmap_size) if self.heatmap_size else None).encode(),
            META_ENCODING: HEATMAP_ENCODING.encode(),
        }
        return pa.table(cols).replace_schema_metadata(meta)

    def write_batch(self, epoch: int, key: int, rows: PseudoLabelRows, writer: int | None = None) -> Location:
        """Write one batch as ``epoch_EEEE/part-KKKKKKKK.parquet`` (``...-wRR.parquet`` for
        ``writer`` RR of a data-parallel run), atomically; replaces an earlier write of the same
        (epoch, key, writer). Returns its path. A key that a compacted file of the writer already
        holds is forgotten first (:meth:`forget_from`), else readers keep the compacted rows."""
        table = self.to_table(epoch, key, rows)
        name = step_file_name(key, writer)
        with self._output(self._fs_path(self._epoch_name(epoch), name)) as f:
            pq.write_table(table, f, compression="zstd", compression_level=ZSTD_LEVEL)
        self._index.pop(int(epoch), None)
        return self._location(self._epoch_name(epoch), name)

    def compact(
        self, epoch: int, writer: int | None = None, rows_per_file: int | None = None
    ) -> list[Location]:
        """Merge an epoch's step files into one compacted file per writer, then delete them.

        Args:
            epoch: the epoch (an epoch without files is left as it is).
            writer: whose files (0 includes files without ``-wRR``); None = every writer of the
                epoch, each into its own files.
            rows_per_file: None or 0 = one file per writer; else files of at most that many rows
                (steps are not split: a step of more rows is a file of its own; a compacted file
                already there is kept as it is when it cannot merge with its neighbours).

        Returns:
            The paths of the compacted files written (none when there was nothing to merge).

        Readers see the same rows before, during and after: a compacted file is written whole
        (atomically) before the files it replaces are deleted, and readers skip the files a
        compacted file replaced. Running it again after an interruption finishes the job.
        """
        epoch, cap = int(epoch), int(rows_per_file or 0)
        if cap < 0:
            raise StoreError(f"{self.root}: rows_per_file must be >= 0, got {cap}")
        listing = self._listing(self._epoch_name(epoch))
        writers = sorted({f.writer for f in listing}) if writer is None else [int(writer)]
        written: list[Location] = []
        for w in writers:
            written += self._compact_writer(epoch, w, cap)
        self._index.pop(epoch, None)
        return written

    def _compact_writer(self, epoch: int, writer: int, cap: int) -> list[Location]:
        """:meth:`compact` for one writer."""
        name = self._epoch_name(epoch)
        visible = visible_files([f for f in self._listing(name) if f.writer == writer])
        rows = [self._num_rows(epoch, f.name) for f in visible] if cap else [0] * len(visible)
        written = []
        for group in _groups(visible, rows, cap):
            if len(group) == 1 and group[0].compacted:
                continue  # already compacted, nothing to merge it with
            suffixed = writer != 0 or any(f.suffixed for f in group)
            target = compacted_file_name(group[0].first, group[-1].last, writer, suffixed)
            self._merge(epoch, [f.name for f in group], target)
            written.append(self._location(name, target))
        # the files the compacted ones replaced (and those of an interrupted earlier run)
        remaining = [f for f in self._listing(name) if f.writer == writer]
        kept = {f.name for f in visible_files(remaining)}
        replaced = [f for f in remaining if f.name not in kept]
        for f in replaced:
            self._delete(self._fs_path(name, f.name))
        if written or replaced:
            log.info(
                "%s/%s writer %d: %d files compacted into %d, %d deleted",
                self.root, name, writer, len(visible), len(kept), len(replaced),
            )  # fmt: skip
        return written

    def _merge(self, epoch: int, sources: list[str], target: str, below: int | None = None) -> None:
        """Write the rows of the files ``sources`` of ``epoch``, in this order, as the file
        ``target`` (atomically; ``COMPACT_ROW_GROUP_ROWS`` rows in memory at a time); with
        ``below``, only the rows whose key is < ``below``. The first source's schema and
        ``sspcm.*`` metadata are the target's."""
        name = self._epoch_name(epoch)
        with self._output(self._fs_path(name, target)) as out:
            writer: pq.ParquetWriter | None = None
            pending: list[pa.RecordBatch] = []
            pending_rows = 0
            for source in sources:
                with self._parquet(epoch, source, None) as pf:
                    if writer is None:
                        writer = pq.ParquetWriter(
                            out, pf.schema_arrow, compression="zstd", compression_level=ZSTD_LEVEL
                        )
                    for batch in pf.iter_batches(batch_size=COMPACT_ROW_GROUP_ROWS):
                        if below is not None:
                            batch = batch.filter(pc.less(batch.column("key"), below))
                        pending.append(batch)
                        pending_rows += batch.num_rows
                        if pending_rows >= COMPACT_ROW_GROUP_ROWS:
                            writer.write_table(pa.Table.from_batches(pending, schema=writer.schema))
                            pending, pending_rows = [], 0
            if writer is not None:
                if pending_rows:
                    writer.write_table(pa.Table.from_batches(pending, schema=writer.schema))
                writer.close()

    def forget_from(self, epoch: int, key: int) -> int:
        """Drop the labels of ``epoch`` with key >= ``key`` and every later epoch's files: the
        steps a run restored from a checkpoint will label again (perhaps with another number of
        writers, whose file names differ). A compacted file holding keys on both sides is
        rewritten (atomically) without the later ones, as ``part-FFFFFFFF-(key-1)...``; it is
        deleted when no row remains. Several lanes may run it at once on the same store.
        Returns the number of files deleted or cut."""
        gone = 0
        for e in self.epochs():
            if e < epoch:
                continue
            name = self._epoch_name(e)
            for f in self._listing(name):
                if e > epoch or f.first >= key:
                    self._delete(self._fs_path(name, f.name))
                    gone += 1
                elif f.last >= key:
                    self._cut(e, f, key)
                    gone += 1
        self._index.clear()
        return gone

    def _cut(self, epoch: int, f: StoreFile, key: int) -> None:
        """Replace the compacted file ``f`` by one holding its rows of key < ``key`` (none: only
        delete it). A file another lane cut and deleted meanwhile is skipped."""
        path = self._fs_path(self._epoch_name(epoch), f.name)
        try:
            keys = self._read_file(epoch, f.name, ["key"])["key"].to_numpy()
            if (keys < key).any():
                target = compacted_file_name(f.first, key - 1, f.writer, f.suffixed)
                self._merge(epoch, [f.name], target, below=key)
        except (StoreError, OSError):
            if self._is_file(path):
                raise
            return
        self._delete(path)

    # ---- reading -------------------------------------------------------------------------------
    @contextmanager
    def _parquet(self, epoch: int, name: str, columns: list[str] | None) -> Iterator[pq.ParquetFile]:
        """One file of ``epoch``, open, its metadata checked against this store for reading
        ``columns`` (None: all); StoreError names the file and the field."""
        location = self._location(self._epoch_name(epoch), name)
        try:
            source = self.fs.open_input_file(self._fs_path(self._epoch_name(epoch), name))
        except OSError as e:
            raise StoreError(f"{location}: not a readable Parquet file ({e})") from e
        with source:
            try:
                pf = pq.ParquetFile(source)
            except (OSError, pa.ArrowInvalid) as e:
                raise StoreError(f"{location}: not a readable Parquet file ({e})") from e
            self._check_file_meta(location, pf.schema_arrow.metadata or {}, columns)
            yield pf

    def _check_file_meta(self, location: Location, meta: dict, columns: list[str] | None) -> None:
        version = meta.get(META_VERSION)
        if version is None or version != str(SCHEMA_VERSION).encode():
            raise StoreError(
                f"{location}: metadata field 'sspcm.schema_version' is "
                f"{version.decode() if version else 'missing'}; this code reads version {SCHEMA_VERSION}"
            )
        if meta.get(META_JOINTS) != str(self.num_joints).encode():
            raise StoreError(
                f"{location}: metadata field 'sspcm.num_joints' is {meta.get(META_JOINTS)!r}; the store "
                f"has {self.num_joints}"
            )
        wants_maps = columns is None or bool(set(columns) & set(HEATMAP_COLUMNS))
        wants_maps = wants_maps and self.heatmap_size is not None
        if wants_maps and meta.get(META_ENCODING) != HEATMAP_ENCODING.encode():
            raise StoreError(
                f"{location}: metadata field 'sspcm.heatmap_encoding' is {meta.get(META_ENCODING)!r}; "
                f"this code decodes {HEATMAP_ENCODING!r}"
            )

    def _read_file(self, epoch: int, name: str, columns: list[str] | None) -> pa.Table:
        """One file of ``epoch``, its metadata checked (StoreError names file and field)."""
        with self._parquet(epoch, name, columns) as pf:
            return pf.read(columns=columns)

    def _num_rows(self, epoch: int, name: str) -> int:
        with self._parquet(epoch, name, []) as pf:
            return pf.metadata.num_rows

    def _read_files(self, epoch: int, files: list[StoreFile], columns: list[str] | None) -> pa.Table:
        """The rows of ``files`` in (key, writer) order: the order of step files, which compacted
        files of several writers would otherwise change."""
        wanted = None if columns is None else list(dict.fromkeys([*columns, "key"]))
        tables = [self._read_file(epoch, f.name, wanted) for f in files]
        table = pa.concat_tables(tables)
        writer = np.repeat(np.array([f.writer for f in files], dtype=np.int64), [t.num_rows for t in tables])
        order = np.lexsort((writer, table["key"].to_numpy()))  # stable: key, then writer
        if (order != np.arange(len(order))).any():
            table = table.take(pa.array(order))
        return table if columns is None else table.select(list(columns))

    def read_epoch(self, epoch: int, columns: list[str] | None = None) -> pa.Table:
        """Every row of an epoch in (key, writer) order, duplicates included; the same rows in the
        same order whether or not the epoch is compacted."""
        return self._read_files(int(epoch), self._visible(epoch), columns)

    def read_rows(self, epoch: int) -> PseudoLabelRows:
        """The epoch as arrays, sorted by ``person_index``; a person present in several files keeps
        the row of the largest key. Heatmaps are decoded when every row has them, else None."""
        table = self.read_epoch(epoch)
        keep = _latest_per_person(table["key"].to_numpy(), table["person_index"].to_numpy())
        table = table.take(pa.array(keep))
        k = self.num_joints
        heatmaps = None
        if self.heatmap_size is not None and table["heatmap_codes"].null_count == 0:
            w, h = self.heatmap_size
            blobs = table["heatmap_codes"].to_pylist()
            codes = np.frombuffer(b"".join(blobs), dtype=np.uint8).reshape(len(blobs), k, h, w)
            offset = _unfixed(table["heatmap_offset"], (k,), np.float32)
            step = _unfixed(table["heatmap_step"], (k,), np.float32)
            heatmaps = decode_heatmaps(codes, offset, step)
        return PseudoLabelRows(
            image_id=table["image_id"].to_numpy(),
            person_index=table["person_index"].to_numpy(),
            image_file=table["image_file"].to_pylist(),
            bbox=_unfixed(table["bbox"], (4,), np.float32),
            kpts_a=_unfixed(table["kpts_a"], (k, 3), np.float32),
            kpts_b=_unfixed(table["kpts_b"], (k, 3), np.float32),
            pi=_unfixed(table["pi"], (k,), np.float32),
            kpts_corrected=_unfixed(table["kpts_corrected"], (k, 3), np.float32),
            weights=_unfixed(table["weights"], (k,), np.float32),
            heatmaps=heatmaps,
            matrix=_unfixed(table["matrix"], (2, 3), np.float64),
            flipped=table["flipped"].to_numpy(zero_copy_only=False),
        )

    def _keypoint_index(self, epoch: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Sorted person_index (M,) and teacher keypoints (M,K,3) of an epoch, cached in memory
        until the epoch's list of files changes (one directory listing per call: a compaction
        renames them) or this object re-writes one of them."""
        files = self._visible(epoch)
        signature = tuple(f.name for f in files)
        cached = self._index.get(epoch)
        if cached is not None and cached[0] == signature:
            return cached[1], cached[2]
        table = self._read_files(epoch, files, ["key", "person_index", "kpts_a", "kpts_b"])
        person = table["person_index"].to_numpy()
        keep = _latest_per_person(table["key"].to_numpy(), person)
        k = self.num_joints
        arrays = {name: _unfixed(table[name], (k, 3), np.float32)[keep] for name in ("kpts_a", "kpts_b")}
        self._index[epoch] = (signature, person[keep], arrays)
        return person[keep], arrays

    def read_keypoints(self, epoch: int, person_index: np.ndarray) -> dict[str, np.ndarray]:
        """Teacher keypoints of ``epoch`` for the asked persons, in the asked order.

        Args:
            epoch: the epoch (StoreError naming it if its partition is missing).
            person_index: (N,) int pool positions.

        Returns:
            ``kpts_a``, ``kpts_b`` (N,K,3) float32 (x, y, confidence) in image space, NaN where not
            found; ``found`` (N,) bool. The largest key wins for a person written several times.
        """
        persons, arrays = self._keypoint_index(int(epoch))
        asked = np.asarray(person_index, dtype=np.int64).reshape(-1)
        pos = np.clip(np.searchsorted(persons, asked), 0, max(len(persons) - 1, 0))
        found = (persons[pos] == asked) if len(persons) else np.zeros(len(asked), dtype=bool)
        out = {"found": found}
        for name, values in arrays.items():
            picked = np.full((len(asked), self.num_joints, 3), np.nan, dtype=np.float32)
            picked[found] = values[pos[found]]
            out[name] = picked
        return out

    def summary(self, bins: int = 10) -> dict:
        """Totals and per-joint statistics of the whole store (all rows, duplicates included).

        Keys: ``root``, ``schema_version``, ``num_joints``, ``heatmap_size``, ``rows``, ``epochs``,
        ``rows_per_epoch`` {epoch: rows}, ``kept_joint_fraction`` (weights > 0),
        ``kept_fraction_per_joint`` (K,), ``pi_bin_edges`` (bins + 1,) equal bins over
        [0, max PI] and ``pi_histogram`` (K, bins) counts of PI (PCM's chosen pair, / heatmap
        diagonal; non-finite PI not counted).
        """
        epochs = self.epochs()
        k = self.num_joints
        per_epoch, pis, weights = {}, [np.zeros((0, k), np.float32)], [np.zeros((0, k), np.float32)]
        for e in epochs:
            t = self.read_epoch(e, columns=["pi", "weights"])
            per_epoch[e] = t.num_rows
            pis.append(_unfixed(t["pi"], (k,), np.float32))
            weights.append(_unfixed(t["weights"], (k,), np.float32))
        pi, w = np.concatenate(pis), np.concatenate(weights)
        finite = pi[np.isfinite(pi)]
        top = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
        edges = np.linspace(0.0, top, bins + 1)
        hist = np.stack([np.histogram(pi[:, j][np.isfinite(pi[:, j])], bins=edges)[0] for j in range(k)])
        return {
            "root": str(self.root),
            "schema_version": SCHEMA_VERSION,
            "num_joints": k,
            "heatmap_size": list(self.heatmap_size) if self.heatmap_size else None,
            "rows": int(sum(per_epoch.values())),
            "epochs": epochs,
            "rows_per_epoch": per_epoch,
            "kept_joint_fraction": float((w > 0).mean()) if w.size else 0.0,
            "kept_fraction_per_joint": ((w > 0).mean(0) if len(w) else np.zeros(k)).tolist(),
            "pi_bin_edges": edges.tolist(),
            "pi_histogram": hist.astype(int).tolist(),
        }


def _read_meta(fs: pafs.FileSystem, fs_path: str, location: Location) -> dict:
    """``_store.json``, its schema version checked (StoreError naming the file and field)."""
    try:
        with fs.open_input_stream(fs_path) as f:
            meta = json.loads(f.read())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise StoreError(f"{location}: not readable as JSON ({e})") from e
    if not isinstance(meta, dict) or meta.get("schema_version") != SCHEMA_VERSION:
        version = meta.get("schema_version") if isinstance(meta, dict) else None
        raise StoreError(
            f"{location}: field 'schema_version' is {version!r}; this code reads version {SCHEMA_VERSION}"
        )
    return meta
