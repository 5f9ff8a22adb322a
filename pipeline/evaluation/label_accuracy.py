"""How right are pseudo labels, joint by joint, as a function of PCM's position inconsistency?

For a pool that has keypoint annotations (synthetic, or a labeled hold-out of real images) this
scores every pseudo-labeled joint against the truth with COCO's per-joint OKS similarity

    ks = exp(-d^2 / (2 * area * (2 * sigma_j)^2))      (d in image px, area in image px^2)

and groups the joints by the PI of PCM's chosen pair. It answers "which ``pi_thr`` drops mostly
wrong labels?" on the user's own data, before a training run spends hours on them.

A wrong joint is counted as *swapped* when it would be right as its mirror joint (a left wrist
label that sits on the right wrist): both teachers tend to make that error together, so their
position inconsistency is small and PCM cannot see it. ``accuracy_by_joint`` reports the same
figures joint by joint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from pipeline.data.skeletons import Skeleton

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


def mirrored_similarity(
    pred_xy: np.ndarray, truth: np.ndarray, area: np.ndarray, sigmas: np.ndarray, flip_indices: Sequence[int]
) -> np.ndarray:
    """Per-joint OKS similarity of each prediction against the truth of its *mirror* joint.

    Joint j is scored against truth joint ``flip_indices[j]`` with joint j's own sigma (the
    mirror pairs of COCO share theirs). Shapes and units as :func:`joint_similarity`.

    Returns:
        (N, K) float64 in [0, 1]; NaN where joint j has no mirror (``flip_indices[j] == j``),
        the mirror joint is not labelled, or the person has no area.
    """
    flip = np.asarray(flip_indices, dtype=np.int64)
    truth = np.asarray(truth, dtype=np.float64)
    if flip.shape != (truth.shape[1],):
        raise ValueError(f"flip_indices has {flip.shape[0]} entries, truth has {truth.shape[1]} joints")
    sim = joint_similarity(pred_xy, truth[:, flip], area, sigmas)
    sim[:, flip == np.arange(flip.shape[0])] = np.nan
    return sim


def swapped_joints(sim: np.ndarray, mirrored: np.ndarray, correct_at: float) -> np.ndarray:
    """(N, K) bool: wrong as itself, right as its mirror joint."""
    with np.errstate(invalid="ignore"):
        return (sim < correct_at) & (np.nan_to_num(mirrored, nan=0.0) >= correct_at)


def accuracy_by_inconsistency(
    pi: np.ndarray,
    similarity: Mapping[str, np.ndarray],
    edges: Sequence[float] = DEFAULT_PI_EDGES,
    correct_at: float = 0.5,
    mirrored: Mapping[str, np.ndarray] | None = None,
) -> list[dict]:
    """Group labelled joints by PI and summarise each source's similarity per group.

    Args:
        pi: (N, K) PI of PCM's chosen pair (argmax distance / heatmap diagonal).
        similarity: name -> (N, K) similarity from :func:`joint_similarity` (NaN = no truth).
            Only joints with a finite similarity in every source are counted.
        edges: increasing lower edges of the PI bins; the last bin has no upper edge.
        correct_at: a joint counts as correct where its similarity is at least this.
        mirrored: optional name -> (N, K) from :func:`mirrored_similarity`; adds
            ``<name>_swapped``, the fraction of the bin's joints that are wrong but right as
            their mirror joint.

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
    swapped = _swapped_by_source(sims, mirrored, correct_at)
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
            if name in swapped:
                row[f"{name}_swapped"] = float(swapped[name][in_bin].mean()) if n else None
        bins.append(row)
    return bins


def _swapped_by_source(
    sims: Mapping[str, np.ndarray], mirrored: Mapping[str, np.ndarray] | None, correct_at: float
) -> dict[str, np.ndarray]:
    out = {}
    for name, m in (mirrored or {}).items():
        if name not in sims:
            raise ValueError(f"mirrored similarity {name!r} has no plain similarity")
        m = np.asarray(m, dtype=np.float64)
        if m.shape != sims[name].shape:
            raise ValueError(f"mirrored similarity {name!r} has shape {m.shape}, not {sims[name].shape}")
        out[name] = swapped_joints(sims[name], m, correct_at)
    return out


