"""Is one network's AP really above another's? A paired bootstrap over the validation images.

Both results files are COCO keypoint results on the same validation set. Each draw resamples the
validation images with replacement (a repeated image counts twice, with its persons and both
methods' predictions), scores both methods on it with pycocotools and keeps the difference.
``paired_bootstrap`` returns both APs on the full set, the difference, its 95 % interval and the
fraction of draws in which A is above B.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections import defaultdict
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO

from pipeline.evaluation.metrics import coco_keypoint_eval

log = logging.getLogger(__name__)


def _load_json(path: Path, what: str):
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    with open(path) as f:
        return json.load(f)


def resampled(gt: dict, results: list[list[dict]], image_ids: np.ndarray) -> tuple[COCO, list[list[dict]]]:
    """Ground truth and each method's results on the images ``image_ids`` (repeats allowed).

    The k-th drawn image becomes image ``k + 1`` in the returned data set, so an image drawn twice
    is two images with the same persons and predictions.
    """
    anns_of, res_of = defaultdict(list), [defaultdict(list) for _ in results]
    for a in gt["annotations"]:
        anns_of[a["image_id"]].append(a)
    for by_image, res in zip(res_of, results):
        for r in res:
            by_image[r["image_id"]].append(r)
    images = {im["id"]: im for im in gt["images"]}
    out = {k: v for k, v in gt.items() if k not in ("images", "annotations")}
    out["images"], out["annotations"] = [], []
    new_results: list[list[dict]] = [[] for _ in results]
    for k, old_id in enumerate(image_ids.tolist()):
        new_id = k + 1
        out["images"].append({**images[old_id], "id": new_id})
        for a in anns_of[old_id]:
            out["annotations"].append({**a, "id": len(out["annotations"]) + 1, "image_id": new_id})
        for method, by_image in enumerate(res_of):
            new_results[method].extend({**r, "image_id": new_id} for r in by_image[old_id])
    coco = COCO()
    coco.dataset = out
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco.createIndex()
    return coco, new_results


def paired_bootstrap(ann: Path, results_a: Path, results_b: Path, draws: int = 200, seed: int = 0) -> dict:
    """AP of A and B on the full set, and the bootstrap distribution of AP(A) - AP(B)."""
    gt = _load_json(ann, "annotation file")
    res = [_load_json(results_a, "results file"), _load_json(results_b, "results file")]
    ap_a = coco_keypoint_eval(ann, results_a)["AP"]
    ap_b = coco_keypoint_eval(ann, results_b)["AP"]
    ids = np.array(sorted(im["id"] for im in gt["images"]))
    rng = np.random.default_rng(seed)
    diffs = []
    for d in range(draws):
        coco, (ra, rb) = resampled(gt, res, rng.choice(ids, size=len(ids), replace=True))
        # scored on every drawn image, even one where a method predicts nothing
        all_ids = coco.getImgIds()
        a = coco_keypoint_eval(coco, ra, image_ids=all_ids)["AP"] if ra else 0.0
        b = coco_keypoint_eval(coco, rb, image_ids=all_ids)["AP"] if rb else 0.0
        diffs.append(a - b)
        if (d + 1) % 50 == 0:
            log.info("%d/%d draws", d + 1, draws)
    diffs_arr = np.asarray(diffs)
    low, high = np.quantile(diffs_arr, [0.025, 0.975])
    return {
        "AP_a": ap_a,
        "AP_b": ap_b,
        "diff": ap_a - ap_b,
        "ci95": [float(low), float(high)],
        "p_a_above_b": float((diffs_arr > 0).mean()),
        "draws": draws,
    }
