"""The export's pool as Parquet tables: one row per person box, one row per image.

An export never holds its pool as Python objects: the person boxes are read once (from a COCO
annotations file, or from a folder of images plus a person-detection file) and written to

``OUT/pool/persons.parquet``, one row per person, in source order::

    person_index int64   0 .. N-1: the row key of every label the export writes
    image_id int64       the image (the COCO id; for a plain folder, 1.. in sorted path order)
    image_file string    the image's path relative to the image folder (POSIX)
    bbox fixed_size_list<float32>[4]   (x, y, w, h) image space
    score float32        the detection score (1.0 for an annotation box)
    box_id int64         the annotation id, or the detection's index in its file

``OUT/pool/images.parquet``, one row per image with at least one person::

    image_id int64, file_name string, width int32, height int32 (null where the source has none)

Row groups of :data:`ROW_GROUP` rows, so readers (Ray Data ``read_parquet``, pyarrow) stream them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.data.coco import read_json
from pipeline.data.wild_pool import load_pool
from pipeline.store.locations import filesystem_of, join_location, open_for_writing

log = logging.getLogger(__name__)

ROW_GROUP = 4096
PERSONS_FILE = "persons.parquet"
IMAGES_FILE = "images.parquet"

PERSON_SCHEMA = pa.schema(
    [
        ("person_index", pa.int64()),
        ("image_id", pa.int64()),
        ("image_file", pa.string()),
        ("bbox", pa.list_(pa.float32(), 4)),
        ("score", pa.float32()),
        ("box_id", pa.int64()),
    ]
)
IMAGE_SCHEMA = pa.schema(
    [
        ("image_id", pa.int64()),
        ("file_name", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
    ]
)


@dataclass(frozen=True)
class PoolSource:
    """Where the pool's images and person boxes come from.

    Attributes:
        images: the image folder; file names are relative to it.
        annotations: a COCO json (its images, and its person boxes unless ``boxes`` is given);
            None for a plain folder (every JPEG/PNG under ``images``, recursively).
        boxes: a person-detection file in the COCO results format (``image_id`` or
            ``file_name``, ``bbox``, ``score``, ``category_id``); None = the annotation boxes.
        det_score_thr: detections scoring below this are left out.
        min_box_size: boxes whose shorter side is below this many pixels are left out.
    """

    images: str
    annotations: str | None = None
    boxes: str | None = None
    det_score_thr: float = 0.0
    min_box_size: float = 1.0

    def describe(self) -> dict:
        """Plain dict with absolute paths (what a resumed export must match)."""
        out = asdict(self)
        for k in ("images", "annotations", "boxes"):
            if out[k] is not None:
                out[k] = str(Path(out[k]).absolute())
        return out


def write_pool_tables(source: PoolSource, pool_dir: str | Path) -> dict[str, int]:
    """Read the pool's boxes and write ``persons.parquet`` and ``images.parquet`` into
    ``pool_dir`` (atomically, persons last); returns ``{"persons": N, "images": M}``."""
    if source.annotations is None and source.boxes is None:
        raise ValueError(f"{source.images}: a plain image folder needs a person-detection file (--boxes)")
    kwargs: dict = {"image_dir": source.images, "min_box_score": source.det_score_thr}
    if source.boxes is not None:
        kwargs["detections_json"] = source.boxes
        if source.annotations is not None:
            kwargs["image_list_json"] = source.annotations
    else:
        kwargs["annotations_json"] = source.annotations
    pool = load_pool(min_box_size=source.min_box_size, **kwargs)
    root = Path(source.images).absolute()
    names = [Path(p).relative_to(root).as_posix() for p in pool.image_paths]
    n = len(pool)
    persons = pa.table(
        {
            "person_index": pa.array(np.arange(n, dtype=np.int64)),
            "image_id": pa.array(pool.image_ids),
            "image_file": pa.array(names, pa.string()),
            "bbox": pa.FixedSizeListArray.from_arrays(pa.array(pool.boxes.reshape(-1)), 4),
            "score": pa.array(pool.scores),
            "box_id": pa.array(pool.box_ids),
        },
        schema=PERSON_SCHEMA,
    )
    first = {}
    for image_id, name in zip(pool.image_ids.tolist(), names):
        first.setdefault(image_id, name)
    sizes = _image_sizes(source.annotations)
    ids = list(first)
    images = pa.table(
        {
            "image_id": pa.array(ids, pa.int64()),
            "file_name": pa.array([first[i] for i in ids], pa.string()),
            "width": pa.array([sizes.get(i, (None, None))[0] for i in ids], pa.int32()),
            "height": pa.array([sizes.get(i, (None, None))[1] for i in ids], pa.int32()),
        },
        schema=IMAGE_SCHEMA,
    )
    _write(images, join_location(pool_dir, IMAGES_FILE))
    _write(persons, join_location(pool_dir, PERSONS_FILE))
    log.info("pool: %d persons on %d images -> %s", n, len(ids), pool_dir)
    return {"persons": n, "images": len(ids)}


def _image_sizes(annotations: str | None) -> dict[int, tuple[int, int]]:
    if annotations is None:
        return {}
    out = {}
    for img in read_json(annotations).get("images", []):
        w, h = img.get("width"), img.get("height")
        if isinstance(w, int | float) and isinstance(h, int | float) and not isinstance(w, bool):
            out[int(img["id"])] = (int(w), int(h))
    return out


def _write(table: pa.Table, location: str) -> None:
    with open_for_writing(location) as f:
        pq.write_table(table, f, row_group_size=ROW_GROUP, compression="zstd")


def iter_table(
    location: str | Path, batch_size: int, columns: list[str] | None = None
) -> Iterator[pa.RecordBatch]:
    """The rows of a Parquet file (a local path or a URI: a pool table, a store file) in record
    batches of at most ``batch_size`` rows, read one at a time."""
    fs, path = filesystem_of(location)
    with fs.open_input_file(path) as f:
        yield from pq.ParquetFile(f).iter_batches(batch_size=batch_size, columns=columns)


def count_rows(location: str | Path) -> int:
    """Rows of a Parquet file (local path or URI), from its footer."""
    fs, path = filesystem_of(location)
    with fs.open_input_file(path) as f:
        return pq.ParquetFile(f).metadata.num_rows
