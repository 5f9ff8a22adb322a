"""Synthetic data sets on disk: ``DIR/images/<id:012d>.jpg`` plus ``DIR/annotations.json`` (COCO).

Every image is drawn from ``np.random.default_rng([seed, image_id])`` only, so a set is
byte-identical for a seed, and images can be generated in any order, in parallel, or resumed.
Annotation ids are ``image_id * 100 + k``; sets with disjoint image-id ranges are distinct even
with the same seed.
"""

from __future__ import annotations

import logging
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from pipeline.data.skeletons import COCO17
from pipeline.data.synthetic.figure import LEFT_SHADE
from pipeline.data.synthetic.render import SyntheticPerson
from pipeline.data.synthetic.scene import DEFAULT_IMAGE_SIZE, render_image
from pipeline.store.atomic_files import holds_json, write_json_atomic

log = logging.getLogger(__name__)

JPEG_QUALITY = 92


def image_file_name(image_id: int) -> str:
    return f"{image_id:012d}.jpg"


def coco_categories() -> list[dict]:
    """The COCO person category with COCO17 joint names and 1-based skeleton pairs."""
    skeleton = [[a + 1, b + 1] for a, b in COCO17.edge_indices]
    return [
        {
            "id": 1,
            "name": "person",
            "supercategory": "person",
            "keypoints": list(COCO17.joint_names),
            "skeleton": skeleton,
        }
    ]


def person_annotation(person: SyntheticPerson, image_id: int, index: int) -> dict:
    """COCO keypoint annotation; id = image_id * 100 + index (unique across disjoint id ranges)."""
    kpts = [round(float(v), 2) for v in person.kpts_img.reshape(-1)]
    kpts[2::3] = [int(v) for v in person.kpts_img[:, 2]]
    return {
        "id": image_id * 100 + index,
        "image_id": image_id,
        "category_id": 1,
        "bbox": [float(v) for v in person.bbox_xywh],
        "area": float(person.area),
        "iscrowd": 0,
        "num_keypoints": person.num_keypoints,
        "keypoints": kpts,
    }


def make_image(
    seed: int,
    image_id: int,
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
    max_people: int = 3,
    difficulty: float = 1.0,
    left_shade: float = LEFT_SHADE,
) -> tuple[bytes, dict, list[dict]]:
    """Render image ``image_id`` of the set ``seed``: JPEG bytes, COCO image entry, annotations.

    Depends only on (seed, image_id, image_size, max_people, difficulty, left_shade); the
    annotations do not depend on ``left_shade`` (a colour).
    """
    if max_people >= 100:
        raise ValueError("max_people must be < 100 (annotation ids are image_id * 100 + k)")
    rng = np.random.default_rng([seed, image_id])
    img, persons = render_image(rng, image_size, max_people, difficulty, left_shade)
    ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for image {image_id}")
    width, height = image_size
    entry = {"id": image_id, "file_name": image_file_name(image_id), "width": width, "height": height}
    return buf.tobytes(), entry, [person_annotation(p, image_id, k) for k, p in enumerate(persons)]


def _make_and_write(
    args: tuple[Path, int, int, tuple[int, int], int, float, float],
) -> tuple[dict, list[dict]]:
    images_dir, seed, image_id, image_size, max_people, difficulty, left_shade = args
    data, entry, anns = make_image(seed, image_id, image_size, max_people, difficulty, left_shade)
    (images_dir / entry["file_name"]).write_bytes(data)
    return entry, anns


def generate_dataset(
    out_dir: str | Path,
    *,
    seed: int,
    num_images: int,
    start_id: int = 1,
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
    max_people: int = 3,
    workers: int = 1,
    difficulty: float = 1.0,
    left_shade: float = LEFT_SHADE,
) -> dict:
    """Write ``out_dir/images/<id:012d>.jpg`` and ``out_dir/annotations.json`` (COCO keypoints).

    Image ids are ``start_id .. start_id + num_images - 1``; image ``i`` depends only on
    (seed, image id), so sets with disjoint id ranges are distinct even with the same seed.
    ``left_shade`` in (0, 1] is how bright the figures' left limbs are against their right ones
    (the left/right cue: lower is easier to tell apart).

    Returns:
        the COCO dict that was written.
    """
    if not 0.0 <= difficulty <= 1.0:
        raise ValueError(f"difficulty must be in [0, 1], got {difficulty}")
    if not 0.0 < left_shade <= 1.0:
        raise ValueError(f"left_shade must be in (0, 1], got {left_shade}")
    out_dir = Path(out_dir)
    images_dir = out_dir / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    size = (int(image_size[0]), int(image_size[1]))
    jobs = [
        (images_dir, seed, start_id + i, size, max_people, float(difficulty), float(left_shade))
        for i in range(num_images)
    ]
    images, annotations = [], []
    step = max(num_images // 10, 1)
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = pool.map(_make_and_write, jobs, chunksize=16)
            results = list(results)
    else:
        results = map(_make_and_write, jobs)
    for i, (entry, anns) in enumerate(results):
        images.append(entry)
        annotations.extend(anns)
        if (i + 1) % step == 0 or i + 1 == num_images:
            log.info("synthetic: %d/%d images, %d persons", i + 1, num_images, len(annotations))
    coco = {"images": images, "annotations": annotations, "categories": coco_categories()}
    write_json_atomic(out_dir / "annotations.json", coco)
    return coco


def ensure_synthetic(
    root: Path, train_images: int, val_images: int, seed: int, difficulty: float = 0.0, max_people: int = 1
) -> None:
    """Generate ``root/train`` and ``root/val`` (disjoint image ids) unless already present.

    ``root/<set>/generated.json`` records how a set was made; a set made with other settings
    (or without that file) is generated again.
    """
    for name, n, start, s in (("train", train_images, 1, seed), ("val", val_images, 1_000_000, seed + 1)):
        recipe = {
            "seed": s,
            "images": n,
            "start_id": start,
            "difficulty": difficulty,
            "max_people": max_people,
        }
        marker = root / name / "generated.json"
        if (root / name / "annotations.json").is_file() and holds_json(marker, recipe):
            continue
        log.info(
            "generating synthetic %s set: %d images, difficulty %g, up to %d persons each -> %s",
            name, n, difficulty, max_people, root / name,
        )  # fmt: skip
        generate_dataset(
            root / name,
            seed=s,
            num_images=n,
            start_id=start,
            difficulty=difficulty,
            max_people=max_people,
            workers=2,
        )
        write_json_atomic(marker, recipe)
