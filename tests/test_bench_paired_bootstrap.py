"""bench.paired_bootstrap: resampling keeps persons and predictions together; real pycocotools."""

import contextlib
import io
import json
from collections import defaultdict

import numpy as np
import pytest
from pycocotools.coco import COCO

from bench.paired_bootstrap import main
from pipeline.evaluation.metrics import coco_keypoint_eval, ground_truth_as_results, load_coco_annotations
from pipeline.evaluation.paired_bootstrap import ResampledAP, paired_bootstrap, paired_bootstrap_runs

K = 17


def _person(ann_id: int, image_id: int, x0: float) -> dict:
    xs = x0 + np.arange(K) * 3.0
    ys = 20.0 + np.arange(K) * 4.0
    kpts = np.stack([xs, ys, np.full(K, 2.0)], axis=1).ravel().tolist()
    return {
        "id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0, "num_keypoints": K,
        "keypoints": kpts, "bbox": [x0 - 5, 15.0, 60.0, 80.0], "area": 60.0 * 80.0,
    }  # fmt: skip


@pytest.fixture
def val(tmp_path):
    images = [{"id": i, "file_name": f"{i}.jpg", "width": 200, "height": 120} for i in (10, 20, 30, 40)]
    where = [(10, 10), (10, 100), (20, 30), (30, 50), (40, 20)]  # (image, x0): image 10 has two persons
    anns = [_person(i + 1, image, x0) for i, (image, x0) in enumerate(where)]
    gt = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": 1, "name": "person", "keypoints": [f"j{k}" for k in range(K)], "skeleton": []}],
    }
    path = tmp_path / "val.json"
    path.write_text(json.dumps(gt))
    return path


def _results(val, tmp_path, name: str, shift_px: float) -> tuple:
    """Ground truth as results, every joint moved ``shift_px`` to the right; written to a file."""
    res = ground_truth_as_results(load_coco_annotations(val))
    for r in res:
        kp = np.asarray(r["keypoints"], dtype=np.float64).reshape(K, 3)
        kp[:, 0] += shift_px
        r["keypoints"] = kp.ravel().tolist()
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(res))
    return path, res


def resampled(gt: dict, results: list[dict], image_ids) -> tuple[COCO, list[dict]]:
    """The resampled data set built from scratch (the reference ``ResampledAP`` must equal): the
    k-th drawn image becomes image k + 1, with its persons and predictions."""
    anns_of, res_of = defaultdict(list), defaultdict(list)
    for a in gt["annotations"]:
        anns_of[a["image_id"]].append(a)
    for r in results:
        res_of[r["image_id"]].append(r)
    images = {im["id"]: im for im in gt["images"]}
    out = {k: v for k, v in gt.items() if k not in ("images", "annotations")}
    out["images"], out["annotations"], new_results = [], [], []
    for k, old_id in enumerate(image_ids):
        out["images"].append({**images[old_id], "id": k + 1})
        for a in anns_of[old_id]:
            out["annotations"].append({**a, "id": len(out["annotations"]) + 1, "image_id": k + 1})
        new_results.extend({**r, "image_id": k + 1} for r in res_of[old_id])
    coco = COCO()
    coco.dataset = out
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco, new_results


def test_a_drawn_twice_image_brings_its_persons_and_predictions_twice(val, tmp_path):
    _, res = _results(val, tmp_path, "a", 0.0)
    gt = json.loads(val.read_text())
    coco, res_new = resampled(gt, res, [10, 10, 30])
    assert coco.getImgIds() == [1, 2, 3]
    assert [len(coco.getAnnIds(imgIds=[i])) for i in (1, 2, 3)] == [2, 2, 1]
    assert sorted(r["image_id"] for r in res_new) == [1, 1, 2, 2, 3]


