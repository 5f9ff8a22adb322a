"""Stages 2 and 3 of the SSPCM step: PCM-corrected pseudo labels and the hard views.

``PseudoLabeler`` turns the teachers' easy-view heatmaps into, for each network role, a hard
view (cut-occlude or Joint Cutout, then the hard affine) with its consistency target mapped
into that view through the view matrices. It is what the pseudo-label actor hosts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.heatmaps import get_max_preds
from pipeline.pcm import PCMConfig, PCMOutput, correct_pseudo_labels, pcm_statistics
from pipeline.ssco import SSCOConfig, cut_occlude, joint_cutout
from pipeline.views import compose_affine, warp_batch, warp_heatmaps

log = logging.getLogger(__name__)

ROLE_INDEX = {"teacher_a": 0, "teacher_b": 1, "student": 2}
_OFF_IMAGE = -1.0e4  # keypoint position used for masked joints: SSCO skips it


@dataclass(frozen=True)
class PseudoLabelConfig:
    input_size: tuple[int, int]
    heatmap_size: tuple[int, int]
    flip_indices: tuple[int, ...]
    pcm: PCMConfig = PCMConfig()
    ssco: SSCOConfig = SSCOConfig()
    seed: int = 0


def peak_keypoints_in(
    heatmaps: torch.Tensor, weights: torch.Tensor, input_size, heatmap_size
) -> torch.Tensor:
    """(N,K,h,w) heatmaps -> (N,K,2) argmax keypoints in input space; masked joints moved off-image."""
    coords, _ = get_max_preds(heatmaps)
    coords = torch.as_tensor(coords, dtype=torch.float32)
    stride = torch.tensor(
        [input_size[0] / heatmap_size[0], input_size[1] / heatmap_size[1]], dtype=torch.float32
    )
    kpts = coords * stride
    kpts[torch.as_tensor(weights) <= 0] = _OFF_IMAGE
    return kpts


class PseudoLabeler:
    """PCM + SSCO + hard views for a batch of unlabeled persons (pure torch, CPU or GPU)."""

    def __init__(self, cfg: PseudoLabelConfig):
        self.cfg = cfg

    def _generator(self, step: int, role: str) -> torch.Generator:
        g = torch.Generator()
        g.manual_seed(int(self.cfg.seed) * 1_000_003 + int(step) * 7 + ROLE_INDEX[role])
        return g

    def hard_view(
        self,
        unlabeled: dict,
        occluded_images: torch.Tensor,
        targets: torch.Tensor,
        weights: torch.Tensor,
        role: str,
    ) -> dict:
        """Apply the role's hard affine to an (already cut-occluded) easy image and map its target.

        Args:
            unlabeled: batch with ``matrix`` (N,2,3) image->easy input, ``flipped`` (N,),
                ``hard_affines`` (N,3,2,3) easy input -> hard input per role.
            occluded_images: (N,3,H,W) easy-view images after cut-occlude / cutout.
            targets: (N,K,h,w) targets in the easy view's heatmap space.
            weights: (N,K).

        Returns:
            ``images`` (N,3,H,W), ``targets`` (N,K,h,w), ``target_weights`` (N,K) in the hard view.
        """
        affine = torch.as_tensor(unlabeled["hard_affines"])[:, ROLE_INDEX[role]].double()
        m_easy = torch.as_tensor(unlabeled["matrix"]).double()
        m_hard = torch.as_tensor(
            np.stack([compose_affine(a, m) for a, m in zip(affine.numpy(), m_easy.numpy())])
        )
        flipped = torch.as_tensor(unlabeled["flipped"]).bool()
        hard_targets = warp_heatmaps(
            targets,
            m_easy.numpy(),
            m_hard.numpy(),
            flipped.numpy(),
            flipped.numpy(),
            self.cfg.input_size,
            self.cfg.heatmap_size,
            self.cfg.flip_indices,
        )
        return {
            "images": warp_batch(occluded_images, affine.numpy(), self.cfg.input_size),
            "targets": torch.as_tensor(hard_targets, dtype=torch.float32),
            "target_weights": torch.as_tensor(weights, dtype=torch.float32),
        }

    def sspcm_targets(
        self,
        hm_a: torch.Tensor,
        hm_b: torch.Tensor,
        hm_a_prev: torch.Tensor | None,
        hm_b_prev: torch.Tensor | None,
        unlabeled: dict,
        step: int,
    ) -> tuple[dict, dict, dict, dict]:
        """Stages 2-3 of SSPCM: PCM, then SSCO + hard affine per role.

        A learns from B_t on a view cut-occluded with B's keypoints, B from A_t with A's
        keypoints, C from the PCM label with PCM's keypoints.

        Returns:
            (hard_a, hard_b, hard_c, stats) — hard batches as in :meth:`hard_view`.
        """
        pcm: PCMOutput = correct_pseudo_labels(hm_a, hm_b, hm_a_prev, hm_b_prev, self.cfg.pcm)
        score_mask = ((hm_a.amax(dim=(2, 3)) + hm_b.amax(dim=(2, 3))) / 2 > self.cfg.pcm.score_thr).float()
        images = torch.as_tensor(unlabeled["images"])
        isz, hsz = self.cfg.input_size, self.cfg.heatmap_size
        sources = {
            "teacher_a": (hm_b, score_mask),
            "teacher_b": (hm_a, score_mask),
            "student": (pcm.heatmaps, pcm.weights.float()),
        }
        out = []
        for role, (target, weights) in sources.items():
            kpts = peak_keypoints_in(target, weights, isz, hsz)
            occluded, _ = cut_occlude(images, kpts, self._generator(step, role), self.cfg.ssco)
            out.append(self.hard_view(unlabeled, occluded, target, weights, role))
        stats = pcm_statistics(pcm)
        return out[0], out[1], out[2], stats

    def dual_targets(
        self, hm_a: torch.Tensor, hm_b: torch.Tensor, unlabeled: dict, step: int
    ) -> tuple[dict, dict, dict]:
        """Dual Network (Xie et al. 2021): each teacher learns from the other's easy-view heatmaps
        on a Joint-Cutout + hard-affine view. Returns (hard_a, hard_b, stats)."""
        score_mask = ((hm_a.amax(dim=(2, 3)) + hm_b.amax(dim=(2, 3))) / 2 > self.cfg.pcm.score_thr).float()
        images = torch.as_tensor(unlabeled["images"])
        isz, hsz = self.cfg.input_size, self.cfg.heatmap_size
        out = []
        for role, target in (("teacher_a", hm_b), ("teacher_b", hm_a)):
            kpts = peak_keypoints_in(target, score_mask, isz, hsz)
            occluded, _ = joint_cutout(images, kpts, self._generator(step, role), self.cfg.ssco)
            out.append(self.hard_view(unlabeled, occluded, target, score_mask, role))
        stats = {"kept_fraction": float(score_mask.mean())}
        return out[0], out[1], stats
