"""COCO-format person-keypoint annotations as a flat list of person records.

All boxes and keypoints are in image space (pixels of the original image, origin at the centre of
the top-left pixel). The reader follows SimpleBaseline / mmpose top-down training:

- only the person category (named ``person``, or the file's only category);
- ``iscrowd`` annotations are skipped;
- with ``require_keypoints`` persons without a labelled keypoint are skipped;
- boxes are clipped to the image (mmpose 1.x rule: corners clipped to ``[0, W-1] x [0, H-1]``) and
  dropped when the clipped width or height or the annotation area is not positive.

Every kept-or-skipped non-crowd person annotation is validated; a malformed one raises
:class:`AnnotationError` naming the file, the annotation id and the field.

Order: records come in the annotation order of the file (``order="annotations"``, the default) or,
with ``order="images"``, in the SimpleBaseline/HRNet database order (images in file order, each
image's annotations in file order). The labeled subset of the paper ("the first N persons") is
``max_persons=N`` applied in the chosen order, after the filters above.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pycocotools.coco import COCO

from pipeline.data.image_checks import check_image_files, images_of
from pipeline.data.skeletons import SKELETONS, Skeleton, get_skeleton

log = logging.getLogger(__name__)

PERSON_CATEGORY_NAME = "person"
_JOINT_NAME_ALIASES = {"head": "head_top"}  # CrowdPose names its head-top joint "head"


class AnnotationError(ValueError):
    """A malformed annotation file; the message names the file, the record and the field."""


@dataclass
class PersonRecord:
    """One annotated person.

    Attributes:
        image_id: COCO image id.
        image_path: absolute path of the image file.
        ann_id: COCO annotation id.
        bbox_xywh: (4,) float32 cleaned box (x, y, w, h), image space.
        kpts_img: (K, 3) float32 keypoints (x, y, v), image space, COCO visibility v in {0, 1, 2}.
        area: annotation area (segment area in COCO; used by OKS), image px^2.
        num_keypoints: number of labelled keypoints (v > 0).
        score: box score (1.0 for ground truth).
    """

    image_id: int
    image_path: str
    ann_id: int
    bbox_xywh: np.ndarray
    kpts_img: np.ndarray
    area: float
    num_keypoints: int
    score: float = 1.0


@dataclass
class CocoPersonDataset:
    """The persons of one COCO keypoints file together with the skeleton they use."""

    ann_file: str
    image_dir: str
    skeleton: Skeleton
    records: list[PersonRecord] = field(default_factory=list)

    @classmethod
    def load(
        cls,
        ann_file: str | Path,
        image_dir: str | Path,
        *,
        skeleton: Skeleton | str | None = None,
        **kwargs: Any,
    ) -> CocoPersonDataset:
        """Load ``ann_file`` with :func:`load_coco_persons` (same keyword arguments)."""
        data = read_json(ann_file)
        resolved = resolve_skeleton(find_person_category(data, ann_file), skeleton, ann_file)
        records = persons_from_coco_dict(data, image_dir, ann_file=ann_file, skeleton=resolved, **kwargs)
        return cls(str(ann_file), str(Path(image_dir).absolute()), resolved, records)

    def __len__(self) -> int:
        return len(self.records)


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; a missing or unparsable file raises an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: annotation file not found")
    try:
        with path.open("rb") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AnnotationError(f"{path}: not valid JSON ({e})") from e


def find_person_category(data: dict, ann_file: str | Path) -> dict:
    """The person category of a COCO dict: the one named ``person``, else the only category."""
    cats = data.get("categories") if isinstance(data, dict) else None
    if not isinstance(cats, list) or not cats:
        raise AnnotationError(f"{ann_file}: field 'categories' is missing or empty")
    named = [c for c in cats if isinstance(c, dict) and c.get("name") == PERSON_CATEGORY_NAME]
    if len(named) == 1:
        return named[0]
    if len(cats) == 1 and isinstance(cats[0], dict):
        return cats[0]
    raise AnnotationError(
        f"{ann_file}: field 'categories': expected one category named {PERSON_CATEGORY_NAME!r} "
        f"or a single category, found {len(named)} named person among {len(cats)}"
    )


def _normalise_joint_name(name: str) -> str:
    n = str(name).strip().lower().replace(" ", "_").replace("-", "_")
    return _JOINT_NAME_ALIASES.get(n, n)


def _skeleton_by_names(names: Sequence[str]) -> Skeleton | None:
    normalised = tuple(_normalise_joint_name(n) for n in names)
    for s in SKELETONS.values():
        if s.joint_names == normalised:
            return s
    return None


def resolve_skeleton(category: dict, skeleton: Skeleton | str | None, ann_file: str | Path) -> Skeleton:
    """The skeleton of a person category.

    An explicit ``skeleton`` (object, built-in name such as ``"crowdpose14"``, or a skeleton
    file) is used; where the category lists joint names they must be the skeleton's (case,
    spaces and CrowdPose's ``head`` normalised), else the error names both lists. Without one,
    the category's names are matched against the built-in skeletons; names that match none are
    an error asking for a skeleton file (``data.skeleton=PATH``): a skeleton chosen by joint
    count alone would give the wrong flip pairs and OKS sigmas.
    """
    names = category.get("keypoints")
    if names is not None and not isinstance(names, list):
        raise AnnotationError(f"{ann_file}: category {category.get('id')}: field 'keypoints' is not a list")
    where = f"{ann_file}: category {category.get('id')}: field 'keypoints'"
    if skeleton is not None:
        sk = get_skeleton(skeleton) if isinstance(skeleton, str | Path) else skeleton
        if names and len(names) != sk.num_joints:
            raise AnnotationError(
                f"{where} lists {len(names)} joints but skeleton {sk.name} has {sk.num_joints}"
            )
        if names and tuple(_normalise_joint_name(n) for n in names) != sk.joint_names:
            raise AnnotationError(
                f"{where} names the joints {list(names)}, which are not those of skeleton {sk.name} "
                f"{list(sk.joint_names)}; choose the skeleton of this data set (data.skeleton: a built-in "
                f"name of {sorted(SKELETONS)} or a skeleton file)"
            )
        return sk
    if not names:
        raise AnnotationError(f"{where} is missing; pass skeleton=")
    by_names = _skeleton_by_names(names)
    if by_names is not None:
        return by_names
    raise AnnotationError(
        f"{where} names the joints {list(names)}, which match no built-in skeleton {sorted(SKELETONS)}; "
        "describe them in a skeleton file (joint names, flip pairs, OKS sigmas) and pass it as data.skeleton"
    )


def _require_list(data: dict, key: str, ann_file: str | Path) -> list:
    value = data.get(key)
    if not isinstance(value, list):
        raise AnnotationError(f"{ann_file}: top-level field {key!r} is missing or not a list")
    return value


def _check_structure(data: Any, ann_file: str | Path) -> None:
    """Check what pycocotools' index needs, so that errors name the record instead of a KeyError."""
    if not isinstance(data, dict):
        raise AnnotationError(f"{ann_file}: expected a COCO dict, got {type(data).__name__}")
    for i, img in enumerate(_require_list(data, "images", ann_file)):
        if not isinstance(img, dict) or "id" not in img:
            raise AnnotationError(f"{ann_file}: images[{i}]: field 'id' is missing")
    for i, ann in enumerate(_require_list(data, "annotations", ann_file)):
        if not isinstance(ann, dict):
            raise AnnotationError(f"{ann_file}: annotations[{i}] is not an object")
        for key in ("id", "image_id", "category_id"):
            if key not in ann:
                where = f"annotation {ann['id']}" if "id" in ann else f"annotations[{i}]"
                raise AnnotationError(f"{ann_file}: {where}: field {key!r} is missing")
    for i, cat in enumerate(_require_list(data, "categories", ann_file)):
        if not isinstance(cat, dict) or "id" not in cat:
            raise AnnotationError(f"{ann_file}: categories[{i}]: field 'id' is missing")


