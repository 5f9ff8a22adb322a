"""The COCO protocol on project-made data (no outside files): every ground-truth image counts,
exactly as plain pycocotools scores the same files, whatever the results file looks like."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.evaluation.metrics import STAT_NAMES, coco_keypoint_eval
from tests.helpers import plain_pycocotools_stats


@pytest.fixture(scope="module")
def truth_file(synthetic_data, tmp_path_factory):
    """The synthetic validation set plus a crowd region and a box without keypoints."""
    data = json.loads(synthetic_data["val_ann"].read_text())
    first = data["images"][0]
    next_id = max(a["id"] for a in data["annotations"]) + 1
    data["annotations"] += [
        {"id": next_id, "image_id": first["id"], "category_id": 1, "iscrowd": 1, "bbox": [0, 0, 60, 60],
         "area": 3600, "num_keypoints": 0, "keypoints": [0] * 51,
         "segmentation": {"counts": [0, 3600], "size": [first["height"], first["width"]]}},
        {"id": next_id + 1, "image_id": data["images"][1]["id"], "category_id": 1, "iscrowd": 0,
         "bbox": [5, 5, 20, 30], "area": 600, "num_keypoints": 0, "keypoints": [0] * 51},
    ]  # fmt: skip
    path = tmp_path_factory.mktemp("protocol") / "truth.json"
    path.write_text(json.dumps(data))
    return path


def _results(truth: dict, how: str) -> list[dict]:
    rng = np.random.default_rng(11)
    out = []
    for a in truth["annotations"]:
        if a.get("iscrowd") or not a.get("num_keypoints"):
            continue
        kp = np.asarray(a["keypoints"], np.float64).reshape(-1, 3)
        kp[:, :2] += rng.normal(0, 2.5, (len(kp), 2))
        kp[:, 2] = rng.uniform(0.1, 1, len(kp))
        out.append({"image_id": a["image_id"], "category_id": 1, "keypoints": kp.reshape(-1).tolist(),
                    "score": float(rng.uniform(0.2, 1))})  # fmt: skip
    images = sorted({r["image_id"] for r in out})
    if how == "dropped_images":
        gone = set(images[: len(images) // 3])
        out = [r for r in out if r["image_id"] not in gone]
    elif how == "duplicated_and_shuffled":
        out = out + [dict(r, score=r["score"] / 2) for r in out[::3]]
        out = [out[i] for i in rng.permutation(len(out))]
    elif how == "on_crowd_region":
        crowd = next(a for a in truth["annotations"] if a.get("iscrowd"))
        kp = np.column_stack([rng.uniform(0, 60, 17), rng.uniform(0, 60, 17), np.ones(17)])
        out.append({"image_id": crowd["image_id"], "category_id": 1, "keypoints": kp.reshape(-1).tolist(),
                    "score": 0.9})  # fmt: skip
    return out


@pytest.mark.parametrize("how", ["as_is", "dropped_images", "duplicated_and_shuffled", "on_crowd_region"])
def test_every_ground_truth_image_counts_as_in_plain_pycocotools(truth_file, tmp_path, how):
    truth = json.loads(truth_file.read_text())
    results = _results(truth, how)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    ours = coco_keypoint_eval(truth_file, path)
    assert 0.05 < ours["AP"] <= 1.0
    for name, ref in zip(STAT_NAMES, plain_pycocotools_stats(truth_file, results)):
        assert abs(ours[name] - ref) < 1e-9, (how, name)
