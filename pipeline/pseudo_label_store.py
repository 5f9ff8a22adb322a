"""The pseudo-label store: a Parquet dataset of PCM's pseudo labels, one partition per epoch.

Layout::

    ROOT/_store.json                       (schema version, joints, heatmap size; for humans)
    ROOT/epoch_0003/part-00000123.parquet  (one file per (epoch, key); key = global step or batch)

One row per (image, person). Columns (K joints, image coordinates unless stated):

    epoch int32, key int64, image_id int64, person_index int64 (position in the pool: the row key),
    image_file string, bbox float32[4] (x, y, w, h),
    kpts_a, kpts_b, kpts_corrected float32[K*3] (x, y, confidence per joint, flattened),
    pi float32[K] (position inconsistency of PCM's chosen pair / heatmap diagonal),
    weights float32[K] (PCM's mask: 0 = joint dropped),
    matrix float64[6] (image -> input matrix of the easy view the heatmaps live in), flipped bool,
    heatmap_u8 binary (K*h*w bytes), heatmap_lo, heatmap_hi float32[K]  (only with heatmaps).

Corrected heatmaps are stored per joint as 8-bit codes between that joint's min and max
(``v = lo + code / 255 * (hi - lo)``), zstd-compressed: the decode error is at most
``(hi - lo) / 510`` (< 1/255 for maps whose range is below 2, i.e. every Gaussian-like map).

Directory names carry no ``=`` on purpose: each file holds its own ``epoch`` column, so pyarrow,
Ray Data (``read_parquet(ROOT)``) and DuckDB (``read_parquet('ROOT/**/*.parquet')``) read the
same columns without hive-partition inference. Writes go to a hidden temporary file (leading
``.``, no ``.parquet`` suffix: no reader lists it), are fsynced and then renamed: a reader never
sees a partial file, and re-writing an (epoch, key) replaces it, never duplicates it.
The schema version is in every file's key-value metadata (``sspcm.schema_version``).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
META_VERSION = b"sspcm.schema_version"
META_JOINTS = b"sspcm.num_joints"
META_HEATMAP = b"sspcm.heatmap_size"
STORE_FILE = "_store.json"


class StoreError(Exception):
    """A store that cannot be read or written as asked (the message names the path and field)."""


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
    heatmaps: np.ndarray | None = None  # (N,K,h,w) float32 corrected heatmaps, easy-view heatmap space
    matrix: np.ndarray | None = None  # (N,2,3) float64 image -> input matrix of that easy view
    flipped: np.ndarray | None = None  # (N,) bool, the easy view was flipped

    def __len__(self) -> int:
        return len(self.image_id)


# ---- heatmap codec -----------------------------------------------------------------------------


def encode_heatmaps(hm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N,K,h,w) float -> codes (N,K,h,w) uint8, lo (N,K) float32, hi (N,K) float32."""
    hm = np.asarray(hm, dtype=np.float32)
    lo = hm.min(axis=(2, 3))
    hi = hm.max(axis=(2, 3))
    span = np.where(hi > lo, hi - lo, 1.0)[..., None, None]
    codes = np.rint((hm - lo[..., None, None]) / span * 255.0)
    return np.clip(codes, 0, 255).astype(np.uint8), lo.astype(np.float32), hi.astype(np.float32)