def build_coco(data: dict, ann_file: str | Path) -> COCO:
    """A pycocotools index over an already parsed (and structurally checked) COCO dict."""
    _check_structure(data, ann_file)
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def parse_keypoints(raw: Any, num_joints: int, where: str) -> np.ndarray:
    """(3K,) flat COCO keypoints -> (K, 3) float32 (x, y, v), image space; validated.

    ``where`` prefixes error messages (file and annotation id).
    """
    if not isinstance(raw, list):
        raise AnnotationError(f"{where}: field 'keypoints' is missing or not a list")
    if len(raw) != 3 * num_joints:
        raise AnnotationError(
            f"{where}: field 'keypoints' has {len(raw)} values, expected {3 * num_joints} (3 x {num_joints})"
        )
    try:
        kpts = np.asarray(raw, dtype=np.float64).reshape(num_joints, 3)
    except (TypeError, ValueError) as e:
        raise AnnotationError(f"{where}: field 'keypoints' holds a non-number ({e})") from e
    if not np.isfinite(kpts).all():
        raise AnnotationError(f"{where}: field 'keypoints' holds a non-finite value")
    bad_v = ~np.isin(kpts[:, 2], (0.0, 1.0, 2.0))
    if bad_v.any():
        j = int(np.flatnonzero(bad_v)[0])
        raise AnnotationError(
            f"{where}: field 'keypoints' joint {j} has visibility {kpts[j, 2]:g} not in 0/1/2"
        )
    return kpts.astype(np.float32)


