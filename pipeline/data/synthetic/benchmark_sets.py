"""The synthetic benchmark's data: a labeled set, an unlabeled pool and a validation set of one
seed, with disjoint image ids, and every label of the first two in one file (the oracle's).

A set that is already there with the right number of images is reused; images depend only on
(seed, image id) (:mod:`pipeline.data.synthetic.dataset`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from pipeline.data.synthetic.dataset import generate_dataset
from pipeline.data.synthetic.figure import LEFT_SHADE
from pipeline.store.atomic_files import write_json_atomic

log = logging.getLogger(__name__)


def make_benchmark_sets(
    root: Path,
    seed: int,
    labeled_images: int,
    pool_images: int,
    val_images: int,
    difficulty: float = 1.0,
    max_people: int = 3,
    left_shade: float = LEFT_SHADE,
) -> dict[str, Path]:
    """Generate (or reuse) the three synthetic sets of one benchmark seed (1..``max_people``
    persons per image, left limbs ``left_shade`` times as bright as right ones) under ``root``:
    ``labeled/`` (ids from 1), ``pool/`` (from 100000) and ``val/`` (from 1000000), plus
    ``all_labels.json`` (:func:`write_all_labels`). Returns ``{"labeled", "pool", "val": set
    folder, "all": root}``."""
    sets = {"labeled": (labeled_images, 1), "pool": (pool_images, 100_000), "val": (val_images, 1_000_000)}
    for name, (n, start) in sets.items():
        ann = root / name / "annotations.json"
        if ann.is_file() and len(json.loads(ann.read_text())["images"]) == n:
            continue
        log.info("generating %s: %d images (seed %d)", name, n, seed)
        generate_dataset(
            root / name,
            seed=seed * 7919 + 11,
            num_images=n,
            start_id=start,
            workers=2,
            difficulty=difficulty,
            max_people=max_people,
            left_shade=left_shade,
        )
    dirs = {name: root / name for name in sets}
    dirs["all"] = write_all_labels(root, dirs["labeled"], dirs["pool"])
    return dirs


def write_all_labels(root: Path, labeled: Path, pool: Path) -> Path:
    """``root/all_labels.json``: every label of the labeled set and of the pool in one COCO file
    whose ``file_name``s are relative to ``root`` (the oracle's training set). Returns ``root``."""
    out = root / "all_labels.json"
    sources = [(labeled, json.loads((labeled / "annotations.json").read_text()))]
    sources.append((pool, json.loads((pool / "annotations.json").read_text())))
    images, annotations = [], []
    for folder, coco in sources:
        prefix = f"{folder.name}/images/"
        images += [{**im, "file_name": prefix + im["file_name"]} for im in coco["images"]]
        annotations += coco["annotations"]
    merged = {"images": images, "annotations": annotations, "categories": sources[0][1]["categories"]}
    if not out.is_file() or json.loads(out.read_text()) != merged:
        write_json_atomic(out, merged)
    return root


def pool_persons(data: dict[str, Path]) -> int:
    """Persons of the unlabeled pool as training reads it: the pool's and the labeled images'
    annotated persons with at least one labelled keypoint (crowd regions excluded)."""
    n = 0
    for name in ("pool", "labeled"):
        coco = json.loads((data[name] / "annotations.json").read_text())
        n += sum(1 for a in coco["annotations"] if not a.get("iscrowd", 0) and a.get("num_keypoints", 0) > 0)
    return n
