"""Evaluation: COCO keypoint AP/AR through pycocotools, PCKh for MPII, and the flip test.

Predictions live in image space. The COCO path is: predictions -> COCO results list
(:func:`make_keypoint_results`) -> pycocotools ``COCOeval(iouType="keypoints")``
(:func:`coco_keypoint_eval`), whose 10 summary numbers are returned by name.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from pipeline.data.skeletons import MPII16, skeleton_for_num_joints
from pipeline.store.atomic_files import atomic_write

log = logging.getLogger(__name__)

STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


class ResultsError(ValueError):
    """A keypoint results file or list is malformed; the message names file, index and field."""


def make_keypoint_results(
    image_ids: np.ndarray,
    kpts_img: np.ndarray,
    box_scores: np.ndarray | None = None,
    *,
    category_id: int = 1,
    rescore: bool = True,
    score_thr: float = 0.2,
) -> list[dict]:
    """Predictions -> COCO keypoint results.

    Args:
        image_ids: (N,) image id of each person.
        kpts_img: (N,K,3) (x, y, score) in image space.
        box_scores: (N,) detection scores (1 for ground-truth boxes); None = ones.
        rescore: person score = box score * mean of the keypoint scores above ``score_thr``
            (SimpleBaseline); otherwise the box score.

    Returns:
        A list of ``{"image_id", "category_id", "keypoints": [x, y, s] * K, "score"}``.
    """
    kpts = np.asarray(kpts_img, dtype=np.float64)
    n = len(kpts)
    scores = np.ones(n) if box_scores is None else np.asarray(box_scores, dtype=np.float64)
    if rescore and n:
        s = kpts[..., 2]
        above = s > score_thr
        mean = np.where(above.any(axis=1), (s * above).sum(axis=1) / np.maximum(above.sum(axis=1), 1), 0.0)
        scores = scores * mean
    return [
        {
            "image_id": int(image_ids[i]),
            "category_id": int(category_id),
            "keypoints": [float(v) for v in kpts[i].reshape(-1)],
            "score": float(scores[i]),
        }
        for i in range(n)
    ]


def oks_nms(
    results: list[dict], areas: Sequence[float], sigmas: Sequence[float], thr: float = 0.9
) -> list[int]:
    """OKS non-maximum suppression of the top-down papers, image by image.

    Within an image, results are taken by descending score; one is dropped when its keypoints
    have an OKS above ``thr`` with a result already kept (``areas``: each result's object scale,
    its detection box's w * h, image px^2; ``sigmas``: (K,) OKS sigmas). Returns the indices
    kept, in input order.
    """
    var = (2 * np.asarray(sigmas, dtype=np.float64)) ** 2
    by_image: dict[int, list[int]] = {}
    for i, r in enumerate(results):
        by_image.setdefault(r["image_id"], []).append(i)
    kept: list[int] = []
    for idx in by_image.values():
        idx = sorted(idx, key=lambda i: -results[i]["score"])
        kpts = np.asarray([results[i]["keypoints"] for i in idx], dtype=np.float64).reshape(len(idx), -1, 3)
        area = np.asarray([areas[i] for i in idx], dtype=np.float64)
        alive = np.ones(len(idx), bool)
        for a in range(len(idx)):
            if not alive[a]:
                continue
            kept.append(idx[a])
            rest = np.flatnonzero(alive[a + 1 :]) + a + 1
            if not len(rest):
                continue
            d2 = ((kpts[rest, :, :2] - kpts[a, None, :, :2]) ** 2).sum(-1)
            scale = (area[a] + area[rest])[:, None] / 2 + np.spacing(1)
            oks = np.exp(-d2 / var[None] / scale / 2).mean(axis=1)
            alive[rest[oks > thr]] = False
    return sorted(kept)


def write_results(results: list[dict], path: str | Path) -> None:
    """Write a COCO results JSON atomically (temporary file then rename)."""
    with atomic_write(path, "w") as f:
        json.dump(results, f)


def _read_json(path: Path, what: str, error: type[Exception]) -> object:
    """The JSON value in ``path``; a missing file raises ``FileNotFoundError`` naming ``what`` and
    the path, an unreadable one ``error`` naming the path and the parser's message."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    with open(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise error(f"{path}: not valid JSON: {e}") from None


def load_coco_annotations(ann: str | Path | COCO) -> COCO:
    """A pycocotools ``COCO`` for an annotation file; missing ``iscrowd``/``area`` get COCO's meaning."""
    if isinstance(ann, COCO):
        return ann
    data = _read_json(Path(ann), "annotation file", ValueError)
    # Some COCO-style conversions (e.g. AI Challenger's) omit these; COCO's meaning is assumed.
    for a in data.get("annotations", []):
        a.setdefault("iscrowd", 0)
        if "area" not in a and "bbox" in a:
            a["area"] = float(a["bbox"][2] * a["bbox"][3])
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _validate_results(results: list, coco: COCO, num_joints: int, source: str) -> list[dict]:
    if not isinstance(results, list):
        raise ResultsError(f"{source}: expected a JSON list of results")
    known = set(coco.getImgIds())
    for i, r in enumerate(results):
        if not isinstance(r, dict):
            raise ResultsError(f"{source}: result [{i}] is not an object")
        for field in ("image_id", "keypoints", "score"):
            if field not in r:
                raise ResultsError(f"{source}: result [{i}] has no field '{field}'")
        if r["image_id"] not in known:
            raise ResultsError(f"{source}: result [{i}] field 'image_id': unknown image id {r['image_id']!r}")
        kp = r["keypoints"]
        if not isinstance(kp, list) or len(kp) != 3 * num_joints:
            got = len(kp) if isinstance(kp, list) else type(kp).__name__
            raise ResultsError(
                f"{source}: result [{i}] field 'keypoints': expected {3 * num_joints} numbers, got {got}"
            )
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in kp):
            raise ResultsError(f"{source}: result [{i}] field 'keypoints': non-finite or non-numeric value")
        if not isinstance(r["score"], (int, float)) or not math.isfinite(r["score"]):
            raise ResultsError(f"{source}: result [{i}] field 'score': not a finite number")
        r.setdefault("category_id", 1)
    return results