def parse_bbox(raw: Any, where: str) -> np.ndarray:
    """A COCO ``bbox`` field -> (4,) float64 (x, y, w, h), image space; validated."""
    if raw is None:
        raise AnnotationError(f"{where}: field 'bbox' is missing")
    try:
        box = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise AnnotationError(f"{where}: field 'bbox' holds a non-number ({e})") from e
    if box.shape != (4,) or not np.isfinite(box).all():
        raise AnnotationError(f"{where}: field 'bbox' must be 4 finite numbers, got {raw!r}")
    return box


def clean_bbox(bbox_xywh: np.ndarray, width: float | None, height: float | None) -> np.ndarray | None:
    """(4,) box (x, y, w, h), image space -> the box clipped to the image, or None if empty.

    mmpose 1.x rule: both corners are clipped to ``[0, W-1] x [0, H-1]``; a box whose clipped width
    or height is not positive is dropped. Without an image size only the emptiness check applies.
    """
    x, y, w, h = (float(v) for v in bbox_xywh)
    x1, y1, x2, y2 = x, y, x + w, y + h
    if width is not None and height is not None:
        x1, x2 = np.clip([x1, x2], 0.0, width - 1.0)
        y1, y2 = np.clip([y1, y2], 0.0, height - 1.0)
    if x2 - x1 <= 0 or y2 - y1 <= 0:
        return None
    return np.array([x1, y1, x2 - x1, y2 - y1], dtype=np.float64)


def _image_size(img: dict, ann_file: str | Path) -> tuple[float | None, float | None]:
    w, h = img.get("width"), img.get("height")
    if w is None or h is None:
        return None, None
    if not isinstance(w, int | float) or not isinstance(h, int | float) or w <= 0 or h <= 0:
        raise AnnotationError(f"{ann_file}: image {img['id']}: field 'width'/'height' invalid: {w!r}, {h!r}")
    return float(w), float(h)


def _image_path(img: dict, image_dir: Path, ann_file: str | Path) -> str:
    name = img.get("file_name")
    if not isinstance(name, str) or not name:
        raise AnnotationError(f"{ann_file}: image {img['id']}: field 'file_name' is missing")
    return str(image_dir / name)


