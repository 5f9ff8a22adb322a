"""bench.paired_bootstrap: resampling keeps persons and predictions together; real pycocotools."""

import json

import numpy as np
import pytest

from bench.paired_bootstrap import main
from pipeline.evaluation.metrics import ground_truth_as_results, load_coco_annotations
from pipeline.evaluation.paired_bootstrap import paired_bootstrap, resampled

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


def test_a_drawn_twice_image_brings_its_persons_and_predictions_twice(val, tmp_path):
    _, res = _results(val, tmp_path, "a", 0.0)
    gt = json.loads(val.read_text())
    coco, (res_new,) = resampled(gt, [res], np.array([10, 10, 30]))
    assert coco.getImgIds() == [1, 2, 3]
    assert [len(coco.getAnnIds(imgIds=[i])) for i in (1, 2, 3)] == [2, 2, 1]
    assert len({a["id"] for a in coco.dataset["annotations"]}) == 5  # fresh, unique ids
    assert sorted(r["image_id"] for r in res_new) == [1, 1, 2, 2, 3]


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


def test_missing_results_file_is_named(val, tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        paired_bootstrap(val, tmp_path / "nope.json", tmp_path / "nope.json", draws=1)
