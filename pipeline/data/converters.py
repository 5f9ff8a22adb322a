"""Convert MPII (mmpose/HRNet json) and raw AI Challenger annotations to COCO person keypoints.

The output is a plain COCO dict (``images``, ``annotations``, ``categories``) that
:func:`pipeline.data.coco.load_coco_persons` and pycocotools read. Keypoints are in image space,
0-based pixels (origin at the centre of the top-left pixel); unlabelled joints are ``(0, 0, 0)``.
Image and annotation ids are assigned 1, 2, ... in order of first appearance in the input.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipeline.data.coco import AnnotationError, read_json
from pipeline.data.skeletons import AIC14, MPII16, Skeleton
from pipeline.store.atomic_files import atomic_write

log = logging.getLogger(__name__)

MPII_PIXEL_STD = 200.0  # MPII ``scale`` is the person height in units of 200 px
MPII_CENTER_SHIFT = 15.0  # HRNet/mmpose move the centre down by 15 * scale px to keep the feet
# AI Challenger visibility: 1 visible, 2 occluded (labelled), 3 not labelled -> COCO 2, 1, 0
AIC_TO_COCO_VISIBILITY = {1: 2, 2: 1, 3: 0}


def coco_category(skeleton: Skeleton) -> dict:
    """The COCO ``person`` category of a skeleton (joint names, 1-based limb pairs)."""
    return {
        "id": 1,
        "name": "person",
        "supercategory": "person",
        "keypoints": list(skeleton.joint_names),
        "skeleton": [[a + 1, b + 1] for a, b in skeleton.edge_indices],
    }


def read_image_size(path: str | Path) -> tuple[int, int] | None:
    """(width, height) of an image file, or None when the file is missing or does not decode."""
    path = Path(path)
    if not path.is_file():
        return None
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        return None
    return int(image.shape[1]), int(image.shape[0])


def _image_entry(image_id: int, file_name: str, image_dir: Path, require_images: bool) -> dict:
    entry: dict[str, Any] = {"id": image_id, "file_name": file_name}
    size = read_image_size(image_dir / file_name)
    if size is None:
        if require_images:
            raise FileNotFoundError(f"{image_dir / file_name}: image missing or unreadable")
        log.warning("%s: image missing; its COCO entry has no width/height", image_dir / file_name)
    else:
        entry["width"], entry["height"] = size
    return entry


def _clip_box_xyxy(box: np.ndarray, entry: dict) -> np.ndarray:
    """(4,) x1,y1,x2,y2 image space, clipped to the image when its size is known."""
    if "width" in entry:
        box = box.copy()
        box[[0, 2]] = np.clip(box[[0, 2]], 0.0, entry["width"] - 1.0)
        box[[1, 3]] = np.clip(box[[1, 3]], 0.0, entry["height"] - 1.0)
    return box


def _annotation(ann_id: int, image_id: int, kpts: np.ndarray, box_xyxy: np.ndarray) -> dict:
    """A COCO annotation from (K, 3) keypoints (x, y, v) and a (4,) xyxy box, both image space."""
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    w, h = max(x2 - x1, 0.0), max(y2 - y1, 0.0)
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": 1,
        "iscrowd": 0,
        "bbox": [x1, y1, w, h],
        "area": w * h,
        "keypoints": [float(v) if i % 3 < 2 else int(v) for i, v in enumerate(kpts.reshape(-1))],
        "num_keypoints": int((kpts[:, 2] > 0).sum()),
    }


def _numbers(value: Any, shape: tuple[int, ...], where: str, field_name: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise AnnotationError(f"{where}: field {field_name!r} holds a non-number ({e})") from e
    if arr.shape != shape or not np.isfinite(arr).all():
        raise AnnotationError(f"{where}: field {field_name!r} must be {shape} finite numbers, got {value!r}")
    return arr


def mpii_person(entry: dict, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """One mmpose/HRNet MPII entry -> keypoints, box, centre and scale, all 0-based image space.

    The json stores MATLAB 1-based pixel coordinates (HRNet and mmpose subtract 1 from
    ``joints`` and ``center`` on loading); we do the same. ``joints_vis`` says whether a joint is
    labelled (MPII's own visible/occluded flag is not in this json): labelled -> COCO v=2.
    The box is mmpose's: a square of side ``scale * 200`` centred at ``center + (0, 15 * scale)``
    (the 1.25 context padding is left to the crop, ``pipeline.geometry.views.box_to_center_size``).

    Returns:
        kpts (16, 3) float64 (x, y, v); box (4,) xyxy; center (2,) 0-based; scale (person height / 200).
    """
    k = MPII16.num_joints
    joints = _numbers(entry.get("joints"), (k, 2), where, "joints")
    vis = _numbers(entry.get("joints_vis"), (k,), where, "joints_vis")
    center = _numbers(entry.get("center"), (2,), where, "center")
    scale = float(_numbers(entry.get("scale"), (), where, "scale"))
    if scale <= 0:
        raise AnnotationError(f"{where}: field 'scale' must be positive, got {scale}")
    labelled = vis > 0
    kpts = np.zeros((k, 3), dtype=np.float64)
    kpts[labelled, :2] = joints[labelled] - 1.0
    kpts[labelled, 2] = 2
    center0 = center - 1.0
    side = scale * MPII_PIXEL_STD
    cx, cy = center0[0], center0[1] + MPII_CENTER_SHIFT * scale
    box = np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2])
    return kpts, box, center0, scale


def mpii_to_coco(mpii_json_path: str | Path, image_dir: str | Path, *, require_images: bool = True) -> dict:
    """mmpose/HRNet MPII json -> COCO person-keypoints dict with the 16 MPII16 joints.

    Input: a list of ``{image, center, scale, joints (16x2), joints_vis (16)}``, one per person.
    Each annotation keeps ``center`` (0-based) and ``scale`` for PCKh (this json has no head boxes;
    the head size of PCKh comes from MPII's separate ``gt_valid.mat``).
    """
    entries = read_json(mpii_json_path)
    if not isinstance(entries, list):
        raise AnnotationError(f"{mpii_json_path}: expected a list of MPII entries")
    image_dir = Path(image_dir)
    images: dict[str, dict] = {}
    annotations = []
    for i, entry in enumerate(entries):
        where = f"{mpii_json_path}: entry {i}"
        name = entry.get("image") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name:
            raise AnnotationError(f"{where}: field 'image' is missing")
        if name not in images:
            images[name] = _image_entry(len(images) + 1, name, image_dir, require_images)
        kpts, box, center, scale = mpii_person(entry, where)
        ann = _annotation(len(annotations) + 1, images[name]["id"], kpts, _clip_box_xyxy(box, images[name]))
        ann["center"], ann["scale"] = [float(center[0]), float(center[1])], scale
        annotations.append(ann)
    log.info("%s: %d images, %d persons", mpii_json_path, len(images), len(annotations))
    return {
        "images": list(images.values()),
        "annotations": annotations,
        "categories": [coco_category(MPII16)],
    }


def aic_person(raw_kpts: Any, raw_box: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Raw AI Challenger person -> (14, 3) keypoints (x, y, COCO v) and (4,) xyxy box, image space.

    AIC visibility 1 (visible) / 2 (occluded) / 3 (not labelled) becomes COCO 2 / 1 / 0; a not
    labelled joint becomes ``(0, 0, 0)``.
    """
    k = AIC14.num_joints
    flat = _numbers(raw_kpts, (3 * k,), where, "keypoint_annotations")
    kpts = flat.reshape(k, 3).copy()
    bad = ~np.isin(kpts[:, 2], list(AIC_TO_COCO_VISIBILITY))
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        raise AnnotationError(
            f"{where}: field 'keypoint_annotations' joint {j} has visibility {kpts[j, 2]:g} not in 1/2/3"
        )
    kpts[:, 2] = [AIC_TO_COCO_VISIBILITY[int(v)] for v in kpts[:, 2]]
    kpts[kpts[:, 2] == 0] = 0.0
    box = _numbers(raw_box, (4,), where, "human_annotations")
    if box[2] < box[0] or box[3] < box[1]:
        raise AnnotationError(f"{where}: field 'human_annotations' is not x1,y1,x2,y2: {raw_box!r}")
    return kpts, box


def aic_to_coco(aic_raw_json_path: str | Path, image_dir: str | Path, *, require_images: bool = True) -> dict:
    """Raw AI Challenger keypoint json -> COCO person-keypoints dict with the 14 AIC14 joints.

    Input: a list of ``{"image_id": "<hash>", "keypoint_annotations": {"human1": [x, y, v] * 14},
    "human_annotations": {"human1": [x1, y1, x2, y2]}}``; the image file is ``<hash>.jpg`` in
    ``image_dir``. Persons are taken in the order of ``human_annotations``; each must have keypoints.
    Image sizes are read from the image files (an error when missing unless ``require_images=False``).
    """
    entries = read_json(aic_raw_json_path)
    if not isinstance(entries, list):
        raise AnnotationError(f"{aic_raw_json_path}: expected a list of AI Challenger entries")
    image_dir = Path(image_dir)
    images, annotations = [], []
    for i, entry in enumerate(entries):
        where = f"{aic_raw_json_path}: entry {i}"
        if not isinstance(entry, dict):
            raise AnnotationError(f"{where}: not an object")
        hash_id = entry.get("image_id")
        if not isinstance(hash_id, str) or not hash_id:
            raise AnnotationError(f"{where}: field 'image_id' is missing")
        humans, kpt_anns = entry.get("human_annotations"), entry.get("keypoint_annotations")
        for key, value in (("human_annotations", humans), ("keypoint_annotations", kpt_anns)):
            if not isinstance(value, dict):
                raise AnnotationError(f"{where} (image {hash_id}): field {key!r} is missing or not an object")
        image = _image_entry(len(images) + 1, f"{hash_id}.jpg", image_dir, require_images)
        images.append(image)
        for human, raw_box in humans.items():
            person = f"{where} (image {hash_id}, {human})"
            if human not in kpt_anns:
                raise AnnotationError(f"{person}: field 'keypoint_annotations' has no entry for {human!r}")
            kpts, box = aic_person(kpt_anns[human], raw_box, person)
            annotations.append(
                _annotation(len(annotations) + 1, image["id"], kpts, _clip_box_xyxy(box, image))
            )
    log.info("%s: %d images, %d persons", aic_raw_json_path, len(images), len(annotations))
    return {"images": images, "annotations": annotations, "categories": [coco_category(AIC14)]}


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_coco_json(data: dict, path: str | Path) -> None:
    """Write ``data`` as JSON atomically: a temporary file in the same folder, then ``os.replace``."""
    with atomic_write(path, "w") as f:
        json.dump(data, f, default=_json_default)