def _num_joints(coco: COCO) -> int:
    cats = [c for c in coco.loadCats(coco.getCatIds()) if c.get("keypoints")]
    person = [c for c in cats if c.get("name") == "person"] or cats
    if not person:
        raise ResultsError("annotation file has no category with keypoints")
    return len(person[0]["keypoints"])


def load_keypoint_results(results: list[dict] | str | Path, coco: COCO) -> list[dict]:
    """COCO keypoint results (a list or a JSON file), checked against ``coco``'s images and joint
    count; ``ResultsError`` names the file, the record and the field. A list is copied record by
    record: pycocotools' ``loadRes`` adds fields to the records it is given, and a caller's
    results must come back as they went in."""
    source = "<results>"
    if isinstance(results, (str, Path)):
        source = str(results)
        results = _read_json(Path(results), "results file", ResultsError)
    if not isinstance(results, list):
        raise ResultsError(f"{source}: expected a JSON list of results")
    records = [dict(r) if isinstance(r, dict) else r for r in results]
    return _validate_results(records, coco, _num_joints(coco), source)


def evaluate_keypoints(
    ann: str | Path | COCO,
    results: list[dict] | str | Path,
    *,
    sigmas: np.ndarray | Sequence[float] | None = None,
    image_ids: Sequence[int] | None = None,
) -> COCOeval | None:
    """pycocotools' per-image matching of keypoint results to the ground truth, not yet
    accumulated: ``COCOeval`` after ``evaluate()`` (``evalImgs`` holds one entry per category,
    area range and image), or ``None`` when there are no results. Arguments as
    ``coco_keypoint_eval``; results are validated (``ResultsError`` names the record and field).
    """
    coco = load_coco_annotations(ann)
    k = _num_joints(coco)
    results = load_keypoint_results(results, coco)
    if not results:
        return None
    sig = np.asarray(sigmas if sigmas is not None else skeleton_for_num_joints(k).sigmas, dtype=np.float64)
    if len(sig) != k:
        raise ValueError(f"{len(sig)} OKS sigmas for {k} keypoints")
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        dt = coco.loadRes(results)
        ev = COCOeval(coco, dt, iouType="keypoints")
        ev.params.kpt_oks_sigmas = sig
        if image_ids is not None:
            ev.params.imgIds = sorted(set(image_ids))  # else pycocotools' own: every image of ``ann``
        ev.evaluate()
    return ev


