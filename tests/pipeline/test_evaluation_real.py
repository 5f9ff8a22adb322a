"""The evaluator on the real samples in ../shared/data/real (skipped when absent).

Ground truth fed back as predictions must score AP = AR = 1; the evaluator's numbers must be
pycocotools' own to 1e-9; PCKh of ground truth on MPII is 1.
"""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools.coco import COCO

from pipeline.data.converters import mpii_to_coco
from pipeline.data.skeletons import AIC14, COCO17, CROWDPOSE14
from pipeline.evaluation.metrics import (
    STAT_NAMES,
    ResultsError,
    coco_keypoint_eval,
    ground_truth_as_results,
    head_size_from_scale,
    load_coco_annotations,
    make_keypoint_results,
    pckh,
)
from tests.helpers import plain_pycocotools_stats

FILES = {
    "coco": ("mmpose_testdata/coco/test_coco.json", COCO17),
    "coco_mini_train": ("coco_mini/annotations/person_keypoints_train2017.json", COCO17),
    "coco_mini_val": ("coco_mini/annotations/person_keypoints_val2017.json", COCO17),
    "ochuman": ("mmpose_testdata/ochuman/test_ochuman.json", COCO17),
    "crowdpose": ("mmpose_testdata/crowdpose/test_crowdpose.json", CROWDPOSE14),
    "aic": ("mmpose_testdata/aic/test_aic.json", AIC14),
}


def quiet_coco(path) -> COCO:
    return load_coco_annotations(path)


@pytest.mark.parametrize("name", sorted(FILES))
def test_ground_truth_scores_one(real_data, name):
    rel, skeleton = FILES[name]
    coco = quiet_coco(real_data / rel)
    results = ground_truth_as_results(coco)
    assert results, f"{name} has persons with keypoints"
    stats = coco_keypoint_eval(coco, results, sigmas=skeleton.sigmas_array)
    assert stats["AP"] == pytest.approx(1.0, abs=1e-12)
    assert stats["AR"] == pytest.approx(1.0, abs=1e-12)


def noisy_results(coco: COCO, seed: int, noise: float) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for r in ground_truth_as_results(coco):
        if rng.random() < 0.15:  # some persons missed
            continue
        kp = np.asarray(r["keypoints"], dtype=np.float64).reshape(-1, 3)
        kp[:, :2] += rng.normal(0, noise, size=(len(kp), 2))
        kp[:, 2] = rng.uniform(0.1, 1.0, size=len(kp))
        out.append({**r, "keypoints": kp.reshape(-1).tolist(), "score": float(rng.uniform(0.2, 1))})
    return out


def test_numbers_equal_pycocotools_to_1e9(real_data):
    ann = real_data / "coco_mini/annotations/person_keypoints_val2017.json"
    coco = quiet_coco(ann)
    results = noisy_results(coco, seed=0, noise=4.0)
    ours = coco_keypoint_eval(ann, results)
    assert 0.05 < ours["AP"] < 0.95
    for name, ref in zip(STAT_NAMES, plain_pycocotools_stats(ann, results)):
        assert abs(ours[name] - ref) < 1e-9, name


