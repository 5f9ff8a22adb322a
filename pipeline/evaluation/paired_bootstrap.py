"""Is one network's AP really above another's? A paired bootstrap over the validation images.

Both results files are COCO keypoint results on the same validation set. Each draw resamples the
validation images with replacement (a repeated image counts twice, with its persons and both
methods' predictions), scores both methods on it with pycocotools and keeps the difference.
``paired_bootstrap`` returns both APs on the full set, the difference, its 95 % interval and the
fraction of draws in which A is above B. Each method is matched to the ground truth once;
a draw only re-accumulates the drawn images' matches (``ResampledAP``).
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO

from pipeline.evaluation.metrics import evaluate_keypoints, load_coco_annotations

log = logging.getLogger(__name__)


class ResampledAP:
    """OKS AP of one method's results on any multiset of the validation images.

    pycocotools matches predictions to persons image by image (``COCOeval.evaluate``); only the
    accumulation over images depends on which images are drawn. So each method is matched once,
    and a draw re-runs only ``accumulate`` over the drawn images' match records (area range
    "all"), an image drawn twice entering twice. This gives exactly the AP of scoring the
    resampled data set from scratch, at a fraction of the cost.
    """

    def __init__(self, ann: str | Path | COCO, results: str | Path | list[dict]):
        self._ev = evaluate_keypoints(ann, results)
        if self._ev is None:  # no results: AP 0 on every draw
            return
        p = self._ev.params
        area = p.areaRngLbl.index("all")
        n_images, n_areas = len(p.imgIds), len(p.areaRng)
        self._records = [
            {
                image: self._ev.evalImgs[k * n_areas * n_images + area * n_images + i]
                for i, image in enumerate(p.imgIds)
            }
            for k in range(len(p.catIds) if p.useCats else 1)
        ]
        self._area = (p.areaRng[area], p.areaRngLbl[area])
        self._max_dets = max(p.maxDets)

    def ap(self, image_ids: Sequence[int]) -> float:
        """AP (pycocotools' first keypoint stat) on the images ``image_ids``, repeats allowed."""
        if self._ev is None:
            return 0.0
        ev, p = self._ev, self._ev.params
        ids = [int(i) for i in image_ids]
        ev.evalImgs = [by_image[i] for by_image in self._records for i in ids]
        p.imgIds, p.areaRng, p.areaRngLbl = ids, [self._area[0]], [self._area[1]]
        ev._paramsEval = p
        with contextlib.redirect_stdout(io.StringIO()):
            ev.accumulate()
        m = p.maxDets.index(self._max_dets)
        precision = ev.eval["precision"][:, :, :, 0, m]  # (IoU thresholds, recalls, categories)
        valid = precision[precision > -1]
        return float(valid.mean()) if valid.size else -1.0


def paired_bootstrap(ann: Path, results_a: Path, results_b: Path, draws: int = 200, seed: int = 0) -> dict:
    """AP of A and B on the full set, and the bootstrap distribution of AP(A) - AP(B)."""
    return paired_bootstrap_runs(ann, [(results_a, results_b)], draws=draws, seed=seed)


def paired_bootstrap_runs(
    ann: Path, pairs: Sequence[tuple[Path, Path]], draws: int = 200, seed: int = 0
) -> dict:
    """The mean of AP(A_r) - AP(B_r) over several pairs of results files on one validation set.

    ``pairs`` are (A_r, B_r) results files, say the training repeats r of two methods on one
    seed's data. One bootstrap over the validation images: every draw scores every pair on the
    same drawn images and keeps the mean of their differences, so the interval is that of the
    repeats' mean margin, with the image-sampling noise and the repeats' spread both in it.
    ``AP_a`` and ``AP_b`` are the means of the pairs' full-set APs; with one pair this is exactly
    the paired bootstrap of two results files.
    """
    if not pairs:
        raise ValueError("paired bootstrap: no pair of results files given")
    coco = load_coco_annotations(Path(ann))  # a missing file of either kind is named on loading
    ids = np.array(sorted(coco.getImgIds()))
    scored = [(ResampledAP(coco, Path(a)), ResampledAP(coco, Path(b))) for a, b in pairs]

    def mean_ap(drawn: np.ndarray, side: int) -> float:
        return float(np.mean([pair[side].ap(drawn) for pair in scored]))

    def mean_diff(drawn: np.ndarray) -> float:
        return float(np.mean([a.ap(drawn) - b.ap(drawn) for a, b in scored]))

    ap_a, ap_b = mean_ap(ids, 0), mean_ap(ids, 1)  # every image once: pycocotools' AP
    rng = np.random.default_rng(seed)
    diffs = []
    for d in range(draws):
        # scored on every drawn image, even one where a method predicts nothing
        drawn = rng.choice(ids, size=len(ids), replace=True)
        diffs.append(mean_diff(drawn))
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