def _as_int_id(value: Any, where: str, field_name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or float(value) != int(value):
        raise AnnotationError(f"{where}: field {field_name!r} must be an integer id, got {value!r}")
    return int(value)


def _ordered_person_anns(coco: COCO, cat_id: Any, order: str) -> list[dict]:
    anns = [a for a in coco.dataset["annotations"] if a["category_id"] == cat_id]
    if order == "annotations":
        return anns
    if order == "images":
        by_image: dict[Any, list[dict]] = {}
        for a in anns:
            by_image.setdefault(a["image_id"], []).append(a)
        return [a for img_id in coco.getImgIds() for a in by_image.get(img_id, [])]
    raise ValueError(f"order must be 'annotations' or 'images', got {order!r}")


def _person_record(
    ann: dict, img: dict, image_dir: Path, ann_file: str | Path, num_joints: int
) -> PersonRecord | None:
    """Validate one non-crowd person annotation; None when its box is empty after cleaning."""
    where = f"{ann_file}: annotation {ann['id']}"
    kpts = parse_keypoints(ann.get("keypoints"), num_joints, where)
    box = parse_bbox(ann.get("bbox"), where)
    width, height = _image_size(img, ann_file)
    clean = clean_bbox(box, width, height)
    area = ann.get("area", None if clean is None else float(clean[2] * clean[3]))
    if area is not None and (not isinstance(area, int | float) or not math.isfinite(area)):
        raise AnnotationError(f"{where}: field 'area' must be a finite number, got {area!r}")
    if clean is None or area is None or area <= 0:
        return None
    return PersonRecord(
        image_id=_as_int_id(ann["image_id"], where, "image_id"),
        image_path=_image_path(img, image_dir, ann_file),
        ann_id=_as_int_id(ann["id"], where, "id"),
        bbox_xywh=clean.astype(np.float32),
        kpts_img=kpts,
        area=float(area),
        num_keypoints=int((kpts[:, 2] > 0).sum()),
    )


def load_coco_persons(
    ann_file: str | Path,
    image_dir: str | Path,
    *,
    skeleton: Skeleton | str | None = None,
    require_keypoints: bool = True,
    max_persons: int | None = None,
    check_images: bool = False,
    skip_bad_images: bool = False,
    order: Literal["annotations", "images"] = "annotations",
) -> list[PersonRecord]:
    """Read the persons of a COCO person-keypoints file (see the module docstring for the rules).

    Args:
        ann_file: COCO keypoints JSON.
        image_dir: folder that ``images[].file_name`` is relative to.
        skeleton: Skeleton or its name; inferred from the category when None (see
            :func:`resolve_skeleton`; CrowdPose is recognised by its joint names).
        require_keypoints: skip persons with no labelled keypoint (training; False for evaluation).
        max_persons: keep only the first N persons in ``order`` (the paper's labeled subset).
        check_images: verify each image file (:func:`check_image_files`); with
            ``skip_bad_images`` bad images' persons are dropped, otherwise the first raises.
        order: ``"annotations"`` (file order) or ``"images"`` (SimpleBaseline database order).

    Returns:
        PersonRecords with (4,) boxes and (K, 3) keypoints in image space.
    """
    return persons_from_coco_dict(
        read_json(ann_file),
        image_dir,
        ann_file=ann_file,
        skeleton=skeleton,
        require_keypoints=require_keypoints,
        max_persons=max_persons,
        check_images=check_images,
        skip_bad_images=skip_bad_images,
        order=order,
    )


def persons_from_coco_dict(
    data: dict,
    image_dir: str | Path,
    *,
    ann_file: str | Path = "<dict>",
    skeleton: Skeleton | str | None = None,
    require_keypoints: bool = True,
    max_persons: int | None = None,
    check_images: bool = False,
    skip_bad_images: bool = False,
    order: Literal["annotations", "images"] = "annotations",
) -> list[PersonRecord]:
    """:func:`load_coco_persons` on an already parsed COCO dict (``ann_file`` names it in errors)."""
    coco = build_coco(data, ann_file)
    category = find_person_category(data, ann_file)
    num_joints = resolve_skeleton(category, skeleton, ann_file).num_joints
    image_root = Path(image_dir).absolute()
    records: list[PersonRecord] = []
    skipped = {"crowd": 0, "no_keypoints": 0, "empty_box": 0}
    for ann in _ordered_person_anns(coco, category["id"], order):
        img = coco.imgs.get(ann["image_id"])
        if img is None:
            raise AnnotationError(
                f"{ann_file}: annotation {ann['id']}: field 'image_id' {ann['image_id']!r} not in 'images'"
            )
        if ann.get("iscrowd", 0):
            skipped["crowd"] += 1
            continue
        rec = _person_record(ann, img, image_root, ann_file, num_joints)
        if rec is None:
            skipped["empty_box"] += 1
        elif require_keypoints and rec.num_keypoints == 0:
            skipped["no_keypoints"] += 1
        else:
            records.append(rec)
    log.info("%s: %d persons (skipped %s)", ann_file, len(records), skipped)
    if max_persons is not None:
        if max_persons < 0:
            raise ValueError(f"max_persons must be >= 0, got {max_persons}")
        if max_persons > len(records):
            log.warning(
                "%s: %d persons asked for (num_labeled), only %d usable: training on %d",
                ann_file, max_persons, len(records), len(records),
            )  # fmt: skip
        records = records[:max_persons]
    if check_images:
        records, _ = check_image_files(records, skip_bad=skip_bad_images)
    return records


def summarize(records: Sequence[PersonRecord]) -> dict[str, int]:
    """Counts of a record list: ``images``, ``persons``, ``labelled_keypoints`` (v > 0)."""
    return {
        "images": len(images_of(records)),
        "persons": len(records),
        "labelled_keypoints": int(sum(r.num_keypoints for r in records)),
    }