def _perturbed(coco: COCO, how: str) -> list[dict]:
    rng = np.random.default_rng(7)
    results = noisy_results(coco, seed=3, noise=3.0)
    images = sorted({r["image_id"] for r in results})
    if how == "dropped_images":  # images with ground truth and no result at all
        gone = set(rng.choice(images, size=len(images) // 3, replace=False).tolist())
        return [r for r in results if r["image_id"] not in gone]
    if how == "duplicated_and_shuffled":
        twice = [dict(r, score=r["score"] * 0.9) for r in results if rng.random() < 0.3]
        out = results + twice
        return [out[i] for i in rng.permutation(len(out))]
    if how == "on_crowd_regions":  # results inside crowd regions (ignored by COCOeval, not misses)
        crowd = coco.loadAnns(coco.getAnnIds(iscrowd=True))
        extra = []
        for a in crowd:
            x, y, w, h = a["bbox"]
            kp = np.column_stack([rng.uniform(x, x + w, 17), rng.uniform(y, y + h, 17), np.ones(17)])
            extra.append(
                {
                    "image_id": a["image_id"],
                    "category_id": 1,
                    "keypoints": kp.reshape(-1).tolist(),
                    "score": 0.5,
                }
            )
        assert extra, "the file has crowd regions"
        return results + extra
    if how == "one_image":
        return [r for r in results if r["image_id"] == images[0]]
    raise ValueError(how)


@pytest.mark.parametrize(
    "how", ["dropped_images", "duplicated_and_shuffled", "on_crowd_regions", "one_image"]
)
def test_every_ground_truth_image_counts_as_in_pycocotools(real_data, tmp_path, how):
    import json

    ann = real_data / "coco_mini/annotations/person_keypoints_val2017.json"
    coco = quiet_coco(ann)
    results = _perturbed(coco, how)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    ours = coco_keypoint_eval(ann, path)
    for name, ref in zip(STAT_NAMES, plain_pycocotools_stats(ann, results)):
        assert abs(ours[name] - ref) < 1e-9, (how, name)
    if how in ("dropped_images", "one_image"):  # the images without results pull AP and AR down
        seen = coco_keypoint_eval(ann, path, image_ids=sorted({r["image_id"] for r in results}))
        assert ours["AR"] < seen["AR"]


def test_ap_falls_with_noise(real_data):
    ann = real_data / "coco_mini/annotations/person_keypoints_val2017.json"
    coco = quiet_coco(ann)
    aps = [coco_keypoint_eval(coco, noisy_results(coco, 1, s))["AP"] for s in (0.5, 4.0, 16.0)]
    assert aps[0] > aps[1] > aps[2]


def test_bad_results_name_index_and_field(real_data, tmp_path):
    coco = quiet_coco(real_data / FILES["coco"][0])
    results = ground_truth_as_results(coco)
    results[2] = {**results[2], "image_id": 987654321}
    with pytest.raises(ResultsError, match=r"\[2\].*image_id"):
        coco_keypoint_eval(coco, results)
    results = ground_truth_as_results(coco)
    results[1] = {**results[1], "keypoints": results[1]["keypoints"][:30]}
    with pytest.raises(ResultsError, match=r"\[1\].*keypoints"):
        coco_keypoint_eval(coco, results)


def test_rescoring_is_box_score_times_mean_confident_keypoint_score():
    kpts = np.zeros((1, 3, 3))
    kpts[0, :, 2] = [0.9, 0.1, 0.5]  # 0.1 is below the 0.2 threshold
    res = make_keypoint_results(np.array([7]), kpts, np.array([0.8]))
    assert res[0]["score"] == pytest.approx(0.8 * (0.9 + 0.5) / 2)
    assert res[0]["image_id"] == 7 and len(res[0]["keypoints"]) == 9


def test_pckh_on_mpii_ground_truth(real_data):
    data = mpii_to_coco(real_data / "mmpose_testdata/mpii/test_mpii.json", real_data / "mmpose_testdata/mpii")
    anns = data["annotations"]
    gt = np.array([np.reshape(a["keypoints"], (16, 3)) for a in anns])
    vis = gt[..., 2] > 0
    heads = head_size_from_scale(np.array([a["scale"] for a in anns]))
    assert pckh(gt[..., :2], gt[..., :2], vis, heads)["mean"] == 1.0
    moved = gt[..., :2].copy()
    moved[:, 0, 0] += heads * 0.6  # right ankle moved beyond 0.5 head sizes
    moved[:, 1, 0] += heads * 0.4  # right knee moved within
    out = pckh(moved, gt[..., :2], vis, heads)
    assert out["right_ankle"] == 0.0 and out["right_knee"] == 1.0
    assert out["mean"] == pytest.approx(1 - vis[:, 0].sum() / vis.sum())