def coco_keypoint_eval(
    ann: str | Path | COCO,
    results: list[dict] | str | Path,
    *,
    sigmas: np.ndarray | Sequence[float] | None = None,
    image_ids: Sequence[int] | None = None,
) -> dict[str, float]:
    """COCO keypoint evaluation with pycocotools.

    Args:
        ann: ground-truth annotation file (or a loaded ``COCO``).
        results: COCO keypoint results (list or path to a JSON file).
        sigmas: (K,) OKS sigmas; default: the skeleton with the category's joint count.
        image_ids: images to evaluate; default: every image of ``ann``, as pycocotools, mmpose
            and the HRNet code evaluate (an image with ground truth but no result counts, its
            persons as misses).

    Returns:
        ``{"AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"}`` floats.
    """
    ev = evaluate_keypoints(ann, results, sigmas=sigmas, image_ids=image_ids)
    if ev is None:
        log.warning("no keypoint results to evaluate: all metrics are 0")
        return {name: 0.0 for name in STAT_NAMES}
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        ev.accumulate()
        ev.summarize()
    for line in buf.getvalue().splitlines():
        if line.strip().startswith("Average"):
            log.info("%s", line.strip())
    return {name: float(v) for name, v in zip(STAT_NAMES, ev.stats)}


def ground_truth_as_results(coco: COCO) -> list[dict]:
    """Every non-crowd annotation with keypoints, as a score-1 prediction (self-checks, tests)."""
    out = []
    for a in coco.loadAnns(coco.getAnnIds(iscrowd=False)):
        if a.get("num_keypoints", 0) > 0:
            out.append(
                {
                    "image_id": a["image_id"],
                    "category_id": a["category_id"],
                    "keypoints": [float(v) for v in a["keypoints"]],
                    "score": 1.0,
                }
            )
    return out


def head_size_from_scale(scale: np.ndarray) -> np.ndarray:
    """Approximate MPII head size from the person scale (height/200) of the HRNet json.

    The HRNet-style json carries no head boxes; the official head size is 0.6 x the head box
    diagonal. We approximate the head box side by scale * 200 / 8 (a head is about 1/8 of a
    person's height), i.e. head size = 0.6 * sqrt(2) * scale * 25. Use official head boxes when
    you have them.
    """
    return 0.6 * np.sqrt(2.0) * np.asarray(scale, dtype=np.float64) * 25.0


def pckh(
    pred: np.ndarray,
    gt: np.ndarray,
    visible: np.ndarray,
    head_sizes: np.ndarray,
    thr: float = 0.5,
) -> dict[str, float]:
    """PCKh@thr (MPII).

    Args:
        pred, gt: (N,16,2) keypoints in image space (MPII16 order).
        visible: (N,16) bool, joints that count.
        head_sizes: (N,) head segment length in pixels (0.6 x head box diagonal).

    Returns:
        Per-joint PCKh by MPII joint name plus ``"mean"`` over all counted joints.
    """
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    vis = np.asarray(visible, bool)
    dist = np.linalg.norm(pred - gt, axis=-1) / np.asarray(head_sizes, np.float64)[:, None]
    correct = (dist <= thr) & vis
    per_joint = correct.sum(0) / np.maximum(vis.sum(0), 1)
    out = {name: float(per_joint[j]) for j, name in enumerate(MPII16.joint_names[: pred.shape[1]])}
    out["mean"] = float(correct.sum() / max(vis.sum(), 1))
    return out


def flip_test_heatmaps(
    predict: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    flip_indices: Sequence[int],
    shift_heatmap: bool = True,
) -> torch.Tensor:
    """Average the heatmaps of an image and of its mirror image.

    Args:
        predict: (N,3,H,W) -> (N,K,h,w).
        images: (N,3,H,W) input space.
        flip_indices: (K,) left/right partner of each joint.
        shift_heatmap: shift the flipped heatmaps one pixel right (SimpleBaseline), which
            compensates the flip's sub-pixel offset at stride 4.

    Returns:
        (N,K,h,w) averaged heatmaps.
    """
    hm = predict(images)
    hm_flip = predict(torch.flip(images, dims=[3]))
    hm_flip = torch.flip(hm_flip, dims=[3])[:, list(flip_indices)]
    if shift_heatmap:
        shifted = torch.zeros_like(hm_flip)
        shifted[..., 1:] = hm_flip[..., :-1]
        hm_flip = shifted
    return (hm + hm_flip) / 2
