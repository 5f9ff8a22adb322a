"""Per-joint accuracy of pseudo labels by position inconsistency (pipeline/evaluation/label_accuracy.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.evaluation.label_accuracy import (
    accuracy_by_inconsistency,
    accuracy_by_joint,
    format_accuracy_table,
    joint_similarity,
    match_truth,
    mirrored_similarity,
)


def test_joint_similarity_is_cocos_per_joint_oks():
    truth = np.array([[[10.0, 20.0, 2], [30.0, 40.0, 1], [0.0, 0.0, 0]]])
    pred = np.array([[[10.0, 20.0], [33.0, 44.0], [5.0, 5.0]]])  # exact, 5 px off, unlabelled
    area, sigmas = np.array([400.0]), np.array([0.1, 0.05, 0.1])
    sim = joint_similarity(pred, truth, area, sigmas)
    assert sim[0, 0] == pytest.approx(1.0)
    assert sim[0, 1] == pytest.approx(math.exp(-25.0 / (2 * 400.0 * (2 * 0.05) ** 2)))
    assert math.isnan(sim[0, 2])
    # a person without area has no similarity at all
    assert np.isnan(joint_similarity(pred, truth, np.array([0.0]), sigmas)).all()
    with pytest.raises(ValueError, match="sigmas"):
        joint_similarity(pred, truth, area, np.array([0.1]))


def test_accuracy_by_inconsistency_bins_joints_and_skips_missing_truth():
    pi = np.array([[0.0, 0.02, 0.2], [0.5, 0.05, 0.01]])
    label = np.array([[1.0, 0.8, 0.1], [0.0, np.nan, 0.6]])
    teacher = np.array([[0.9, 0.7, 0.2], [0.1, 0.5, 0.4]])
    bins = accuracy_by_inconsistency(pi, {"PCM": label, "A_t": teacher}, edges=(0.0, 0.03, 0.1))
    assert [b["joints"] for b in bins] == [3, 0, 2]  # the NaN joint is counted nowhere
    assert [b["pi_to"] for b in bins] == [0.03, 0.1, None]
    assert bins[0]["fraction"] == pytest.approx(0.6)
    assert bins[0]["PCM_similarity"] == pytest.approx((1.0 + 0.8 + 0.6) / 3)
    assert bins[0]["PCM_correct"] == pytest.approx(1.0)
    assert bins[2]["PCM_similarity"] == pytest.approx(0.05) and bins[2]["PCM_correct"] == 0.0
    assert bins[2]["A_t_similarity"] == pytest.approx(0.15)
    assert bins[1]["PCM_similarity"] is None and bins[1]["fraction"] == 0.0
    text = format_accuracy_table(bins, ["PCM", "A_t"])
    assert len(text.splitlines()) == 4 and "[0.10, inf)" in text
    with pytest.raises(ValueError, match="increasing"):
        accuracy_by_inconsistency(pi, {"PCM": label}, edges=(0.1, 0.1))
    with pytest.raises(ValueError, match="shape"):
        accuracy_by_inconsistency(pi, {"PCM": label[:1]})


def test_match_truth_picks_the_overlapping_annotation_of_the_same_image():
    kp_a = [1, 1, 2] + [0, 0, 0]
    kp_b = [50, 50, 2] + [60, 60, 1]
    coco = {
        "annotations": [
            {"image_id": 7, "bbox": [0, 0, 10, 10], "keypoints": kp_a, "area": 80.0},
            {"image_id": 7, "bbox": [40, 40, 30, 30], "keypoints": kp_b, "area": 700.0},
            {"image_id": 8, "bbox": [0, 0, 10, 10], "keypoints": kp_b, "area": 90.0, "iscrowd": 1},
        ]
    }
    ids = np.array([7, 7, 8, 9])
    boxes = np.array([[41, 41, 29, 29], [0, 0, 10, 11], [0, 0, 10, 10], [0, 0, 5, 5]], dtype=float)
    truth, area = match_truth(ids, boxes, coco, num_joints=2)
    assert truth[0].ravel().tolist() == kp_b and area[0] == 700.0
    assert truth[1].ravel().tolist() == kp_a and area[1] == 80.0
    assert not truth[2].any() and area[2] == 0.0  # crowd annotations are not truth
    assert not truth[3].any() and area[3] == 0.0  # no annotation in that image


def test_left_right_swaps_are_counted_per_bin_and_per_joint():
    # joints: 0 nose (no mirror), 1 left wrist, 2 right wrist; two persons of area 400
    flip = (0, 2, 1)
    sigmas = np.array([0.1, 0.1, 0.1])
    area = np.array([400.0, 400.0])
    truth = np.array(
        [
            [[50.0, 10.0, 2], [20.0, 40.0, 2], [80.0, 40.0, 2]],
            [[50.0, 10.0, 2], [20.0, 40.0, 2], [0.0, 0.0, 0]],  # right wrist unlabelled
        ]
    )
    pred = np.array(
        [
            [[80.0, 40.0], [80.0, 40.0], [20.0, 40.0]],  # nose far off; both wrists swapped
            [[50.0, 10.0], [80.0, 40.0], [20.0, 40.0]],  # left wrist off, its mirror has no truth
        ]
    )
    sim = joint_similarity(pred, truth, area, sigmas)
    mir = mirrored_similarity(pred, truth, area, sigmas, flip)
    assert np.isnan(mir[:, 0]).all()  # the nose has no mirror joint
    assert mir[0, 1] == pytest.approx(1.0) and mir[0, 2] == pytest.approx(1.0)
    assert math.isnan(mir[1, 1])  # its mirror (right wrist) is not labelled
    assert sim[0, 1] < 0.5 and sim[1, 1] < 0.5
    joints = accuracy_by_joint({"PCM": sim}, ["nose", "left_wrist", "right_wrist"], mirrored={"PCM": mir})
    assert [r["joints"] for r in joints] == [2, 2, 1]
    assert joints[0]["PCM_swapped"] == 0.0 and joints[0]["PCM_correct"] == 0.5
    assert joints[1]["PCM_swapped"] == 0.5  # person 0 swapped; person 1 wrong but not a swap
    assert joints[2]["PCM_swapped"] == 1.0 and joints[2]["PCM_correct"] == 0.0
    pi = np.array([[0.0, 0.0, 0.0], [0.2, 0.2, 0.2]])
    bins = accuracy_by_inconsistency(pi, {"PCM": sim}, edges=(0.0, 0.1), mirrored={"PCM": mir})
    assert bins[0]["PCM_swapped"] == pytest.approx(2 / 3) and bins[1]["PCM_swapped"] == 0.0
    assert "swap" in format_accuracy_table(bins, ["PCM"]).splitlines()[0]
    assert "left_wrist" in format_accuracy_table(joints, ["PCM"])
    # without mirrored similarities there is no swap column
    assert "PCM_swapped" not in accuracy_by_joint({"PCM": sim}, ["n", "l", "r"])[0]
    with pytest.raises(ValueError, match="flip_indices"):
        mirrored_similarity(pred, truth, area, sigmas, (0, 1))
    with pytest.raises(ValueError, match="no plain similarity"):
        accuracy_by_joint({"PCM": sim}, ["n", "l", "r"], mirrored={"A_t": mir})
