"""The unlabeled "wild" pool: person boxes on images without keypoint labels.

Images come from one of
- ``annotations_json``: a COCO json; its ``images`` list and its non-crowd person boxes;
- ``image_list_json``: a COCO json whose ``images`` list names the pool images (boxes from
  ``detections_json``);
- ``image_dir`` alone: every ``.jpg``/``.jpeg``/``.png`` under the folder (recursively, sorted by
  relative path); image ids are 1, 2, ... in that order.

Boxes come from ``detections_json`` (COCO results format ``[{"image_id" or "file_name",
"category_id", "bbox", "score"}]``, person category 1 only) or from ``annotations_json``. A detection
names its image by ``file_name`` (the path relative to ``image_dir``, e.g. ``"sub/0001.jpg"``) or by
``image_id``: an integer COCO id when the image list is a COCO json; for a plain folder pool the
relative file name as a string, or an integer that is the number in the file's name (COCO's
``000000000139.jpg`` is image 139).

Boxes are in image space, clipped to the image when its size is known (COCO image lists), and kept
when ``score >= min_box_score`` and ``min(w, h) >= min_box_size``. Images without a kept box are not
in the pool. The pool stores its columns as arrays and builds :class:`PoolItem` objects lazily.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.data.coco import (
    AnnotationError,
    build_coco,
    clean_bbox,
    find_person_category,
    parse_bbox,
    read_json,
)

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
PERSON_CATEGORY_ID = 1  # COCO results files: category 1 is person


@dataclass
class PoolItem:
    """One unlabeled person.

    Attributes:
        image_id: pool image id.
        image_path: absolute image path.
        bbox_xywh: (4,) float32 box (x, y, w, h), image space.
        score: detection score (1.0 for annotation boxes).
        box_id: annotation id (annotation pools) or index in the detections file.
    """

    image_id: int
    image_path: str
    bbox_xywh: np.ndarray
    score: float
    box_id: int = -1


@dataclass
class _PoolImage:
    image_id: int
    path: str
    width: float | None = None
    height: float | None = None


class WildPool:
    """A sequence of :class:`PoolItem` stored column-wise; items are built on access.

    Columns: ``image_ids`` (N,) int64; ``image_paths`` list of N str; ``boxes`` (N, 4) float32 xywh
    image space; ``scores`` (N,) float32; ``box_ids`` (N,) int64.
    """

    def __init__(
        self,
        image_ids: np.ndarray,
        image_paths: list[str],
        boxes: np.ndarray,
        scores: np.ndarray,
        box_ids: np.ndarray,
    ):
        n = len(image_paths)
        if not (len(image_ids) == len(boxes) == len(scores) == len(box_ids) == n):
            raise ValueError("pool columns differ in length")
        self.image_ids = np.asarray(image_ids, dtype=np.int64)
        self.image_paths = image_paths
        self.boxes = np.asarray(boxes, dtype=np.float32).reshape(n, 4)
        self.scores = np.asarray(scores, dtype=np.float32)
        self.box_ids = np.asarray(box_ids, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.image_paths)

    def __getitem__(self, index: int) -> PoolItem:
        if not -len(self) <= index < len(self):
            raise IndexError(f"pool index {index} out of range for {len(self)} items")
        return PoolItem(
            image_id=int(self.image_ids[index]),
            image_path=self.image_paths[index],
            bbox_xywh=self.boxes[index].copy(),
            score=float(self.scores[index]),
            box_id=int(self.box_ids[index]),
        )

    def __iter__(self) -> Iterator[PoolItem]:
        return (self[i] for i in range(len(self)))

    @property
    def num_images(self) -> int:
        return int(np.unique(self.image_ids).size)

    def without_images(self, image_ids: Collection[int]) -> WildPool:
        """The pool minus every box on the given images."""
        keep = ~np.isin(self.image_ids, np.fromiter(image_ids, dtype=np.int64, count=len(image_ids)))
        idx = np.flatnonzero(keep)
        return WildPool(
            self.image_ids[idx],
            [self.image_paths[i] for i in idx],
            self.boxes[idx],
            self.scores[idx],
            self.box_ids[idx],
        )


def _coco_images(data: dict, json_path: str | Path, image_dir: Path) -> dict[int, _PoolImage]:
    images: dict[int, _PoolImage] = {}
    for i, img in enumerate(data.get("images", [])):
        name, image_id = img.get("file_name"), img.get("id")
        if not isinstance(name, str) or not name:
            raise AnnotationError(f"{json_path}: images[{i}]: field 'file_name' is missing")
        if isinstance(image_id, bool) or not isinstance(image_id, int):
            raise AnnotationError(
                f"{json_path}: images[{i}]: field 'id' must be an integer, got {image_id!r}"
            )
        w, h = img.get("width"), img.get("height")
        sized = isinstance(w, int | float) and isinstance(h, int | float) and w > 0 and h > 0
        images[image_id] = _PoolImage(image_id, str(image_dir / name), *((w, h) if sized else (None, None)))
    return images


def list_image_folder(image_dir: str | Path) -> list[str]:
    """Relative paths (POSIX) of the .jpg/.jpeg/.png files under ``image_dir``, sorted."""
    root = Path(image_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: image folder not found")
    return sorted(
        p.relative_to(root).as_posix() for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
    )


def _numbered_images(by_name: dict[Any, _PoolImage]) -> dict[int, _PoolImage]:
    """Integer keys for a folder pool: the number in a file's name (``000000000139.jpg`` -> 139),
    where exactly one file carries that number."""
    found: dict[int, list[_PoolImage]] = {}
    for name, img in by_name.items():
        stem = Path(str(name)).stem
        if stem.isdigit():
            found.setdefault(int(stem), []).append(img)
    return {number: imgs[0] for number, imgs in found.items() if len(imgs) == 1}


def _num_keypoints(ann: dict) -> int | None:
    """Labelled keypoints of an annotation (``num_keypoints``, else counted from ``keypoints``);
    None when it carries no keypoint information at all (a box-only annotation)."""
    if "num_keypoints" in ann:
        return int(ann["num_keypoints"])
    kpts = ann.get("keypoints")
    if kpts is None:
        return None
    return int(np.count_nonzero(np.asarray(kpts, dtype=np.float64).reshape(-1, 3)[:, 2] > 0))


def _boxes_from_annotations(
    data: dict, json_path: str | Path, min_keypoints: int = 0
) -> Iterator[tuple[Any, np.ndarray, float, int]]:
    coco = build_coco(data, json_path)
    cat_id = find_person_category(data, json_path)["id"]
    for ann in coco.dataset["annotations"]:
        if ann["category_id"] != cat_id or ann.get("iscrowd", 0):
            continue
        labelled = _num_keypoints(ann)
        if labelled is not None and labelled < min_keypoints:
            continue
        yield (
            ann["image_id"],
            parse_bbox(ann.get("bbox"), f"{json_path}: annotation {ann['id']}"),
            1.0,
            ann["id"],
        )


def _boxes_from_detections(
    detections_json: str | Path, folder_pool: bool
) -> Iterator[tuple[Any, np.ndarray, float, int]]:
    dets = read_json(detections_json)
    if not isinstance(dets, list):
        raise AnnotationError(f"{detections_json}: expected a list of detections (COCO results format)")
    for i, det in enumerate(dets):
        where = f"{detections_json}: detection {i}"
        if not isinstance(det, dict):
            raise AnnotationError(f"{where}: not an object")
        for key in ("category_id", "bbox", "score"):
            if key not in det:
                raise AnnotationError(f"{where}: field {key!r} is missing")
        if "image_id" not in det and "file_name" not in det:
            raise AnnotationError(f"{where}: field 'image_id' (or 'file_name') is missing")
        if det["category_id"] != PERSON_CATEGORY_ID:
            continue
        if "file_name" in det:
            image_id = det["file_name"]
            if not isinstance(image_id, str) or not image_id:
                raise AnnotationError(f"{where}: field 'file_name' must be a relative path, got {image_id!r}")
        else:
            image_id = det["image_id"]
            want = (str, int) if folder_pool else (int,)
            if isinstance(image_id, bool) or not isinstance(image_id, want):
                kind = (
                    "a file name relative to image_dir or the number in it"
                    if folder_pool
                    else "an integer COCO image id"
                )
                raise AnnotationError(f"{where}: field 'image_id' must be {kind}, got {image_id!r}")
        score = det["score"]
        if isinstance(score, bool) or not isinstance(score, int | float) or not np.isfinite(score):
            raise AnnotationError(f"{where}: field 'score' must be a finite number, got {score!r}")
        yield image_id, parse_bbox(det["bbox"], where), float(score), i


def load_pool(
    *,
    image_dir: str | Path | None = None,
    image_list_json: str | Path | None = None,
    detections_json: str | Path | None = None,
    annotations_json: str | Path | None = None,
    min_box_score: float = 0.0,
    min_box_size: float = 1.0,
    check_files: bool = True,
    exclude_image_ids: Collection[int] = (),
    min_keypoints: int = 0,
) -> WildPool:
    """Build the unlabeled pool (see the module docstring for the sources and the id rules).

    Args:
        image_dir: image root; ``file_name``s of a COCO json are relative to it. Required.
        image_list_json: COCO json whose ``images`` are the pool (needs ``detections_json``).
        detections_json: COCO-results person detections; overrides annotation boxes.
        annotations_json: COCO json giving the images and (without detections) the boxes.
        min_box_score: drop boxes scoring below this.
        min_box_size: drop boxes whose shorter side (after clipping) is below this many pixels.
        check_files: raise if an image of a kept box does not exist (one stat per image).
        exclude_image_ids: images left out (e.g. the labeled ones, when the pool must not include them).
        min_keypoints: with ``annotations_json``, leave out persons annotated with fewer labelled
            keypoints (1 = the reference's pool: no person without keypoints); annotations that
            carry no keypoint information always count.

    Returns:
        A :class:`WildPool` with (N, 4) xywh boxes in image space, in source order.
    """
    if image_dir is None:
        raise ValueError("load_pool needs image_dir (the folder the images live in)")
    if image_list_json is not None and annotations_json is not None:
        raise ValueError("give image_list_json or annotations_json, not both")
    root = Path(image_dir).absolute()
    coco_json = image_list_json if image_list_json is not None else annotations_json
    folder_pool = coco_json is None
    if folder_pool:
        images: dict[Any, _PoolImage] = {
            name: _PoolImage(i + 1, str(root / name)) for i, name in enumerate(list_image_folder(root))
        }
        data = None
        images.update(_numbered_images(images))
    else:
        data = read_json(coco_json)
        if not isinstance(data, dict) or not isinstance(data.get("images"), list):
            raise AnnotationError(f"{coco_json}: top-level field 'images' is missing or not a list")
        images = _coco_images(data, coco_json, root)
        images.update({Path(img.path).relative_to(root).as_posix(): img for img in list(images.values())})
    if detections_json is not None:
        source, boxes = detections_json, _boxes_from_detections(detections_json, folder_pool)
    elif annotations_json is not None:
        source, boxes = annotations_json, _boxes_from_annotations(data, annotations_json, min_keypoints)
    else:
        raise ValueError("the pool needs person boxes: pass detections_json or annotations_json")
    pool = _collect(boxes, images, source, min_box_score, min_box_size, check_files, set(exclude_image_ids))
    listed = len({img.image_id for img in images.values()})
    log.info("wild pool: %d boxes on %d images (of %d listed)", len(pool), pool.num_images, listed)
    return pool


def _collect(
    boxes: Iterator[tuple[Any, np.ndarray, float, int]],
    images: dict[Any, _PoolImage],
    source: str | Path,
    min_box_score: float,
    min_box_size: float,
    check_files: bool,
    exclude: set[int],
) -> WildPool:
    image_ids, paths, kept, scores, box_ids = [], [], [], [], []
    checked: set[str] = set()
    dropped = 0
    for key, box, score, box_id in boxes:
        img = images.get(key)
        if img is None:
            raise AnnotationError(f"{source}: box {box_id}: field 'image_id' {key!r} is not a pool image")
        if img.image_id in exclude:
            continue
        clean = clean_bbox(box, img.width, img.height)
        if clean is None or score < min_box_score or min(clean[2], clean[3]) < min_box_size:
            dropped += 1
            continue
        if check_files and img.path not in checked:
            if not Path(img.path).is_file():
                raise FileNotFoundError(f"{img.path}: pool image not found (listed in {source})")
            checked.add(img.path)
        image_ids.append(img.image_id)
        paths.append(img.path)
        kept.append(clean)
        scores.append(score)
        box_ids.append(box_id)
    log.info(
        "%s: dropped %d boxes (score < %g or side < %g px)", source, dropped, min_box_score, min_box_size
    )
    return WildPool(
        np.asarray(image_ids, dtype=np.int64),
        paths,
        np.asarray(kept, dtype=np.float32).reshape(-1, 4),
        np.asarray(scores, dtype=np.float32),
        np.asarray(box_ids, dtype=np.int64),
    )