def decode_heatmaps(codes: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode_heatmaps`: (N,K,h,w) float32, error <= (hi - lo) / 510."""
    lo = np.asarray(lo, dtype=np.float32)[..., None, None]
    hi = np.asarray(hi, dtype=np.float32)[..., None, None]
    return lo + np.asarray(codes, dtype=np.float32) / 255.0 * (hi - lo)


# ---- arrow conversion --------------------------------------------------------------------------


def _fixed(values: np.ndarray, n: int, dtype) -> pa.FixedSizeListArray:
    flat = np.ascontiguousarray(values, dtype=dtype).reshape(-1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat), n)


def _unfixed(column: pa.ChunkedArray | pa.Array, shape: tuple[int, ...], dtype) -> np.ndarray:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    flat = column.flatten().to_numpy(zero_copy_only=False)
    return np.asarray(flat, dtype=dtype).reshape((len(column), *shape))


def _check(name: str, value: np.ndarray, shape: tuple[int, ...]) -> None:
    if tuple(np.shape(value)) != shape:
        raise StoreError(f"PseudoLabelRows.{name}: expected shape {shape}, got {tuple(np.shape(value))}")


class PseudoLabelStore:
    """Write and read the pseudo-label store at ``root`` (a local directory).

    Args:
        root: the store directory (created if missing).
        num_joints: K.
        heatmap_size: (w, h) of stored heatmaps, or None when rows carry no heatmaps.
    """

    def __init__(self, root: str | Path, *, num_joints: int, heatmap_size: tuple[int, int] | None = None):
        self.root = Path(root)
        self.num_joints = int(num_joints)
        self.heatmap_size = tuple(int(v) for v in heatmap_size) if heatmap_size is not None else None
        self._index: dict[int, tuple[dict[int, int], dict[str, np.ndarray]]] = {}
        meta = self.root / STORE_FILE
        if meta.is_file():
            self._check_meta(json.loads(meta.read_text()), meta)
        else:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = self.root / f".{STORE_FILE}.tmp-{os.getpid()}"
            tmp.write_text(json.dumps(self._meta(), indent=2))
            os.replace(tmp, meta)

    def _meta(self) -> dict:
        return {
            "schema_version": SCHEMA_VERSION,
            "num_joints": self.num_joints,
            "heatmap_size": list(self.heatmap_size) if self.heatmap_size else None,
        }

    def _check_meta(self, meta: dict, path: Path) -> None:
        if meta.get("schema_version") != SCHEMA_VERSION:
            raise StoreError(
                f"{path}: field 'schema_version' is {meta.get('schema_version')!r}; this code reads "
                f"version {SCHEMA_VERSION}"
            )
        if int(meta.get("num_joints", -1)) != self.num_joints:
            raise StoreError(
                f"{path}: field 'num_joints' is {meta.get('num_joints')}, the writer has {self.num_joints}"
            )

    @classmethod
    def open(cls, root: str | Path) -> PseudoLabelStore:
        """Open an existing store; StoreError if it is absent or of another schema version."""
        meta_path = Path(root) / STORE_FILE
        if not meta_path.is_file():
            raise StoreError(f"{root}: not a pseudo-label store (no {STORE_FILE})")
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as e:
            raise StoreError(f"{meta_path}: not valid JSON ({e})") from e
        if meta.get("schema_version") != SCHEMA_VERSION:
            raise StoreError(
                f"{meta_path}: field 'schema_version' is {meta.get('schema_version')!r}; this code "
                f"reads version {SCHEMA_VERSION}"
            )
        hm = meta.get("heatmap_size")
        return cls(root, num_joints=int(meta["num_joints"]), heatmap_size=tuple(hm) if hm else None)

    # ---- paths ---------------------------------------------------------------------------------
    def epoch_dir(self, epoch: int) -> Path:
        return self.root / f"epoch_{int(epoch):04d}"

    def file_for(self, epoch: int, key: int) -> Path:
        return self.epoch_dir(epoch) / f"part-{int(key):08d}.parquet"

    def epochs(self) -> list[int]:
        """Epochs that have a partition with at least one complete file."""
        out = []
        for d in sorted(self.root.glob("epoch_*")):
            if d.is_dir() and d.name[6:].isdigit() and any(d.glob("part-*.parquet")):
                out.append(int(d.name[6:]))
        return out

    def files(self, epoch: int) -> list[Path]:
        d = self.epoch_dir(epoch)
        found = sorted(d.glob("part-*.parquet")) if d.is_dir() else []
        if not found:
            raise StoreError(
                f"{self.root}: partition for epoch {epoch} ({d.name}) is missing; epochs present: "
                f"{self.epochs()}"
            )
        return found

    # ---- writing -------------------------------------------------------------------------------
    def to_table(self, epoch: int, key: int, rows: PseudoLabelRows) -> pa.Table:
        """The Arrow table of one batch (validates shapes)."""
        n, k = len(rows.image_id), self.num_joints
        _check("person_index", rows.person_index, (n,))
        _check("bbox", rows.bbox, (n, 4))
        for name in ("kpts_a", "kpts_b", "kpts_corrected"):
            _check(name, getattr(rows, name), (n, k, 3))
        for name in ("pi", "weights"):
            _check(name, getattr(rows, name), (n, k))
        if len(rows.image_file) != n:
            raise StoreError(f"PseudoLabelRows.image_file: expected {n} names, got {len(rows.image_file)}")
        matrix = rows.matrix if rows.matrix is not None else np.full((n, 2, 3), np.nan)
        flipped = rows.flipped if rows.flipped is not None else np.zeros(n, dtype=bool)
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
        if self.heatmap_size is not None and rows.heatmaps is None:  # a batch without maps: nulls
            cols["heatmap_u8"] = pa.nulls(n, type=pa.binary())
            cols["heatmap_lo"] = pa.nulls(n, type=pa.list_(pa.float32(), k))
            cols["heatmap_hi"] = pa.nulls(n, type=pa.list_(pa.float32(), k))
        elif self.heatmap_size is not None:
            w, h = self.heatmap_size
            _check("heatmaps", rows.heatmaps, (n, k, h, w))
            codes, lo, hi = encode_heatmaps(rows.heatmaps)
            cols["heatmap_u8"] = pa.array([c.tobytes() for c in codes], type=pa.binary())
            cols["heatmap_lo"] = _fixed(lo, k, np.float32)
            cols["heatmap_hi"] = _fixed(hi, k, np.float32)
        table = pa.table(cols)
        meta = {
            META_VERSION: str(SCHEMA_VERSION).encode(),
            META_JOINTS: str(k).encode(),
            META_HEATMAP: json.dumps(list(self.heatmap_size) if self.heatmap_size else None).encode(),
        }
        return table.replace_schema_metadata(meta)

    def write_batch(self, epoch: int, key: int, rows: PseudoLabelRows) -> Path:
        """Write one batch as ``epoch_EEEE/part-KKKKKKKK.parquet``, atomically; replaces an earlier
        write of the same (epoch, key)."""
        table = self.to_table(epoch, key, rows)
        final = self.file_for(epoch, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f".{final.stem}.tmp-{os.getpid()}"
        with open(tmp, "wb") as f:
            pq.write_table(table, f, compression="zstd")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
        self._index.pop(int(epoch), None)
        return final

    # ---- reading -------------------------------------------------------------------------------
    def _read_file(self, path: Path, columns: list[str] | None) -> pa.Table:
        try:
            meta = pq.read_schema(path).metadata or {}
        except (OSError, pa.ArrowInvalid) as e:
            raise StoreError(f"{path}: not a readable Parquet file ({e})") from e
        version = meta.get(META_VERSION)
        if version is None or int(version) != SCHEMA_VERSION:
            raise StoreError(
                f"{path}: metadata field 'sspcm.schema_version' is "
                f"{version.decode() if version else 'missing'}; this code reads version {SCHEMA_VERSION}"
            )
        return pq.read_table(path, columns=columns)

    def read_epoch(self, epoch: int, columns: list[str] | None = None) -> pa.Table:
        """Every row of an epoch's partition (all its files, in key order)."""
        tables = [self._read_file(p, columns) for p in self.files(epoch)]
        return pa.concat_tables(tables)

    def read_rows(self, epoch: int) -> PseudoLabelRows:
        """The epoch as arrays; a person present in several files keeps the largest key's row."""
        table = self.read_epoch(epoch)
        keys = table["key"].to_numpy()
        person = table["person_index"].to_numpy()
        order = np.lexsort((-keys, person))  # per person, largest key first
        _, first = np.unique(person[order], return_index=True)
        table = table.take(pa.array(order[first]))
        k = self.num_joints
        heatmaps = None
        has_maps = "heatmap_u8" in table.column_names and table["heatmap_u8"].null_count == 0
        if has_maps and self.heatmap_size is not None:
            w, h = self.heatmap_size
            blobs = table["heatmap_u8"].to_pylist()
            codes = np.zeros((0, k, h, w), np.uint8)
            if blobs:
                codes = np.stack([np.frombuffer(b, dtype=np.uint8) for b in blobs]).reshape(-1, k, h, w)
            lo = _unfixed(table["heatmap_lo"], (k,), np.float32)
            hi = _unfixed(table["heatmap_hi"], (k,), np.float32)
            heatmaps = decode_heatmaps(codes, lo, hi)
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

    def read_keypoints(self, epoch: int, person_index: np.ndarray) -> dict[str, np.ndarray]:
        """Teacher keypoints of ``epoch`` for the asked persons, in the asked order.

        Returns ``kpts_a``, ``kpts_b`` (N,K,3) image space (NaN where not found) and ``found`` (N,)
        bool. The epoch's index is built once and kept (PCM asks every step).
        """
        epoch = int(epoch)
        if epoch not in self._index:
            table = self.read_epoch(epoch, columns=["key", "person_index", "kpts_a", "kpts_b"])
            keys, person = table["key"].to_numpy(), table["person_index"].to_numpy()
            order = np.lexsort((-keys, person))
            _, first = np.unique(person[order], return_index=True)
            rows = order[first]
            k = self.num_joints
            arrays = {
                "kpts_a": _unfixed(table["kpts_a"], (k, 3), np.float32)[rows],
                "kpts_b": _unfixed(table["kpts_b"], (k, 3), np.float32)[rows],
            }
            self._index[epoch] = ({int(p): i for i, p in enumerate(person[rows])}, arrays)
        lookup, arrays = self._index[epoch]
        asked = np.asarray(person_index, dtype=np.int64).reshape(-1)
        pos = np.array([lookup.get(int(p), -1) for p in asked], dtype=np.int64)
        found = pos >= 0
        out = {"found": found}
        for name, values in arrays.items():
            picked = np.full((len(asked), self.num_joints, 3), np.nan, dtype=np.float32)
            picked[found] = values[pos[found]]
            out[name] = picked
        return out

    def summary(self, bins: int = 10) -> dict:
        """Rows, epochs, rows per epoch, kept-joint fraction and a PI histogram per joint.

        The histogram has ``bins`` equal bins over [0, max PI] of all epochs; ``pi_histogram`` is
        (K, bins) counts, ``pi_bin_edges`` the bins + 1 edges.
        """
        epochs = self.epochs()
        per_epoch, pis, weights = {}, [], []
        k = self.num_joints
        for e in epochs:
            t = self.read_epoch(e, columns=["pi", "weights"])
            per_epoch[e] = t.num_rows
            pis.append(_unfixed(t["pi"], (k,), np.float32))
            weights.append(_unfixed(t["weights"], (k,), np.float32))
        pi = np.concatenate(pis) if pis else np.zeros((0, k), np.float32)
        w = np.concatenate(weights) if weights else np.zeros((0, k), np.float32)
        top = float(np.nanmax(pi)) if pi.size else 1.0
        edges = np.linspace(0.0, top if top > 0 else 1.0, bins + 1)
        hist = np.stack([np.histogram(pi[:, j], bins=edges)[0] for j in range(k)])
        return {
            "root": str(self.root),
            "schema_version": SCHEMA_VERSION,
            "rows": int(sum(per_epoch.values())),
            "epochs": epochs,
            "rows_per_epoch": per_epoch,
            "kept_joint_fraction": float((w > 0).mean()) if w.size else 0.0,
            "kept_fraction_per_joint": ((w > 0).mean(0) if len(w) else np.zeros(k)).tolist(),
            "pi_bin_edges": edges.tolist(),
            "pi_histogram": hist.astype(int).tolist(),
        }


ROW_FIELDS = tuple(f.name for f in fields(PseudoLabelRows))


def heatmap_bytes(path: str | Path) -> int:
    """Compressed bytes of the heatmap columns of one store file (all row groups)."""
    meta = pq.ParquetFile(path).metadata
    return sum(
        meta.row_group(g).column(c).total_compressed_size
        for g in range(meta.num_row_groups)
        for c in range(meta.num_columns)
        if meta.row_group(g).column(c).path_in_schema.startswith("heatmap")
    )