def accuracy_by_joint(
    similarity: Mapping[str, np.ndarray],
    joint_names: Sequence[str],
    correct_at: float = 0.5,
    mirrored: Mapping[str, np.ndarray] | None = None,
) -> list[dict]:
    """The same summary as :func:`accuracy_by_inconsistency`, one row per joint type.

    Args:
        similarity: name -> (N, K) from :func:`joint_similarity` (NaN = no truth). A joint
            counts for a row where every source has a finite similarity.
        joint_names: K names.
        mirrored: as in :func:`accuracy_by_inconsistency`.

    Returns:
        One dict per joint: ``joint``, ``joints`` (labelled count) and per source
        ``<name>_similarity``, ``<name>_correct`` (and ``<name>_swapped``); None where no joint
        is labelled.
    """
    sims = {k: np.asarray(v, dtype=np.float64) for k, v in similarity.items()}
    shapes = {s.shape for s in sims.values()}
    if len(shapes) != 1 or next(iter(shapes))[1:] != (len(joint_names),):
        raise ValueError(f"similarities {sorted(shapes)} must all be (N, {len(joint_names)})")
    swapped = _swapped_by_source(sims, mirrored, correct_at)
    valid = np.logical_and.reduce([np.isfinite(s) for s in sims.values()])
    rows = []
    for j, joint in enumerate(joint_names):
        sel = valid[:, j]
        n = int(sel.sum())
        row: dict = {"joint": joint, "joints": n}
        for name, s in sims.items():
            row[f"{name}_similarity"] = float(s[sel, j].mean()) if n else None
            row[f"{name}_correct"] = float((s[sel, j] >= correct_at).mean()) if n else None
            if name in swapped:
                row[f"{name}_swapped"] = float(swapped[name][sel, j].mean()) if n else None
        rows.append(row)
    return rows


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


def similarities_against_truth(
    labels: Mapping[str, np.ndarray],
    image_ids: np.ndarray,
    boxes_xywh: np.ndarray,
    coco: Mapping,
    skeleton: Skeleton,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Each source's per-joint OKS similarity against the pool's truth, as itself and as its
    mirror joint: (name -> (N, K) :func:`joint_similarity`, name -> (N, K)
    :func:`mirrored_similarity`). Arguments as :func:`accuracy_against_truth`; persons are
    matched to the truth once, with :func:`match_truth`."""
    truth, area = match_truth(image_ids, boxes_xywh, coco, skeleton.num_joints)
    sigmas = skeleton.sigmas_array
    sims = {name: joint_similarity(xy, truth, area, sigmas) for name, xy in labels.items()}
    mirrored = {
        name: mirrored_similarity(xy, truth, area, sigmas, skeleton.flip_indices)
        for name, xy in labels.items()
    }
    return sims, mirrored


def accuracy_against_truth(
    labels: Mapping[str, np.ndarray],
    pi: np.ndarray,
    image_ids: np.ndarray,
    boxes_xywh: np.ndarray,
    coco: Mapping,
    skeleton: Skeleton,
) -> tuple[list[dict], list[dict]]:
    """Score pseudo labels of a pool against its annotations: per PI bin and per joint type,
    with left/right swaps.

    Args:
        labels: source name -> (N, K, 2+) keypoints, image space.
        pi: (N, K) PI of PCM's chosen pair.
        image_ids, boxes_xywh: (N,) and (N, 4) of each labelled person (matched to the truth
            with :func:`match_truth`).
        coco: the pool's COCO keypoints dict.
        skeleton: gives the sigmas, mirror joints and joint names.

    Returns:
        (:func:`accuracy_by_inconsistency` rows, :func:`accuracy_by_joint` rows).
    """
    sims, mirrored = similarities_against_truth(labels, image_ids, boxes_xywh, coco, skeleton)
    by_pi = accuracy_by_inconsistency(pi, sims, mirrored=mirrored)
    by_joint = accuracy_by_joint(sims, skeleton.joint_names, mirrored=mirrored)
    return by_pi, by_joint


def _iou_xywh(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def format_accuracy_table(rows: list[dict], sources: Sequence[str]) -> str:
    """Rows of :func:`accuracy_by_inconsistency` (one line a PI bin) or of
    :func:`accuracy_by_joint` (one line a joint) as a plain-text table: per source the mean
    similarity ``ks``, the fraction correct ``ok`` and, where measured, the fraction ``swap``ped."""
    if not rows:
        return "(no labelled joints)"
    by_joint = "joint" in rows[0]
    swaps = [s for s in sources if f"{s}_swapped" in rows[0]]
    head = f"{'joint' if by_joint else 'PI bin':<16}{'joints':>8}" + ("" if by_joint else f"{'share':>7}")
    head += "".join(f"{s + ' ks':>11}{'ok':>6}" + (f"{'swap':>6}" if s in swaps else "") for s in sources)
    lines = [head]
    for r in rows:
        if by_joint:
            line = f"{r['joint']:<16}{r['joints']:>8}"
        else:
            hi = f"{r['pi_to']:.2f}" if r["pi_to"] is not None else "inf"
            line = f"[{r['pi_from']:.2f}, {hi})".ljust(16) + f"{r['joints']:>8}{r['fraction']:>7.3f}"
        for s in sources:
            m, c = r[f"{s}_similarity"], r[f"{s}_correct"]
            line += f"{m:>11.3f}{c:>6.2f}" if m is not None else f"{'-':>11}{'-':>6}"
            if s in swaps:
                w = r[f"{s}_swapped"]
                line += f"{w:>6.2f}" if w is not None else f"{'-':>6}"
        lines.append(line)
    return "\n".join(lines)
