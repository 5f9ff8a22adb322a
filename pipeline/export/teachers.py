"""Pseudo labels as a product: trained teachers + PCM over a wild pool -> store rows -> COCO JSON.

The teachers are a run's latest checkpoint (A_t, B_t) and, for PCM's four pairs, the checkpoint
of the epoch before (A_{t-1}, B_{t-1}). Each pool person is seen in its un-augmented box view
(the evaluation view), exactly as PCM sees an easy view during training; keypoints go back to
image coordinates through the view matrix. Pure torch/numpy (the job adds Ray Data streaming).

COCO output: one annotation per kept person; keypoint ``v`` is 2 where PCM kept the joint (and
it is among the exported joints), else 0 with x = y = 0; ``score`` is the mean confidence of the
kept joints; ``bbox`` the pool box. Such a file is a labeled set for ``jobs.train``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pipeline.data.skeletons import Skeleton, get_skeleton, skeleton_for_num_joints
from pipeline.geometry.heatmaps import HeatmapCodec
from pipeline.method.pcm import PCMConfig, correct_pseudo_labels
from pipeline.method.pseudo_labels import PseudoLabelConfig, PseudoLabeler
from pipeline.models import build_model
from pipeline.store.checkpoints import list_checkpoints, load_network_file
from pipeline.store.pseudo_label_store import PseudoLabelRows

log = logging.getLogger(__name__)

TEACHERS = ("teacher_a", "teacher_b")


class ExportError(ValueError):
    """A run or checkpoint that cannot be exported from (the message names the path)."""


@dataclass(frozen=True)
class ExportOptions:
    """Which pseudo labels are exported.

    Attributes:
        score_thr: PCM score mask: keep a joint where mean(max A_t, max B_t) > score_thr.
        pi_thr: also drop joints whose chosen-pair PI (/ heatmap diagonal) exceeds it; None = off.
        joints: indices of the joints to export (others get v = 0); None = all.
        min_joints: persons with fewer kept joints are left out of the COCO file.
        use_previous: use the previous-epoch teachers (four PCM pairs); else only (A_t, B_t).
        label: PCM's corrected label, ``"mean"`` (paper) or ``"gaussian"`` (see ``PCMConfig``).
    """

    score_thr: float = 0.1
    pi_thr: float | None = None
    joints: tuple[int, ...] | None = None
    min_joints: int = 1
    use_previous: bool = True
    label: str = "mean"


@dataclass(frozen=True)
class TeacherCheckpoints:
    current: Path
    previous: Path | None
    epoch: int


def _has_teachers(ckpt: Path) -> bool:
    return all((ckpt / f"{r}.pt").is_file() for r in TEACHERS)


def _epoch_of(ckpt: Path) -> int:
    state = ckpt / "trainer_state.json"
    return int(json.loads(state.read_text())["epoch"]) if state.is_file() else -1


def find_teacher_checkpoints(run_or_checkpoint: str | Path) -> TeacherCheckpoints:
    """The teachers to export with: a checkpoint directory, or a run's latest one holding both
    teachers; the previous teachers are the latest earlier checkpoint of an earlier epoch."""
    p = Path(run_or_checkpoint)
    if _has_teachers(p):
        run_dir, current = p.parent.parent, p
    else:
        run_dir = p
        found = [c for c in list_checkpoints(p) if _has_teachers(c)]
        if not found:
            raise ExportError(
                f"{p}: no checkpoint with teacher_a.pt and teacher_b.pt (train with method "
                "'sspcm' or 'dual', or pass a checkpoint directory)"
            )
        current = found[-1]
    epoch = _epoch_of(current)
    earlier = [
        c
        for c in list_checkpoints(run_dir)
        if c.name < current.name and _has_teachers(c) and _epoch_of(c) < epoch
    ]
    return TeacherCheckpoints(current, earlier[-1] if earlier else None, max(epoch, 0))


def _load_model(path: Path, device: torch.device) -> tuple[torch.nn.Module, dict]:
    state = load_network_file(path)
    spec = state["spec"]
    model = build_model(spec["model_name"], spec["num_joints"])
    model.load_state_dict(state["model"])
    return model.to(device).eval(), state


class TeacherLabeler:
    """Runs the teachers and PCM on batches of box views and returns store rows.

    Args:
        ckpts: the teacher checkpoints (see :func:`find_teacher_checkpoints`).
        options: export options.
        device: where the networks run.
    """

    def __init__(self, ckpts: TeacherCheckpoints, options: ExportOptions, device: str = "cpu"):
        self.options = options
        self.device = torch.device(device)
        self.models: dict[str, torch.nn.Module] = {}
        state = {}
        for role in TEACHERS:
            self.models[f"{role}_t"], state = _load_model(ckpts.current / f"{role}.pt", self.device)
            if ckpts.previous is not None and options.use_previous:
                self.models[f"{role}_prev"], _ = _load_model(ckpts.previous / f"{role}.pt", self.device)
        codec = dict(state.get("codec", {}))
        self.codec = HeatmapCodec(
            tuple(codec.get("input_size", (192, 256))),
            tuple(codec.get("heatmap_size", (48, 64))),
            float(codec.get("sigma", 2.0)),
            codec.get("decode", "argmax"),
        )
        num_joints = int(state["spec"]["num_joints"])
        self.skeleton: Skeleton = (
            get_skeleton(state["skeleton"]) if "skeleton" in state else skeleton_for_num_joints(num_joints)
        )
        self.pcm = PCMConfig(
            score_thr=options.score_thr, pi_thr=options.pi_thr, label=options.label, sigma=self.codec.sigma
        )
        self.decoder = PseudoLabeler(
            PseudoLabelConfig(
                input_size=self.codec.input_size,
                heatmap_size=self.codec.heatmap_size,
                flip_indices=self.skeleton.flip_indices,
                sigma=self.codec.sigma,
                decode_method=self.codec.decode_method,
            )
        )

    @torch.no_grad()
    def label_batch(self, batch: dict) -> tuple[PseudoLabelRows, dict[str, np.ndarray]]:
        """One batch of box views -> (store rows, raw keypoints of each teacher).

        Args:
            batch: ``images`` (N,3,H,W) input space, ``matrix`` (N,2,3) image -> input,
                ``image_id`` (N,), ``index`` (N,) pool position, ``bbox`` (N,4) xywh image space,
                ``image_file`` N names.

        Returns:
            rows (image space), and ``{"A_t", "B_t", "mean_AB"}`` -> (N,K,3) image-space
            keypoints of the uncorrected teachers (for measuring what PCM changed).
        """
        images = torch.as_tensor(batch["images"]).to(self.device)
        hm = {k: m(images).float().cpu() for k, m in self.models.items()}
        prev_a, prev_b = hm.get("teacher_a_prev"), hm.get("teacher_b_prev")
        out = correct_pseudo_labels(hm["teacher_a_t"], hm["teacher_b_t"], prev_a, prev_b, self.pcm)
        n = images.shape[0]
        view = {
            "matrix": torch.as_tensor(batch["matrix"]).double(),
            "flipped": torch.zeros(n, dtype=torch.bool),
        }
        kpts_a = self.decoder.keypoints_in_image(hm["teacher_a_t"], view)
        kpts_b = self.decoder.keypoints_in_image(hm["teacher_b_t"], view)
        mean_ab = self.decoder.keypoints_in_image((hm["teacher_a_t"] + hm["teacher_b_t"]) / 2, view)
        weights = out.weights.float().numpy()
        if self.options.joints is not None:
            keep = np.zeros(weights.shape[1], dtype=bool)
            keep[list(self.options.joints)] = True
            weights = weights * keep
        rows = PseudoLabelRows(
            image_id=np.asarray(batch["image_id"], dtype=np.int64),
            person_index=np.asarray(batch["index"], dtype=np.int64),
            image_file=[str(f) for f in batch["image_file"]],
            bbox=np.asarray(batch["bbox"], dtype=np.float32),
            kpts_a=kpts_a,
            kpts_b=kpts_b,
            pi=out.pi.float().numpy(),
            kpts_corrected=self.decoder.keypoints_in_image(out.heatmaps, view),
            weights=weights.astype(np.float32),
            heatmaps=out.heatmaps.float().numpy(),
            matrix=np.asarray(view["matrix"]),
            flipped=np.zeros(n, dtype=bool),
        )
        return rows, {"A_t": kpts_a, "B_t": kpts_b, "mean_AB": mean_ab}


def coco_annotations(rows: PseudoLabelRows, min_joints: int, first_id: int) -> list[dict]:
    """COCO person annotations of the rows with at least ``min_joints`` kept joints.

    Keypoints: corrected (x, y) with v = 2 where the PCM weight is > 0, else (0, 0, 0);
    ``score`` = mean corrected confidence of the kept joints; ids from ``first_id`` on.
    """
    anns = []
    kept = rows.weights > 0
    for i in range(len(rows.image_id)):
        k = int(kept[i].sum())
        if k < max(min_joints, 1):
            continue
        kp = np.zeros((kept.shape[1], 3), dtype=np.float64)
        kp[kept[i], :2] = rows.kpts_corrected[i, kept[i], :2]
        kp[kept[i], 2] = 2
        x, y, w, h = (float(v) for v in rows.bbox[i])
        anns.append(
            {
                "id": first_id + len(anns),
                "image_id": int(rows.image_id[i]),
                "category_id": 1,
                "bbox": [x, y, w, h],
                "area": w * h,
                "iscrowd": 0,
                "num_keypoints": k,
                "keypoints": [round(float(v), 2) for v in kp.reshape(-1)],
                "score": float(rows.kpts_corrected[i, kept[i], 2].mean()),
            }
        )
    return anns


def keypoint_results(image_ids: np.ndarray, kpts: np.ndarray) -> list[dict]:
    """COCO keypoint results (category 1) from (N,) ids and (N,K,3) image-space keypoints."""
    from pipeline.evaluation.metrics import make_keypoint_results

    return make_keypoint_results(np.asarray(image_ids), np.asarray(kpts, dtype=np.float64), None)
