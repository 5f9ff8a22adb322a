"""How good are a training run's pseudo labels? Its last teachers and PCM scored against the truth.

For a pool with keypoint annotations (the synthetic benchmark's pool), ``pseudo_label_quality``
takes the current teachers (A_t, B_t) from a run's last checkpoint and the previous-epoch ones
from the checkpoint before, predicts every pool person's un-augmented box view (the view PCM
corrects during training), and scores A_t, B_t, their mean and PCM's corrected label with OKS AP,
plus per-joint accuracy by position inconsistency and by joint type
(:mod:`pipeline.evaluation.label_accuracy`). ``pipeline.export.exporter`` measures the same for
exported labels.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from pipeline.data.skeletons import Skeleton
from pipeline.data.topdown import EvalDataset
from pipeline.evaluation.label_accuracy import (
    accuracy_by_inconsistency,
    accuracy_by_joint,
    similarities_against_truth,
)
from pipeline.evaluation.metrics import coco_keypoint_eval, make_keypoint_results
from pipeline.geometry.heatmaps import HeatmapCodec, heatmap_to_image
from pipeline.method.pcm import PCMConfig, correct_pseudo_labels, pcm_statistics
from pipeline.models import build_model
from pipeline.store.checkpoints import load_network_file


def pseudo_label_quality(
    checkpoints: Sequence[Path],
    persons: list,
    skeleton: Skeleton,
    codec: HeatmapCodec,
    pcm_cfg: PCMConfig,
    pool_ann: Path,
) -> dict:
    """OKS AP of A_t, B_t and the PCM label on the pool, against the synthetic ground truth.

    ``checkpoints`` are a run's checkpoint directories in order (``list_checkpoints``): the
    current teachers are the last one's, the previous-epoch teachers the one before's; ``persons``
    the pool (boxes in image space) and ``pool_ann`` its COCO file with the true keypoints.
    Returns ``{}`` with fewer than two checkpoints. All predictions are made on the un-augmented
    view of each pool person, exactly as PCM sees an easy view. Also scores every labelled joint
    (OKS similarity, ``pipeline.evaluation.label_accuracy``), grouped by PCM's position
    inconsistency (``by_pi``) and by joint type (``by_joint``), with the share of left/right swaps,
    and by PCM's chosen pair (``by_pair``: the first row the joints where PCM kept the current
    pair, the second those where it picked a pair with a previous-epoch teacher).
    """
    ckpts = list(checkpoints)
    if len(ckpts) < 2:
        return {}
    models = {}
    for tag, ckpt in (("t", ckpts[-1]), ("prev", ckpts[-2])):
        for role in ("teacher_a", "teacher_b"):
            state = load_network_file(ckpt / f"{role}.pt")
            m = build_model(state["spec"]["model_name"], state["spec"]["num_joints"])
            m.load_state_dict(state["model"])
            models[f"{role}_{tag}"] = m.eval()
    ds = EvalDataset(persons, codec, skeleton)
    loader = torch.utils.data.DataLoader(ds, batch_size=128, shuffle=False)
    preds: dict[str, list] = {"A_t": [], "B_t": [], "PCM": [], "mean_AB": []}
    ids, stats, pis, pairs, rows = [], [], [], [], []
    with torch.no_grad():
        for batch in loader:
            x = batch["images"]
            hm = {k: m(x) for k, m in models.items()}
            out = correct_pseudo_labels(
                hm["teacher_a_t"], hm["teacher_b_t"], hm["teacher_a_prev"], hm["teacher_b_prev"], pcm_cfg
            )
            stats.append(pcm_statistics(out))
            maps = {
                "A_t": hm["teacher_a_t"],
                "B_t": hm["teacher_b_t"],
                "PCM": out.heatmaps,
                "mean_AB": 0.5 * hm["teacher_a_t"] + 0.5 * hm["teacher_b_t"],  # as PCM's label of pair 0
            }
            for name, h in maps.items():
                kpts_hm, scores = codec.decode(h.numpy())
                xy = heatmap_to_image(kpts_hm, batch["matrix"].numpy(), codec.input_size, codec.heatmap_size)
                preds[name].append(np.concatenate([xy, scores[..., None]], axis=-1))
            ids.append(batch["image_id"].numpy())
            pis.append(out.pi.numpy())
            pairs.append(out.pair_index.numpy())
            rows.append(batch["index"].numpy())
    image_ids = np.concatenate(ids)
    quality: dict = {}
    for name, chunks in preds.items():
        res = make_keypoint_results(image_ids, np.concatenate(chunks), None)
        quality[name] = coco_keypoint_eval(pool_ann, res, sigmas=skeleton.sigmas_array)["AP"]
    quality["pcm_stats"] = {k: float(np.mean([s[k] for s in stats])) for k in stats[0]}
    boxes = np.stack([persons[i].bbox_xywh for i in np.concatenate(rows)])
    labels = {name: np.concatenate(preds[name]) for name in ("A_t", "B_t", "mean_AB", "PCM")}
    pool_coco = json.loads(pool_ann.read_text())
    sims, mirrored = similarities_against_truth(labels, image_ids, boxes, pool_coco, skeleton)
    quality["by_pi"] = accuracy_by_inconsistency(np.concatenate(pis), sims, mirrored=mirrored)
    quality["by_joint"] = accuracy_by_joint(sims, skeleton.joint_names, mirrored=mirrored)
    # where PCM keeps the current pair its label is mean(A_t, B_t); where it picks a pair with a
    # previous-epoch teacher (pair index 1..3), is its label better than that mean?
    quality["by_pair"] = accuracy_by_inconsistency(
        np.concatenate(pairs), sims, edges=(0.0, 1.0), mirrored=mirrored
    )
    return quality
