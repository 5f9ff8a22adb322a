"""The teachers of a trained run labelling a wild pool: A_t, B_t (and A_{t-1}, B_{t-1}) + PCM.

The teachers are a run's latest checkpoint (A_t, B_t) and, for PCM's four pairs, the checkpoint
of the epoch before (A_{t-1}, B_{t-1}). Each pool person is seen in its un-augmented box view
(the evaluation view, :func:`pipeline.export.labeling.read_views`), exactly as PCM sees an easy
view during training; keypoints go back to image coordinates through the view matrix.
:class:`TeacherLabeler` turns a batch of box views into pseudo-label store rows.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pipeline.data.skeletons import Skeleton
from pipeline.evaluation.checkpoint_eval import codec_from_state, load_checkpoint_network, skeleton_from_state
from pipeline.geometry.heatmaps import HeatmapCodec
from pipeline.method.pcm import PCMConfig, correct_pseudo_labels
from pipeline.method.pseudo_labels import PseudoLabelConfig, PseudoLabeler
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
        for role in TEACHERS:
            net = load_checkpoint_network(ckpts.current / f"{role}.pt", self.device)
            self.models[f"{role}_t"] = net.model
            if ckpts.previous is not None and options.use_previous:
                self.models[f"{role}_prev"] = load_checkpoint_network(
                    ckpts.previous / f"{role}.pt", self.device
                ).model
        self.codec: HeatmapCodec = net.codec  # teacher B's (both teachers share the run's codec)
        self.skeleton: Skeleton = net.skeleton
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


def teacher_codec(ckpts: TeacherCheckpoints) -> tuple[HeatmapCodec, Skeleton]:
    """The teachers' codec and skeleton, read from teacher B's file (no network is built)."""
    state = load_network_file(ckpts.current / f"{TEACHERS[1]}.pt")
    return codec_from_state(state), skeleton_from_state(state)
