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

A pack *location* is a local directory or a pyarrow filesystem URI (``file:///abs/dir``,
``s3://bucket/prefix``, ``gs://bucket/prefix``; ``pyarrow.fs.FileSystem.from_uri``). On the local
disk (a path or ``file://``) every file is written under a temporary name and renamed; on an
object store each file is written directly (one object write is atomic there). Either way
``pool.json`` is removed first and written last.

Which images go into which file is fixed up front (pool order, ``rows_per_file`` per file), so
:func:`pack_pool` writes the same files whatever its number of worker processes.

Pure pyarrow + numpy + OpenCV: no Ray here.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import multiprocessing
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from pipeline.data.images import ImageError, decode_image, load_image
from pipeline.data.topdown import LabeledDataset, UnlabeledDataset
from pipeline.data.wild_pool import WildPool
from pipeline.store.locations import filesystem_of, is_uri, join_location, split_location, whole_file

log = logging.getLogger(__name__)

PACK_FORMAT = "sspcm-pool-pack"
PACK_VERSION = 1
MANIFEST = "pool.json"
PERSONS_FILE = "persons.parquet"
IMAGE_FILES = "images-*.parquet"
DEFAULT_ROWS_PER_FILE = 1000
PROGRESS_EVERY_S = 10.0  # pack_pool logs its progress at most this often

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
        pack_file: location of the ``images-*.parquet`` file holding the image: an absolute path
            for a local pack, a URI (``file://``, ``s3://`` ...) for a pack opened by URI.
        row: the image's row in ``pack_file``.
    """

    image_id: int
    image_path: str
    bbox_xywh: np.ndarray
    score: float
    box_id: int
    pack_file: str
    row: int


@dataclass(frozen=True)
class PackDir:
    """A pack directory on the local disk or on a pyarrow filesystem.

    Attributes:
        location: the directory as given: an absolute local path, or a URI.
        fs: the filesystem holding it.
        path: the directory's path inside ``fs`` (no trailing slash).
        local: the directory on the local disk (a path or a ``file://`` URI), else None (an
            object store: no rename, each file is written directly).
    """

    location: str
    fs: pafs.FileSystem
    path: str
    local: Path | None

    @classmethod
    def of(cls, location: str | Path) -> PackDir:
        """The pack directory at a local path or a pyarrow filesystem URI."""
        fs, path = filesystem_of(location)
        local = Path(path) if isinstance(fs, pafs.LocalFileSystem) else None
        return cls(str(location) if is_uri(location) else path, fs, path, local)

    def file(self, name: str) -> str:
        """Location of the file ``name`` in this directory (a path or a URI, like ``location``)."""
        return join_location(self.location, name)

    def _path(self, name: str) -> str:
        return f"{self.path}/{name}"

    def exists(self, name: str) -> bool:
        return self.fs.get_file_info(self._path(name)).type == pafs.FileType.File

    def read_bytes(self, name: str) -> bytes:
        with self.fs.open_input_stream(self._path(name)) as f:
            return f.read()

    def read_table(self, name: str, schema: pa.Schema) -> pa.Table:
        return pq.read_table(self._path(name), filesystem=self.fs, schema=schema)

    def makedirs(self) -> None:
        if self.local is not None:
            self.local.mkdir(parents=True, exist_ok=True)
        else:
            self.fs.create_dir(self.path, recursive=True)

    def write(self, name: str, write: Callable[[IO[bytes] | pa.NativeFile], None]) -> None:
        """Write the file ``name`` with ``write(f)``, never visible half written
        (:func:`pipeline.store.locations.whole_file`: locally under a temporary name, then
        renamed; on an object store uploaded as one object, nothing on an error)."""
        with whole_file(self.fs, self._path(name), rename=self.local is not None) as f:
            write(f)

    def write_table(self, name: str, table: pa.Table, row_group_size: int | None = None) -> None:
        self.write(
            name,
            lambda f: pq.write_table(
                table, f, row_group_size=row_group_size, compression="none", write_statistics=False
            ),
        )

    def delete(self, name: str) -> None:
        """Remove the file ``name`` if it is there."""
        if self.exists(name):
            self.fs.delete_file(self._path(name))

    def names(self, pattern: str = "*") -> list[str]:
        """Sorted names of the files in this directory matching ``pattern`` (fnmatch)."""
        selector = pafs.FileSelector(self.path, allow_not_found=True)
        found = [i.base_name for i in self.fs.get_file_info(selector) if i.type == pafs.FileType.File]
        return sorted(n for n in found if fnmatch.fnmatchcase(n, pattern))


def _relative_name(path: str, image_dir: Path) -> str:
    try:
        return Path(path).absolute().relative_to(image_dir).as_posix()
    except ValueError:  # outside the folder (e.g. a pool listing absolute paths): keep the name
        return Path(path).name


def _box_id(person, index: int) -> int:
    """A pool item's ``box_id``, a labeled record's ``ann_id``, else the position in the pool."""
    return int(getattr(person, "box_id", getattr(person, "ann_id", index)))


@dataclass
class _PersonColumns:
    """The persons to pack, column-wise: ``image_ids`` (N,) int64; ``paths`` N image paths;
    ``boxes`` (N, 4) float32 xywh image space; ``scores`` (N,) float32; ``box_ids`` (N,) int64."""

    image_ids: np.ndarray
    paths: Sequence[str]
    boxes: np.ndarray
    scores: np.ndarray
    box_ids: np.ndarray

    @classmethod
    def of(cls, pool: Sequence) -> _PersonColumns:
        """A ``WildPool``'s own columns (no per-person objects), else read person by person."""
        if isinstance(pool, WildPool):
            return cls(pool.image_ids, pool.image_paths, pool.boxes, pool.scores, pool.box_ids)
        persons = list(pool)
        return cls(
            np.asarray([int(p.image_id) for p in persons], np.int64),
            [str(p.image_path) for p in persons],
            np.asarray([np.asarray(p.bbox_xywh, np.float32) for p in persons], np.float32).reshape(-1, 4),
            np.asarray([float(getattr(p, "score", 1.0)) for p in persons], np.float32),
            np.asarray([_box_id(p, i) for i, p in enumerate(persons)], np.int64),
        )


@dataclass
class _ImageFileJob:
    """One ``images-NNNNN.parquet`` to write: its images in row order (ids, source paths, names
    relative to the image folder)."""

    out: str
    name: str
    image_ids: list[int]
    paths: list[str]
    file_names: list[str]


def _write_image_file(job: _ImageFileJob) -> int:
    """Read, check (a full decode, for the size) and write one image file; returns its images.

    Runs in the caller's process or in a worker process (module-level, so it pickles by name).

    Raises:
        ImageError: naming the file, if an image is missing, truncated or cannot be decoded.
    """
    columns: dict[str, list] = {name: [] for name in IMAGE_SCHEMA.names}
    for image_id, path, file_name in zip(job.image_ids, job.paths, job.file_names, strict=True):
        if not Path(path).is_file():
            raise ImageError(f"{path}: image file not found")
        data = Path(path).read_bytes()
        height, width = decode_image(data, path).shape[:2]  # raises ImageError naming the file
        columns["image_id"].append(image_id)
        columns["file_name"].append(file_name)
        columns["width"].append(width)
        columns["height"].append(height)
        columns["image"].append(data)
    PackDir.of(job.out).write_table(job.name, pa.table(columns, schema=IMAGE_SCHEMA), row_group_size=1)
    return len(job.image_ids)


class _Progress:
    """Logs images packed / total, the rate and the time left, at most every ``every_s`` seconds."""

    def __init__(self, total: int, every_s: float):
        self.total, self.every_s = total, every_s
        self.done = 0
        self.t0 = self.last = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.t0

    def add(self, images: int) -> None:
        self.done += images
        now = time.perf_counter()
        if now - self.last >= self.every_s and self.done < self.total:
            self.last = now
            rate = self.done / max(now - self.t0, 1e-9)
            log.info(
                "packed %d / %d images (%.0f images/s, %.0f s left)",
                self.done,
                self.total,
                rate,
                (self.total - self.done) / max(rate, 1e-9),
            )


def _init_worker() -> None:
    """A packing worker decodes on one thread: the processes are the parallelism."""
    cv2.setNumThreads(1)


def _run_jobs(jobs: list[_ImageFileJob], workers: int, progress: _Progress) -> None:
    """Write every image file: here (``workers`` 1) or in a pool of worker processes. The first
    failure cancels the files not yet started and is raised here (files being written finish)."""
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            progress.add(_write_image_file(job))
        return
    # forkserver: safe beside threads (a Ray driver, torch); its server process imports this
    # module (torch included) once, and the workers fork from it instead of importing it each.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    pool = ProcessPoolExecutor(
        max_workers=min(workers, len(jobs)), mp_context=context, initializer=_init_worker
    )
    try:
        futures = [pool.submit(_write_image_file, job) for job in jobs]
        for future in as_completed(futures):
            progress.add(future.result())
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def pack_pool(
    pool: Sequence,
    image_dir: str | Path,
    out_dir: str | Path,
    *,
    rows_per_file: int = DEFAULT_ROWS_PER_FILE,
    source: str = "",
    workers: int = 1,
    progress_every_s: float = PROGRESS_EVERY_S,
) -> dict:
    """Write ``pool`` (``PoolItem``/``PersonRecord``-like persons) as a pack (module docstring).

    Images keep the order of their first person; image ``k`` goes to file ``k // rows_per_file``,
    row ``k % rows_per_file``. Every image is checked (structure and a full decode, to record its
    size) before its file is written. The image files are written by ``workers`` processes (each
    writes whole files; the output is the same for any number); ``persons.parquet`` and then
    ``pool.json`` are written here, last.

    Args:
        pool: persons with ``image_id``, ``image_path``, ``bbox_xywh`` (4,) xywh image space and
            optionally ``score`` and ``box_id`` (or ``ann_id``); a ``WildPool`` is read by columns.
        image_dir: the folder the images were listed from (file names are stored relative to it).
        out_dir: the pack directory, a local path or a pyarrow filesystem URI (created; an
            existing pack there is replaced file by file).
        rows_per_file: images per ``images-*.parquet`` file (a worker holds one file's images in
            memory while it writes it).
        source: where the pool came from, recorded in ``pool.json``.
        workers: processes writing image files (1: all in this process).
        progress_every_s: log the images packed so far at most this often.

    Returns:
        The manifest written to ``pool.json``.

    Raises:
        ImageError: naming the file, if an image is missing, truncated or cannot be decoded
            (``pool.json`` is then absent: the pack is not complete).
        ValueError: if an image id is listed with two different files, or a bad argument.
    """
    if rows_per_file < 1:
        raise ValueError(f"rows_per_file must be >= 1, got {rows_per_file}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    root = Path(image_dir).absolute()
    out = PackDir.of(out_dir)
    out.makedirs()
    out.delete(MANIFEST)  # the pack is incomplete until the manifest is back

    persons = _PersonColumns.of(pool)
    person_ids = persons.image_ids.tolist()
    paths: dict[int, str] = {}  # image id -> path, in order of first person
    for image_id, path in zip(person_ids, persons.paths, strict=True):
        if paths.setdefault(image_id, path) != path:
            raise ValueError(f"image id {image_id} is listed with two files: {paths[image_id]} and {path}")
    ids = list(paths)
    names = {image_id: _relative_name(path, root) for image_id, path in paths.items()}
    jobs = []
    for start in range(0, len(ids), rows_per_file):
        chunk = ids[start : start + rows_per_file]
        name = f"images-{len(jobs):05d}.parquet"
        jobs.append(
            _ImageFileJob(out.location, name, chunk, [paths[i] for i in chunk], [names[i] for i in chunk])
        )
    position = {image_id: k for k, image_id in enumerate(ids)}  # image id -> its place in the pack
    log.info(
        "packing %d persons on %d images into %d file(s) at %s, %d worker(s)",
        len(person_ids),
        len(ids),
        len(jobs),
        out.location,
        workers,
    )
    progress = _Progress(len(ids), progress_every_s)
    _run_jobs(jobs, workers, progress)

    places = np.asarray([position[i] for i in person_ids], np.int64)
    person_table = pa.table(
        {
            "image_id": pa.array(persons.image_ids, pa.int64()),
            "box_id": pa.array(persons.box_ids, pa.int64()),
            "bbox": pa.FixedSizeListArray.from_arrays(
                pa.array(np.asarray(persons.boxes, np.float32).reshape(-1), pa.float32()), 4
            ),
            "score": pa.array(persons.scores, pa.float32()),
            "file_name": pa.array([names[i] for i in person_ids], pa.string()),
            "file": pa.array(places // rows_per_file, pa.int32()),
            "row": pa.array(places % rows_per_file, pa.int32()),
        },
        schema=PERSON_SCHEMA,
    )
    out.write_table(PERSONS_FILE, person_table)
    files = [job.name for job in jobs]
    for stale in out.names(IMAGE_FILES):
        if stale not in files:  # left by an earlier, larger pack in the same directory
            out.delete(stale)
    manifest = {
        "format": PACK_FORMAT,
        "version": PACK_VERSION,
        "files": files,
        "num_images": len(ids),
        "num_persons": len(person_ids),
        "source": source,
    }
    out.write(MANIFEST, lambda f: f.write(json.dumps(manifest, indent=2).encode()))
    seconds = progress.seconds
    log.info(
        "pack %s: %d persons on %d images in %d file(s), %.1f s (%.0f images/s, %d worker(s))",
        out.location,
        len(person_ids),
        len(ids),
        len(files),
        seconds,
        len(ids) / max(seconds, 1e-9),
        workers,
    )
    return manifest


def _reopen_pack(location: str, manifest: dict) -> PackedPool:
    """Unpickling a :class:`PackedPool`: read its persons again, from the same complete pack."""
    pool = PackedPool(location)
    if pool.manifest != manifest:
        raise PackError(f"{location}: the pack changed since it was opened (its {MANIFEST} differs)")
    return pool


class PackedPool:
    """The persons of a pack as a sequence of :class:`PackedPerson`, stored column-wise.

    Columns (the Arrow table's, as numpy arrays): ``image_ids`` (N,) int64; ``boxes`` (N, 4)
    float32 xywh image space; ``scores`` (N,) float32; ``box_ids`` (N,) int64; ``file_names``
    (N,) Arrow strings; ``files`` (N,) int32 index into ``pack_files``; ``rows`` (N,) int32. A
    :class:`PackedPerson` is built only by ``__getitem__``. Reading it never touches the image
    bytes.

    Pickles as its location (plus the manifest, checked on arrival): a process that unpickles it
    (a Ray Data worker) reads ``persons.parquet`` itself, so the columns never travel.
    """

    def __init__(self, pack_dir: str | Path):
        pack = PackDir.of(pack_dir)
        self.root = pack.location  # an absolute local path, or the URI as given
        if not pack.exists(MANIFEST):
            raise PackError(f"{self.root}: not a complete pool pack ({MANIFEST} is missing)")
        manifest = json.loads(pack.read_bytes(MANIFEST))
        if manifest.get("format") != PACK_FORMAT or manifest.get("version") != PACK_VERSION:
            raise PackError(f"{pack.file(MANIFEST)}: not a version {PACK_VERSION} {PACK_FORMAT} manifest")
        self.manifest = manifest
        self.pack_files = [pack.file(f) for f in manifest["files"]]
        try:
            t = pack.read_table(PERSONS_FILE, PERSON_SCHEMA)
        except (OSError, pa.ArrowException) as e:
            raise PackError(f"{pack.file(PERSONS_FILE)}: not a readable Parquet file ({e})") from e
        n = t.num_rows
        self.image_ids = t["image_id"].to_numpy()
        self.box_ids = t["box_id"].to_numpy()
        self.boxes = t["bbox"].combine_chunks().flatten().to_numpy().reshape(n, 4)
        self.scores = t["score"].to_numpy()
        self.files = t["file"].to_numpy()
        self.rows = t["row"].to_numpy()
        self.file_names = t["file_name"].combine_chunks()  # (N,) arrow strings, made str on access

    def __reduce__(self) -> tuple[Callable[..., PackedPool], tuple[str, dict]]:
        return _reopen_pack, (self.root, self.manifest)

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
    """The persons of the pack at ``pack_dir`` (a local path or a pyarrow filesystem URI): boxes
    and image locations, no image bytes."""
    pool = PackedPool(pack_dir)
    log.info("pool pack %s: %d persons on %d images", pool.root, len(pool), pool.manifest["num_images"])
    return pool


class ChainedPersons:
    """Several person sequences read as one, without copying them into a list (e.g. a
    :class:`PackedPool` followed by the labeled persons): item ``i`` comes from the part holding
    it. Pickles as its parts (a :class:`PackedPool` as its location)."""

    def __init__(self, *parts: Sequence):
        self.parts = parts
        self._ends = np.cumsum([len(p) for p in parts], dtype=np.int64)  # (P,) end of each part

    def __len__(self) -> int:
        return int(self._ends[-1]) if len(self._ends) else 0

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} persons")
        index = index % n
        part = int(np.searchsorted(self._ends, index, side="right"))
        start = int(self._ends[part - 1]) if part else 0
        return self.parts[part][index - start]

    def __iter__(self) -> Iterator[Any]:
        for part in self.parts:
            yield from part


class PackReader:
    """Reads single images out of pack files, keeping the last ``max_open`` files open.

    Pack files are local paths or URIs (one ``pyarrow.fs`` filesystem per pack directory, made on
    first use). Not shared between processes: each worker makes its own (open files are not
    pickled).
    """

    def __init__(self, max_open: int = 16):
        self.max_open = max_open
        self._open: OrderedDict[str, tuple[pq.ParquetFile, np.ndarray]] = OrderedDict()
        self._dirs: dict[str, PackDir] = {}  # pack directory location -> its filesystem

    def _source(self, location: str) -> str | pa.NativeFile:
        """A local path as is; a URI opened through its pack directory's filesystem."""
        if not is_uri(location):
            return location
        parent, name = split_location(location)
        if parent not in self._dirs:
            self._dirs[parent] = PackDir.of(parent)
        pack = self._dirs[parent]
        return pack.fs.open_input_file(f"{pack.path}/{name}")

    def _file(self, path: str) -> tuple[pq.ParquetFile, np.ndarray]:
        if path in self._open:
            self._open.move_to_end(path)
            return self._open[path]
        f = pq.ParquetFile(self._source(path))
        md = f.metadata
        starts = np.cumsum([0] + [md.row_group(i).num_rows for i in range(md.num_row_groups)])
        self._open[path] = (f, starts)
        while len(self._open) > self.max_open:
            old, _ = self._open.popitem(last=False)[1]
            old.close(force=True)
        return f, starts

    def read_bytes(self, path: str, row: int, image: str = "") -> bytes:
        """The encoded bytes of row ``row`` of the pack file ``path`` (a local path or a URI).

        Raises:
            PackError: naming the file, the row and ``image`` (the image's name, for the message)
                if the file is not readable Parquet (truncated, corrupt).
        """
        try:
            f, starts = self._file(path)
            group = int(np.searchsorted(starts, row, side="right")) - 1
            if not 0 <= row < starts[-1]:
                raise IndexError(f"{path}: row {row} out of range for {starts[-1]} images")
            column = f.read_row_group(group, columns=["image"]).column(0)
        except (OSError, pa.ArrowException) as e:
            broken = self._open.pop(path, None)
            if broken is not None:
                broken[0].close(force=True)
            what = f"row {row}" + (f" ({image})" if image else "")
            raise PackError(f"{path}: not a readable pool-pack Parquet file, cannot read {what}: {e}") from e
        return column[row - int(starts[group])].as_py()

    def load(self, person) -> np.ndarray:
        """uint8 RGB ``(H, W, 3)`` image of ``person``: from its pack, or its file (other persons)."""
        if isinstance(person, PackedPerson):
            name = f"{person.pack_file} row {person.row} ({person.image_path})"
            return decode_image(self.read_bytes(person.pack_file, person.row, person.image_path), name)
        return load_image(person.image_path)

    def __getstate__(self) -> dict:
        return {"max_open": self.max_open, "_open": OrderedDict(), "_dirs": {}}


class _PackImages:
    """Mixin for a top-down dataset: persons of a pack read their image from it.

    Only the image source differs; every other person goes through the base class unchanged.
    """

    reader: PackReader

    def _load_image(self, person) -> np.ndarray:
        if not isinstance(person, PackedPerson):
            return super()._load_image(person)
        return self.reader.load(person)  # the same decode as of the file it was packed from


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
