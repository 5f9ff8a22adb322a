"""The unlabeled pool packed into Parquet: encoded images plus their person boxes, for streaming.

A wild pool of many small files is slow to list and to read on shared storage; a pack holds the
same images in a few large Parquet files that Ray Data workers (or anything reading Parquet:
pyarrow, DuckDB) read directly. Layout of a pack directory::

    pool.json                 written last: its presence means the pack is complete
    persons.parquet           one row per person (box), in pool order
    images-00000.parquet      one row per image, ``rows_per_file`` images per file
    images-00001.parquet      ...

``images-*.parquet`` columns: ``image_id`` int64; ``file_name`` string (the image's path relative
to the folder it was packed from); ``width``, ``height`` int32 (pixels); ``image`` large_binary (the
source file's bytes, unchanged: JPEG or PNG, so a decode equals decoding the file). Every image
is its own row group, so one image is read without its neighbours.

``persons.parquet`` columns (no image bytes, so listing the pool is cheap): ``image_id`` int64;
``box_id`` int64 (annotation id, or index in the detections file); ``bbox`` fixed_size_list
<float32>[4] (x, y, w, h) image space; ``score`` float32; ``file_name`` string (as in the image
row); ``file`` int32 (index into ``pool.json["files"]``); ``row`` int32 (the image's row in that
file).

Pure pyarrow + numpy + OpenCV: no Ray here.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.data.images import ImageError, decode_image, load_image
from pipeline.data.topdown import LabeledDataset, UnlabeledDataset
from pipeline.geometry.views import (
    AugmentRanges,
    ViewParams,
    box_to_center_size,
    make_view,
    sample_view_params,
)
from pipeline.store.atomic_files import atomic_write

log = logging.getLogger(__name__)

PACK_FORMAT = "sspcm-pool-pack"
PACK_VERSION = 1
MANIFEST = "pool.json"
PERSONS_FILE = "persons.parquet"
DEFAULT_ROWS_PER_FILE = 1000

IMAGE_SCHEMA = pa.schema(
    [
        ("image_id", pa.int64()),
        ("file_name", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("image", pa.large_binary()),
    ]
)
PERSON_SCHEMA = pa.schema(
    [
        ("image_id", pa.int64()),
        ("box_id", pa.int64()),
        ("bbox", pa.list_(pa.float32(), 4)),
        ("score", pa.float32()),
        ("file_name", pa.string()),
        ("file", pa.int32()),
        ("row", pa.int32()),
    ]
)


class PackError(ValueError):
    """A pack directory is missing, incomplete or not a pool pack."""


@dataclass
class PackedPerson:
    """One unlabeled person whose image lives in a pack (same fields as ``wild_pool.PoolItem``).

    Attributes:
        image_id: pool image id.
        image_path: the image's file name relative to the folder it was packed from (names the
            image in logs and pseudo labels; the bytes are read from ``pack_file``).
        bbox_xywh: (4,) float32 box (x, y, w, h), image space.
        score: detection score (1.0 for annotation boxes).
        box_id: annotation id or index in the detections file.
        pack_file: absolute path of the ``images-*.parquet`` file holding the image.
        row: the image's row in ``pack_file``.
    """

    image_id: int
    image_path: str
    bbox_xywh: np.ndarray
    score: float
    box_id: int
    pack_file: str
    row: int


def _atomic_write_table(table: pa.Table, path: Path, row_group_size: int | None = None) -> None:
    with atomic_write(path) as f:
        pq.write_table(table, f, row_group_size=row_group_size, compression="none", write_statistics=False)


def _relative_name(path: str, image_dir: Path) -> str:
    try:
        return Path(path).absolute().relative_to(image_dir).as_posix()
    except ValueError:  # outside the folder (e.g. a pool listing absolute paths): keep the name
        return Path(path).name


def _box_id(person, index: int) -> int:
    """A pool item's ``box_id``, a labeled record's ``ann_id``, else the position in the pool."""
    return int(getattr(person, "box_id", getattr(person, "ann_id", index)))


def pack_pool(
    pool: Sequence,
    image_dir: str | Path,
    out_dir: str | Path,
    *,
    rows_per_file: int = DEFAULT_ROWS_PER_FILE,
    source: str = "",
) -> dict:
    """Write ``pool`` (``PoolItem``/``PersonRecord``-like persons) as a pack (module docstring).

    Images keep the order of their first person; every image is checked (structure and a full
    decode, to record its size) before it is written.

    Args:
        pool: persons with ``image_id``, ``image_path``, ``bbox_xywh`` (4,) xywh image space and
            optionally ``score`` and ``box_id`` (or ``ann_id``).
        image_dir: the folder the images were listed from (file names are stored relative to it).
        out_dir: the pack directory (created; an existing pack there is replaced file by file).
        rows_per_file: images per ``images-*.parquet`` file (one file's images are held in memory
            while it is written).
        source: where the pool came from, recorded in ``pool.json``.

    Returns:
        The manifest written to ``pool.json``.

    Raises:
        ImageError: naming the file, if an image is missing, truncated or cannot be decoded.
        ValueError: if an image id is listed with two different files.
    """
    if rows_per_file < 1:
        raise ValueError(f"rows_per_file must be >= 1, got {rows_per_file}")
    root = Path(image_dir).absolute()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)  # the pack is incomplete until the manifest is back

    persons = list(pool)
    paths: dict[int, str] = {}  # image id -> path, in order of first person
    for p in persons:
        image_id, path = int(p.image_id), str(p.image_path)
        if paths.setdefault(image_id, path) != path:
            raise ValueError(f"image id {image_id} is listed with two files: {paths[image_id]} and {path}")
    ids = list(paths)
    location: dict[int, tuple[int, int]] = {}  # image id -> (file index, row)
    names: dict[int, str] = {}  # image id -> file name relative to image_dir
    files: list[str] = []
    for start in range(0, len(ids), rows_per_file):
        chunk = ids[start : start + rows_per_file]
        columns: dict[str, list] = {name: [] for name in IMAGE_SCHEMA.names}
        for row, image_id in enumerate(chunk):
            path = paths[image_id]
            if not Path(path).is_file():
                raise ImageError(f"{path}: image file not found")
            data = Path(path).read_bytes()
            height, width = decode_image(data, path).shape[:2]  # raises ImageError naming the file
            names[image_id] = _relative_name(path, root)
            columns["image_id"].append(image_id)
            columns["file_name"].append(names[image_id])
            columns["width"].append(width)
            columns["height"].append(height)
            columns["image"].append(data)
            location[image_id] = (len(files), row)
        name = f"images-{len(files):05d}.parquet"
        _atomic_write_table(pa.table(columns, schema=IMAGE_SCHEMA), out / name, row_group_size=1)
        files.append(name)
        log.info("packed %s: %d images", name, len(chunk))

    boxes = np.asarray([np.asarray(p.bbox_xywh, dtype=np.float32) for p in persons], np.float32)
    person_table = pa.table(
        {
            "image_id": pa.array([int(p.image_id) for p in persons], pa.int64()),
            "box_id": pa.array([_box_id(p, i) for i, p in enumerate(persons)], pa.int64()),
            "bbox": pa.FixedSizeListArray.from_arrays(pa.array(boxes.reshape(-1), pa.float32()), 4),
            "score": pa.array([float(getattr(p, "score", 1.0)) for p in persons], pa.float32()),
            "file_name": pa.array([names[int(p.image_id)] for p in persons], pa.string()),
            "file": pa.array([location[int(p.image_id)][0] for p in persons], pa.int32()),
            "row": pa.array([location[int(p.image_id)][1] for p in persons], pa.int32()),
        },
        schema=PERSON_SCHEMA,
    )
    _atomic_write_table(person_table, out / PERSONS_FILE)
    for stale in sorted(out.glob("images-*.parquet")):
        if stale.name not in files:  # left by an earlier, larger pack in the same directory
            stale.unlink()
    manifest = {
        "format": PACK_FORMAT,
        "version": PACK_VERSION,
        "files": files,
        "num_images": len(ids),
        "num_persons": len(persons),
        "source": source,
    }
    with atomic_write(out / MANIFEST, "w") as f:
        json.dump(manifest, f, indent=2)
    log.info("pack %s: %d persons on %d images in %d file(s)", out, len(persons), len(ids), len(files))
    return manifest


class PackedPool:
    """The persons of a pack as a sequence of :class:`PackedPerson`, stored column-wise.

    Columns: ``image_ids`` (N,) int64; ``boxes`` (N, 4) float32 xywh image space; ``scores`` (N,)
    float32; ``box_ids`` (N,) int64; ``file_names`` (N,) string; ``files`` (N,) int32 index into
    ``pack_files``; ``rows`` (N,) int32. Reading it never touches the image bytes.
    """

    def __init__(self, pack_dir: str | Path):
        self.root = Path(pack_dir).absolute()
        manifest_path = self.root / MANIFEST
        if not manifest_path.is_file():
            raise PackError(f"{self.root}: not a complete pool pack ({MANIFEST} is missing)")
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("format") != PACK_FORMAT or manifest.get("version") != PACK_VERSION:
            raise PackError(f"{manifest_path}: not a version {PACK_VERSION} {PACK_FORMAT} manifest")
        self.manifest = manifest
        self.pack_files = [str(self.root / f) for f in manifest["files"]]
        t = pq.read_table(self.root / PERSONS_FILE, schema=PERSON_SCHEMA)
        n = t.num_rows
        self.image_ids = t["image_id"].to_numpy()
        self.box_ids = t["box_id"].to_numpy()
        self.boxes = t["bbox"].combine_chunks().flatten().to_numpy().reshape(n, 4)
        self.scores = t["score"].to_numpy()
        self.files = t["file"].to_numpy()
        self.rows = t["row"].to_numpy()
        self.file_names = t["file_name"].combine_chunks()  # (N,) arrow strings, made str on access

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, index: int) -> PackedPerson:
        if not -len(self) <= index < len(self):
            raise IndexError(f"pack index {index} out of range for {len(self)} persons")
        return PackedPerson(
            image_id=int(self.image_ids[index]),
            image_path=self.file_names[index].as_py(),
            bbox_xywh=self.boxes[index].copy(),
            score=float(self.scores[index]),
            box_id=int(self.box_ids[index]),
            pack_file=self.pack_files[int(self.files[index])],
            row=int(self.rows[index]),
        )

    def __iter__(self) -> Iterator[PackedPerson]:
        return (self[i] for i in range(len(self)))


def read_pool_pack(pack_dir: str | Path) -> PackedPool:
    """The persons of the pack at ``pack_dir`` (boxes and image locations; no image bytes)."""
    pool = PackedPool(pack_dir)
    log.info("pool pack %s: %d persons on %d images", pool.root, len(pool), pool.manifest["num_images"])
    return pool


class PackReader:
    """Reads single images out of pack files, keeping the last ``max_open`` files open.

    Not shared between processes: each worker makes its own (open files are not pickled).
    """

    def __init__(self, max_open: int = 16):
        self.max_open = max_open
        self._open: OrderedDict[str, tuple[pq.ParquetFile, np.ndarray]] = OrderedDict()

    def _file(self, path: str) -> tuple[pq.ParquetFile, np.ndarray]:
        if path in self._open:
            self._open.move_to_end(path)
            return self._open[path]
        f = pq.ParquetFile(path)
        md = f.metadata
        starts = np.cumsum([0] + [md.row_group(i).num_rows for i in range(md.num_row_groups)])
        self._open[path] = (f, starts)
        while len(self._open) > self.max_open:
            self._open.popitem(last=False)
        return f, starts

    def read_bytes(self, path: str, row: int) -> bytes:
        """The encoded bytes of row ``row`` of the pack file ``path``."""
        f, starts = self._file(path)
        group = int(np.searchsorted(starts, row, side="right")) - 1
        if not 0 <= row < starts[-1]:
            raise IndexError(f"{path}: row {row} out of range for {starts[-1]} images")
        column = f.read_row_group(group, columns=["image"]).column(0)
        return column[row - int(starts[group])].as_py()

    def load(self, person) -> np.ndarray:
        """uint8 RGB ``(H, W, 3)`` image of ``person``: from its pack, or its file (other persons)."""
        if isinstance(person, PackedPerson):
            name = f"{person.pack_file} row {person.row} ({person.image_path})"
            return decode_image(self.read_bytes(person.pack_file, person.row), name)
        return load_image(person.image_path)

    def __getstate__(self) -> dict:
        return {"max_open": self.max_open, "_open": OrderedDict()}


class _PackImages:
    """Mixin for a top-down dataset: persons of a pack read their image from it.

    Only the image source differs; every other person goes through the base class unchanged.
    """

    reader: PackReader

    def _easy_view(self, index: int):
        p = self.persons[index]
        if not isinstance(p, PackedPerson):
            return super()._easy_view(index)
        # The base class's _easy_view with the image from the pack (keep the two in step: a test
        # asserts equal items for a pack and for the folder it was packed from).
        image = self.reader.load(p)
        w, h = self.codec.input_size
        center, size = box_to_center_size(np.asarray(p.bbox_xywh, dtype=np.float64), w / h, self.padding)
        if self.augment is None:
            params = ViewParams(center=center, size=size)
        else:
            ranges = AugmentRanges.from_config(self.augment)
            params = sample_view_params(self._rng(index, 0), center, size, ranges)
        return p, make_view(image, params, self.codec.input_size)


class PackedLabeledDataset(_PackImages, LabeledDataset):
    """``LabeledDataset`` whose packed persons read their image from the pack."""


class PackedUnlabeledDataset(_PackImages, UnlabeledDataset):
    """``UnlabeledDataset`` whose packed persons read their image from the pack."""


def with_pack_images(dataset: LabeledDataset | UnlabeledDataset, reader: PackReader | None = None):
    """The same dataset (persons, epoch, seed, augmentation) reading packed persons from their pack.

    Items are those of ``dataset`` exactly: only where a :class:`PackedPerson`'s image comes from
    changes. Persons of other kinds load their image file as before.
    """
    cls = {UnlabeledDataset: PackedUnlabeledDataset, LabeledDataset: PackedLabeledDataset}.get(type(dataset))
    if cls is None:
        raise TypeError(f"with_pack_images: unsupported dataset {type(dataset).__name__}")
    out = cls.__new__(cls)
    out.__dict__.update(dataset.__dict__)
    out.reader = reader or PackReader()
    return out
