"""Left/right inversions: joints on their mirror joint are counted, and undoing them restores the AP."""

import json

import numpy as np
import pytest

from pipeline.data.skeletons import COCO17
from pipeline.evaluation.inversions import inversion_summary, match_persons, undo_inversions
from pipeline.evaluation.metrics import ResultsError, ground_truth_as_results, load_coco_annotations

K = COCO17.num_joints
J = {n: i for i, n in enumerate(COCO17.joint_names)}


def person(ann_id: int, image_id: int, x0: float) -> dict:
    """A person whose left joints are 40 px right of its right joints (far apart: a swap is wrong)."""
    kp = np.zeros((K, 3))
    for name, j in J.items():
        side = 40.0 if name.startswith("left") else 0.0
        kp[j] = (x0 + side + 2.0 * (j % 3), 20.0 + 10.0 * j, 2.0)
    return {
        "id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0, "num_keypoints": K,
        "keypoints": kp.ravel().tolist(), "bbox": [x0 - 5, 15.0, 60.0, 180.0], "area": 60.0 * 180.0,
    }  # fmt: skip


@pytest.fixture
def val(tmp_path):
    anns = [person(1, 1, 10.0), person(2, 1, 200.0), person(3, 2, 50.0)]  # image 1: two persons
    coco = {
        "images": [{"id": i, "file_name": f"{i}.jpg", "width": 400, "height": 220} for i in (1, 2)],
        "annotations": anns,
        "categories": [{"id": 1, "name": "person", "keypoints": list(COCO17.joint_names), "skeleton": []}],
    }
    path = tmp_path / "val.json"
    path.write_text(json.dumps(coco))
    return path


def swap(result: dict, a: str, b: str) -> dict:
    kp = np.asarray(result["keypoints"]).reshape(K, 3)
    kp[[J[a], J[b]]] = kp[[J[b], J[a]]]
    return {**result, "keypoints": kp.ravel().tolist()}


def test_swapped_wrists_are_counted_and_undoing_them_restores_the_ap(val):
    first, second, third = ground_truth_as_results(load_coco_annotations(val))
    # the second person of image 1 has its wrists and ankles swapped
    results = [first, swap(swap(second, "left_wrist", "right_wrist"), "left_ankle", "right_ankle"), third]
    out = inversion_summary(val, results, COCO17)
    assert out["joints"] == 3 * K
    assert out["swapped"] == pytest.approx(4 / (3 * K)) and out["correct"] == pytest.approx(1 - 4 / (3 * K))
    assert out["AP"] < 1.0 and out["AP_swaps_undone"] == pytest.approx(1.0)
    assert inversion_summary(val, [first, second, third], COCO17)["swapped"] == 0.0
    assert set(first) == {"image_id", "category_id", "keypoints", "score"}  # the caller's records as given


def test_persons_of_one_image_match_their_own_prediction(val):
    coco = load_coco_annotations(val)
    exact = ground_truth_as_results(coco)
    # listed in the other order, the lower score first: each still goes to its own person
    results = [{**exact[1], "score": 0.2}, {**exact[0], "score": 0.9}, exact[2]]
    assert sorted(match_persons(coco, results, COCO17)) == [(0, 2), (1, 1), (2, 3)]


def test_a_swap_is_undone_only_where_the_mirror_is_closer(val):
    truth = np.asarray(person(1, 1, 10.0)["keypoints"]).reshape(K, 3)
    swapped = truth.copy()
    swapped[[J["left_knee"], J["right_knee"]]] = truth[[J["right_knee"], J["left_knee"]]]
    np.testing.assert_array_equal(undo_inversions(swapped, truth, 60.0 * 180.0, COCO17), truth)
    np.testing.assert_array_equal(undo_inversions(truth, truth, 60.0 * 180.0, COCO17), truth)


def test_bad_results_name_the_record_and_field(val, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"image_id": 1, "keypoints": [0.0] * 10, "score": 1.0}]))
    with pytest.raises(ResultsError, match=r"bad.json: result \[0\] field 'keypoints'"):
        inversion_summary(val, bad, COCO17)