def test_resampled_ap_equals_scoring_the_resampled_set_from_scratch(val, tmp_path):
    """Per draw, re-accumulating the matches of the drawn images gives exactly pycocotools' AP of
    the resampled data set built anew: repeats, an image without predictions, a false positive."""
    _, res = _results(val, tmp_path, "a", 3.0)
    rng = np.random.default_rng(0)
    for r in res:
        r["score"] = float(rng.uniform(0.2, 1.0))
    res = [r for r in res if r["image_id"] != 30]  # image 30: its person is a miss
    stray = {**res[0], "image_id": 40, "score": 0.95}  # a confident false positive on image 40
    stray["keypoints"] = (np.asarray(stray["keypoints"]) + np.tile([40.0, 0.0, 0.0], K)).tolist()
    res.append(stray)
    gt = json.loads(val.read_text())
    method = ResampledAP(val, res)
    for _ in range(25):
        drawn = rng.choice([10, 20, 30, 40], size=4, replace=True).tolist()
        coco, res_new = resampled(gt, res, drawn)
        expected = coco_keypoint_eval(coco, res_new, image_ids=coco.getImgIds())["AP"] if res_new else 0.0
        assert method.ap(drawn) == expected, drawn
    # every image once: pycocotools' own AP of the whole set
    assert method.ap([10, 20, 30, 40]) == coco_keypoint_eval(val, res)["AP"]
    assert ResampledAP(val, []).ap([10, 20]) == 0.0


def test_exact_predictions_beat_shifted_ones_in_every_draw(val, tmp_path):
    exact, _ = _results(val, tmp_path, "exact", 0.0)
    shifted, _ = _results(val, tmp_path, "shifted", 6.0)
    out = paired_bootstrap(val, exact, shifted, draws=20, seed=1)
    assert out["AP_a"] == pytest.approx(1.0)
    assert out["AP_b"] < 0.9
    assert out["diff"] == pytest.approx(out["AP_a"] - out["AP_b"])
    assert out["p_a_above_b"] == 1.0 and out["ci95"][0] > 0


def test_identical_methods_differ_by_exactly_zero(val, tmp_path, capsys):
    a, _ = _results(val, tmp_path, "a", 2.0)
    out = main(["--ann", str(val), "--a", str(a), "--b", str(a), "--draws", "10", "--json"])
    assert out["diff"] == 0.0 and out["ci95"] == [0.0, 0.0] and out["p_a_above_b"] == 0.0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == out


def test_mean_margin_over_repeats_shares_the_draws(val, tmp_path):
    exact, _ = _results(val, tmp_path, "exact", 0.0)
    near, _ = _results(val, tmp_path, "near", 2.0)
    far, _ = _results(val, tmp_path, "far", 6.0)
    one = paired_bootstrap(val, exact, far, draws=30, seed=3)
    # one pair is exactly the two-file bootstrap; the same pair twice changes nothing
    assert paired_bootstrap_runs(val, [(exact, far)], draws=30, seed=3) == one
    assert paired_bootstrap_runs(val, [(exact, far), (exact, far)], draws=30, seed=3) == one
    # a margin and its reverse cancel in every draw, not only on average
    assert paired_bootstrap_runs(val, [(exact, far), (far, exact)], draws=30, seed=3)["ci95"] == [0.0, 0.0]
    # two repeats: the means of the full-set APs, and an interval between the two pairs' own
    two = paired_bootstrap_runs(val, [(exact, far), (near, far)], draws=30, seed=3)
    other = paired_bootstrap(val, near, far, draws=30, seed=3)
    assert two["AP_a"] == pytest.approx((one["AP_a"] + other["AP_a"]) / 2)
    assert two["diff"] == pytest.approx((one["diff"] + other["diff"]) / 2)
    assert min(one["ci95"][0], other["ci95"][0]) <= two["ci95"][0] <= max(one["ci95"][0], other["ci95"][0])
    with pytest.raises(ValueError, match="no pair"):
        paired_bootstrap_runs(val, [], draws=1)


def test_missing_results_file_is_named(val, tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        paired_bootstrap(val, tmp_path / "nope.json", tmp_path / "nope.json", draws=1)
