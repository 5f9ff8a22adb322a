"""How right are pseudo labels, joint by joint, as a function of PCM's position inconsistency?

For a pool that has keypoint annotations (synthetic, or a labeled hold-out of real images) this
scores every pseudo-labeled joint against the truth with COCO's per-joint OKS similarity

    ks = exp(-d^2 / (2 * area * (2 * sigma_j)^2))      (d in image px, area in image px^2)

and groups the joints by the PI of PCM's chosen pair. It answers "which ``pi_thr`` drops mostly
wrong labels?" on the user's own data, before a training run spends hours on them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

DEFAULT_PI_EDGES = (0.0, 0.03, 0.06, 0.1, 0.15, 0.25)  # lower bin edges; the last bin is open


def joint_similarity(
    pred_xy: np.ndarray, truth: np.ndarray, area: np.ndarray, sigmas: np.ndarray
) -> np.ndarray:
    """Per-joint OKS similarity of predictions against the truth.

    Args:
        pred_xy: (N, K, 2+) predicted keypoints, image space (x, y first).
        truth: (N, K, 3) true keypoints x, y, COCO visibility v (image space).
        area: (N,) person areas, image px^2 (COCO ``area``).
        sigmas: (K,) COCO per-joint sigmas.

    Returns:
        (N, K) float64 in [0, 1]; NaN where the truth joint is not labelled (v == 0) or the
        person has no area.
    """
    pred_xy = np.asarray(pred_xy, dtype=np.float64)[..., :2]
    truth = np.asarray(truth, dtype=np.float64)
    area = np.asarray(area, dtype=np.float64)
    sigmas = np.asarray(sigmas, dtype=np.float64)
    if pred_xy.shape[:2] != truth.shape[:2] or truth.shape[-1] != 3:
        raise ValueError(f"pred_xy {pred_xy.shape} and truth {truth.shape} must be (N,K,2) and (N,K,3)")
    if sigmas.shape != (truth.shape[1],) or area.shape != (truth.shape[0],):
        raise ValueError(f"sigmas {sigmas.shape} / area {area.shape} do not match truth {truth.shape}")
    d2 = ((pred_xy - truth[..., :2]) ** 2).sum(-1)
    var = (2.0 * sigmas[None, :]) ** 2 * area[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        sim = np.exp(-d2 / (2.0 * var))
    sim[(truth[..., 2] <= 0) | ~(area[:, None] > 0)] = np.nan
    return sim


def accuracy_by_inconsistency(
    pi: np.ndarray,
    similarity: Mapping[str, np.ndarray],
    edges: Sequence[float] = DEFAULT_PI_EDGES,
    correct_at: float = 0.5,
) -> list[dict]:
    """Group labelled joints by PI and summarise each source's similarity per group.

    Args:
        pi: (N, K) PI of PCM's chosen pair (argmax distance / heatmap diagonal).
        similarity: name -> (N, K) similarity from :func:`joint_similarity` (NaN = no truth).
            Only joints with a finite similarity in every source are counted.
        edges: increasing lower edges of the PI bins; the last bin has no upper edge.
        correct_at: a joint counts as correct where its similarity is at least this.

    Returns:
        One dict per bin: ``pi_from``, ``pi_to`` (None for the last bin), ``joints``,
        ``fraction`` (of all counted joints), and per source ``<name>_similarity`` (mean) and
        ``<name>_correct`` (fraction >= ``correct_at``); means are None for an empty bin.
    """
    edges = [float(e) for e in edges]
    if not edges or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError(f"PI bin edges must be a non-empty increasing sequence, got {edges}")
    pi = np.asarray(pi, dtype=np.float64)
    sims = {k: np.asarray(v, dtype=np.float64) for k, v in similarity.items()}
    for name, s in sims.items():
        if s.shape != pi.shape:
            raise ValueError(f"similarity {name!r} has shape {s.shape}, pi has {pi.shape}")
    valid = np.isfinite(pi)
    for s in sims.values():
        valid &= np.isfinite(s)
    total = int(valid.sum())
    bins = []
    for i, lo in enumerate(edges):
        hi = edges[i + 1] if i + 1 < len(edges) else None
        in_bin = valid & (pi >= lo) & ((pi < hi) if hi is not None else True)
        n = int(in_bin.sum())
        row: dict = {"pi_from": lo, "pi_to": hi, "joints": n, "fraction": n / total if total else 0.0}
        for name, s in sims.items():
            row[f"{name}_similarity"] = float(s[in_bin].mean()) if n else None
            row[f"{name}_correct"] = float((s[in_bin] >= correct_at).mean()) if n else None
        bins.append(row)
    return bins


def match_truth(
    image_ids: np.ndarray, boxes_xywh: np.ndarray, coco: Mapping, num_joints: int, min_iou: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """The true keypoints of each pseudo-labeled person: the annotation of the same image whose
    box overlaps the person's box most (IoU >= ``min_iou``; boxes from the annotations match
    themselves exactly, detector boxes match their person).

    Args:
        image_ids: (N,) image id of each person.
        boxes_xywh: (N, 4) person boxes, image space.
        coco: a COCO keypoints dict (``annotations`` with ``image_id``, ``bbox``, ``keypoints``,
            ``area``).
        num_joints: K.

    Returns:
        truth (N, K, 3) float64 (all zeros where unmatched: no labelled joint) and area (N,)
        float64 (0 where unmatched).
    """
    by_image: dict[int, list[dict]] = {}
    for a in coco.get("annotations", []):
        if a.get("iscrowd", 0) or not a.get("keypoints"):
            continue
        by_image.setdefault(int(a["image_id"]), []).append(a)
    n = len(image_ids)
    truth = np.zeros((n, num_joints, 3), dtype=np.float64)
    area = np.zeros(n, dtype=np.float64)
    for i, (image_id, box) in enumerate(zip(np.asarray(image_ids), np.asarray(boxes_xywh, dtype=np.float64))):
        best, best_iou = None, min_iou
        for a in by_image.get(int(image_id), []):
            iou = _iou_xywh(box, np.asarray(a["bbox"], dtype=np.float64))
            if iou >= best_iou:
                best, best_iou = a, iou
        if best is not None:
            truth[i] = np.asarray(best["keypoints"], dtype=np.float64).reshape(num_joints, 3)
            area[i] = float(best.get("area") or best["bbox"][2] * best["bbox"][3])
    return truth, area


def _iou_xywh(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def format_accuracy_table(bins: list[dict], sources: Sequence[str]) -> str:
    """The bins of :func:`accuracy_by_inconsistency` as a plain-text table (one line a bin)."""
    head = f"{'PI bin':<14}{'joints':>8}{'share':>7}" + "".join(f"{s + ' ks':>11}{'ok':>6}" for s in sources)
    lines = [head]
    for b in bins:
        hi = f"{b['pi_to']:.2f}" if b["pi_to"] is not None else "inf"
        line = f"[{b['pi_from']:.2f}, {hi})".ljust(14) + f"{b['joints']:>8}{b['fraction']:>7.3f}"
        for s in sources:
            m, c = b[f"{s}_similarity"], b[f"{s}_correct"]
            line += f"{m:>11.3f}{c:>6.2f}" if m is not None else f"{'-':>11}{'-':>6}"
        lines.append(line)
    return "\n".join(lines)
