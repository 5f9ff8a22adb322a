"""Left/right inversions in keypoint results: the share of joints a method puts on the mirror joint.

An *inversion* (a left/right swap) is a predicted joint that is wrong as itself (OKS similarity
below 0.5 against its true joint) but right as its mirror joint (the true left wrist for a
predicted right wrist). Pseudo labels carry the teachers' inversions to the student, so a
method can gain on localisation and still keep its inversions; this module measures both:

- ``inversion_summary``: over every labelled joint of the matched persons, the share that is
  right, the share that is inverted, and the OKS AP of the results as they are and with every
  inversion undone (per mirror pair, the assignment closer to the truth is kept): how much AP
  left/right confusions cost.

Persons are matched image by image: results in order of decreasing score, each to the unmatched
annotated person of highest OKS (as pycocotools matches detections). All coordinates are image
space.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pycocotools.coco import COCO

from pipeline.data.skeletons import Skeleton
from pipeline.evaluation.label_accuracy import joint_similarity, mirrored_similarity, swapped_joints
from pipeline.evaluation.metrics import coco_keypoint_eval, load_coco_annotations, load_keypoint_results

CORRECT_AT = 0.5  # OKS similarity of a joint counted as right


def match_persons(coco: COCO, results: list[dict], skeleton: Skeleton) -> list[tuple[int, int]]:
    """(index into ``results``, annotation id) pairs: per image, results by decreasing score,
    each to the unmatched non-crowd annotation with labelled joints of highest OKS (> 0)."""
    by_image: dict[int, list[int]] = {}
    for i, r in enumerate(results):
        by_image.setdefault(int(r["image_id"]), []).append(i)
    pairs = []
    for image_id, indices in by_image.items():
        ann_ids = coco.getAnnIds(imgIds=[image_id], iscrowd=False)
        free = {a["id"]: a for a in coco.loadAnns(ann_ids) if a.get("num_keypoints", 0) > 0}
        for i in sorted(indices, key=lambda i: -float(results[i]["score"])):
            pred = _keypoints(results[i], skeleton)
            best, best_oks = None, 0.0
            for ann_id, a in free.items():
                truth, area = _truth(a, skeleton)
                sim = joint_similarity(pred[None], truth, area, skeleton.sigmas_array)[0]
                oks = float(np.nanmean(sim)) if np.isfinite(sim).any() else 0.0
                if oks > best_oks:
                    best, best_oks = ann_id, oks
            if best is not None:
                pairs.append((i, best))
                del free[best]
    return pairs


def _keypoints(result: dict, skeleton: Skeleton) -> np.ndarray:
    """(K, 3) keypoints of one result."""
    return np.asarray(result["keypoints"], dtype=np.float64).reshape(skeleton.num_joints, 3)


def _truth(ann: dict, skeleton: Skeleton) -> tuple[np.ndarray, np.ndarray]:
    """(1, K, 3) true keypoints and (1,) area of one annotation."""
    kp = np.asarray(ann["keypoints"], dtype=np.float64).reshape(1, skeleton.num_joints, 3)
    area = float(ann.get("area") or ann["bbox"][2] * ann["bbox"][3])
    return kp, np.array([area])


def undo_inversions(pred: np.ndarray, truth: np.ndarray, area: float, skeleton: Skeleton) -> np.ndarray:
    """(K, 3) ``pred`` with each mirror pair (j, k) exchanged where the exchanged assignment is
    closer to ``truth`` (K, 3) (summed OKS similarity of the pair; an unlabelled joint adds 0)."""
    flip = np.asarray(skeleton.flip_indices)
    sigmas = skeleton.sigmas_array
    own = np.nan_to_num(joint_similarity(pred[None], truth[None], np.array([area]), sigmas)[0])
    mirrored = np.nan_to_num(joint_similarity(pred[flip][None], truth[None], np.array([area]), sigmas)[0])
    out = pred.copy()
    for j in range(len(flip)):
        k = int(flip[j])
        if k > j and mirrored[j] + mirrored[k] > own[j] + own[k]:
            out[[j, k]] = pred[[k, j]]
    return out


def inversion_summary(ann: str | Path | COCO, results: str | Path | list[dict], skeleton: Skeleton) -> dict:
    """Right and inverted joints of ``results`` against ``ann``, and the AP with inversions undone.

    Returns ``{"joints": labelled joints of the matched persons, "correct": share with OKS
    similarity >= 0.5, "swapped": share wrong as itself but right as its mirror joint, "AP":
    pycocotools' OKS AP, "AP_swaps_undone": the same with every matched person's inversions
    undone}``; shares are NaN without labelled joints.
    """
    coco = load_coco_annotations(ann)
    res = load_keypoint_results(results, coco)
    sigmas = skeleton.sigmas_array
    undone = [dict(r) for r in res]
    joints = correct = swapped = 0
    for i, ann_id in match_persons(coco, res, skeleton):
        truth, area = _truth(coco.anns[ann_id], skeleton)
        pred = _keypoints(res[i], skeleton)
        sim = joint_similarity(pred[None], truth, area, sigmas)
        mirror = mirrored_similarity(pred[None], truth, area, sigmas, skeleton.flip_indices)
        labelled = np.isfinite(sim)
        joints += int(labelled.sum())
        correct += int((labelled & (sim >= CORRECT_AT)).sum())
        swapped += int((labelled & swapped_joints(sim, mirror, CORRECT_AT)).sum())
        undone[i]["keypoints"] = undo_inversions(pred, truth[0], float(area[0]), skeleton).ravel().tolist()
    ap, ap_undone = coco_keypoint_eval(coco, res)["AP"], coco_keypoint_eval(coco, undone)["AP"]
    return {
        "joints": joints,
        "correct": correct / joints if joints else float("nan"),
        "swapped": swapped / joints if joints else float("nan"),
        "AP": ap,
        "AP_swaps_undone": ap_undone,
    }
