"""The pseudo-label store: a Parquet dataset of PCM's pseudo labels, one directory per epoch.

Layout::

    ROOT/_store.json                       schema version, joints, heatmap size (for humans and open())
    ROOT/epoch_0003/part-00000123.parquet  one file per (epoch, key); key = global step or batch number
    ROOT/epoch_0003/part-00000123-w01.parquet  the same for writer 1 of a data-parallel run
        (writer r = lane r, which labels the r-th shard of every batch)

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

Writes are atomic: a batch is written to a hidden temporary file in its epoch directory (leading
``.``, suffix ``.tmp``: no reader's listing includes it), fsynced, then renamed onto its final
name with ``os.replace``. A reader never sees a partial file, a writer killed mid-write leaves at
most a hidden temporary file, and re-writing an (epoch, key) replaces that file (no duplicates).

Every file's key-value metadata carries ``sspcm.schema_version`` (:data:`SCHEMA_VERSION`),
``sspcm.num_joints``, ``sspcm.heatmap_size`` (JSON ``[w, h]`` or ``null``) and
``sspcm.heatmap_encoding``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.store.atomic_files import atomic_write

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
    """Compressed bytes of the heatmap columns (``heatmap_*``) in one Parquet file of the store."""
    meta = pq.ParquetFile(path).metadata
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


def _file_order(path: Path) -> tuple[int, int]:
    """(key, writer) of ``part-KKKKKKKK.parquet`` (writer 0) or ``part-KKKKKKKK-wRR.parquet``."""
    key, _, writer = path.stem[5:].partition("-w")
    return int(key), int(writer or 0)


class PseudoLabelStore:
    """Write and read the pseudo-label store at ``root`` (a local directory).

    Args:
        root: the store directory (created if missing; an existing store must match).
        num_joints: K.
        heatmap_size: (w, h) of the stored heatmaps (heatmap space), or None for a store without
            heatmaps.
    """

    def __init__(self, root: str | Path, *, num_joints: int, heatmap_size: tuple[int, int] | None = None):
        self.root = Path(root)
        self.num_joints = int(num_joints)
        self.heatmap_size = (int(heatmap_size[0]), int(heatmap_size[1])) if heatmap_size is not None else None
        # epoch -> (file names, sorted person_index (M,), {"kpts_a": (M,K,3), "kpts_b": (M,K,3)})
        self._index: dict[int, tuple[tuple, np.ndarray, dict[str, np.ndarray]]] = {}
        meta_path = self.root / STORE_FILE
        if meta_path.is_file():
            self._check_meta(_read_meta(meta_path), meta_path)
            return
        with atomic_write(meta_path, "w") as f:
            json.dump(self._meta(), f, indent=2)

    def _meta(self) -> dict:
        return {
            "schema_version": SCHEMA_VERSION,
            "num_joints": self.num_joints,
            "heatmap_size": list(self.heatmap_size) if self.heatmap_size else None,
            "heatmap_encoding": HEATMAP_ENCODING,
        }

    def _check_meta(self, meta: dict, path: Path) -> None:
        for field, want in (("num_joints", self.num_joints), ("heatmap_size", self.heatmap_size)):
            have = meta.get(field)
            have = tuple(have) if isinstance(have, list) else have
            if have != want:
                raise StoreError(f"{path}: field {field!r} is {have}, this writer has {want}")

    @classmethod
    def open(cls, root: str | Path) -> PseudoLabelStore:
        """Open an existing store; StoreError if it is absent or of another schema version."""
        meta_path = Path(root) / STORE_FILE
        if not meta_path.is_file():
            raise StoreError(f"{root}: not a pseudo-label store (no {STORE_FILE})")
        meta = _read_meta(meta_path)
        for field in ("num_joints", "heatmap_size"):
            if field not in meta:
                raise StoreError(f"{meta_path}: field {field!r} is missing")
        hm = meta["heatmap_size"]
        return cls(root, num_joints=int(meta["num_joints"]), heatmap_size=tuple(hm) if hm else None)

    # ---- paths ---------------------------------------------------------------------------------
    def epoch_dir(self, epoch: int) -> Path:
        return self.root / f"epoch_{int(epoch):04d}"

    def file_for(self, epoch: int, key: int, writer: int | None = None) -> Path:
        suffix = "" if writer is None else f"-w{int(writer):02d}"
        return self.epoch_dir(epoch) / f"part-{int(key):08d}{suffix}.parquet"

    def epochs(self) -> list[int]:
        """Epochs whose directory holds at least one complete file, ascending."""
        out = []
        for d in self.root.glob("epoch_*"):
            if d.is_dir() and d.name[6:].isdigit() and any(d.glob("part-*.parquet")):
                out.append(int(d.name[6:]))
        return sorted(out)

    def files(self, epoch: int) -> list[Path]:
        """The epoch's complete files in (key, writer) order; StoreError naming the epoch if there
        are none."""
        d = self.epoch_dir(epoch)
        found = list(d.glob("part-*.parquet")) if d.is_dir() else []
        if not found:
            raise StoreError(
                f"{self.root}: partition for epoch {epoch} ({d.name}) is missing; epochs present: "
                f"{self.epochs()}"
            )
        return sorted(found, key=_file_order)

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

    def write_batch(self, epoch: int, key: int, rows: PseudoLabelRows, writer: int | None = None) -> Path:
        """Write one batch as ``epoch_EEEE/part-KKKKKKKK.parquet`` (``...-wRR.parquet`` for
        ``writer`` RR of a data-parallel run), atomically (hidden temporary file, fsync, rename);
        replaces an earlier write of the same (epoch, key, writer). Returns the path."""
        table = self.to_table(epoch, key, rows)
        final = self.file_for(epoch, key, writer)
        with atomic_write(final) as f:
            pq.write_table(table, f, compression="zstd", compression_level=ZSTD_LEVEL)
        self._index.pop(int(epoch), None)
        return final

    def forget_from(self, epoch: int, key: int) -> int:
        """Delete the files of ``epoch`` with key >= ``key`` and every later epoch's files: the
        steps a run restored from a checkpoint will label again (perhaps with another number
        of writers, whose file names differ). Returns the number of files deleted."""
        gone = 0
        for e in self.epochs():
            if e < epoch:
                continue
            for path in self.epoch_dir(e).glob("part-*.parquet"):
                if e > epoch or _file_order(path)[0] >= key:
                    path.unlink(missing_ok=True)  # another lane may have deleted it already
                    gone += 1
        self._index.clear()
        return gone

    # ---- reading -------------------------------------------------------------------------------
    def _read_file(self, path: Path, columns: list[str] | None) -> pa.Table:
        """One file, its metadata checked against this store (StoreError names file and field)."""
        try:
            meta = pq.read_schema(path).metadata or {}
        except (OSError, pa.ArrowInvalid) as e:
            raise StoreError(f"{path}: not a readable Parquet file ({e})") from e
        version = meta.get(META_VERSION)
        if version is None or version != str(SCHEMA_VERSION).encode():
            raise StoreError(
                f"{path}: metadata field 'sspcm.schema_version' is "
                f"{version.decode() if version else 'missing'}; this code reads version {SCHEMA_VERSION}"
            )
        if meta.get(META_JOINTS) != str(self.num_joints).encode():
            raise StoreError(
                f"{path}: metadata field 'sspcm.num_joints' is {meta.get(META_JOINTS)!r}; the store "
                f"has {self.num_joints}"
            )
        wants_maps = columns is None or bool(set(columns) & set(HEATMAP_COLUMNS))
        wants_maps = wants_maps and self.heatmap_size is not None
        if wants_maps and meta.get(META_ENCODING) != HEATMAP_ENCODING.encode():
            raise StoreError(
                f"{path}: metadata field 'sspcm.heatmap_encoding' is {meta.get(META_ENCODING)!r}; this "
                f"code decodes {HEATMAP_ENCODING!r}"
            )
        return pq.read_table(path, columns=columns)

    def read_epoch(self, epoch: int, columns: list[str] | None = None) -> pa.Table:
        """Every row of an epoch (all its files in key order, duplicates included)."""
        return pa.concat_tables([self._read_file(p, columns) for p in self.files(epoch)])

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
        until the epoch's list of files changes (one directory listing per call) or this object
        re-writes one of them."""
        files = self.files(epoch)
        signature = tuple(p.name for p in files)
        cached = self._index.get(epoch)
        if cached is not None and cached[0] == signature:
            return cached[1], cached[2]
        table = pa.concat_tables(
            [self._read_file(p, ["key", "person_index", "kpts_a", "kpts_b"]) for p in files]
        )
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


def _read_meta(path: Path) -> dict:
    """``_store.json``, its schema version checked (StoreError naming the file and field)."""
    try:
        meta = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise StoreError(f"{path}: not readable as JSON ({e})") from e
    if not isinstance(meta, dict) or meta.get("schema_version") != SCHEMA_VERSION:
        version = meta.get("schema_version") if isinstance(meta, dict) else None
        raise StoreError(
            f"{path}: field 'schema_version' is {version!r}; this code reads version {SCHEMA_VERSION}"
        )
    return meta
