"""Stages 2 and 3 of the SSPCM step: PCM-corrected pseudo labels and the hard views.

``PseudoLabeler`` turns the teachers' easy-view heatmaps into, for each network role, a hard
view (cut-occlude or Joint Cutout, then the hard affine) with its consistency target mapped
into that view through the view matrices. It is what the pseudo-label actor hosts.

With a store directory configured, every SSPCM step also appends its pseudo labels to the
Parquet pseudo-label store (:mod:`pipeline.store.pseudo_label_store`): each teacher's keypoints and
PCM's corrected keypoints in image coordinates, per-joint PI and weights, and the corrected
heatmaps. When an epoch ends, :meth:`PseudoLabeler.close_epoch` compacts its writer's step files
into one file. In ``cache`` mode, the previous-epoch teachers are not run: their keypoints are read
from last epoch's partition and rendered as Gaussians in the current easy view
(:meth:`PseudoLabeler.previous_from_store`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.geometry.heatmaps import HeatmapCodec, get_max_preds, heatmap_to_image
from pipeline.geometry.views import compose_affine, transform_points, warp_batch, warp_heatmaps
from pipeline.method.pcm import PCMConfig, PCMOutput, correct_pseudo_labels, pcm_statistics
from pipeline.method.ssco import SSCOConfig, cut_occlude, joint_cutout

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
    sigma: float = 2.0  # Gaussian sigma (heatmap px) of labels rendered from cached keypoints
    decode_method: str = "argmax"  # how stored keypoints are read off heatmaps
    store_dir: str | None = None  # the pseudo-label store; None writes nothing
    store_heatmaps: bool = True  # also store PCM's corrected heatmaps (compactly encoded)
    # Rows per compacted store file when an epoch closes (0 = one file per writer).
    store_rows_per_file: int = 0
    # Dual Network: weight 1 on every joint (reference) or SSPCM's score mask (True).
    dual_score_mask: bool = False
    # Patch centres of SSCO / Joint Cutout from every joint (reference) or only kept ones.
    occlusion_joints: str = "all"
    # Lane of a data-parallel run (None = the only one): the store writer id, and part of the
    # seed of SSCO's draws (each lane cut-occludes within its shard of the batch, as each GPU of
    # the reference does within its own batch).
    lane: int | None = None
    lanes: int = 1  # lanes of the run (writers of the store)


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
        if cfg.occlusion_joints not in ("all", "kept"):
            raise ValueError(f"occlusion_joints must be 'all' or 'kept', got {cfg.occlusion_joints!r}")
        self.cfg = cfg
        self.codec = HeatmapCodec(
            tuple(cfg.input_size), tuple(cfg.heatmap_size), float(cfg.sigma), cfg.decode_method
        )
        self._store = None

    @property
    def store(self):
        """The pseudo-label store (opened on first use), or None when none is configured."""
        if self._store is None and self.cfg.store_dir is not None:
            from pipeline.store.pseudo_label_store import PseudoLabelStore

            hm = tuple(self.cfg.heatmap_size) if self.cfg.store_heatmaps else None
            self._store = PseudoLabelStore(
                self.cfg.store_dir, num_joints=len(self.cfg.flip_indices), heatmap_size=hm
            )
        return self._store

    # ---- image-space keypoints <-> easy-view heatmaps ---------------------------------
    def keypoints_in_image(self, heatmaps: torch.Tensor, unlabeled: dict) -> np.ndarray:
        """(N,K,h,w) easy-view heatmaps -> (N,K,3) float32 (x, y, peak) in image space, joints in
        skeleton order (flipped views' channels swapped back)."""
        kpts_hm, scores = self.codec.decode(np.asarray(torch.as_tensor(heatmaps).float().cpu()))
        xy = heatmap_to_image(
            np.asarray(kpts_hm),
            np.asarray(torch.as_tensor(unlabeled["matrix"]).double()),
            self.cfg.input_size,
            self.cfg.heatmap_size,
            flipped=np.asarray(torch.as_tensor(unlabeled["flipped"]).bool()),
            flip_indices=self.cfg.flip_indices,
        )
        return np.concatenate([xy, np.asarray(scores, dtype=np.float32)[..., None]], axis=-1)

    def render_in_view(self, kpts_img: np.ndarray, unlabeled: dict) -> torch.Tensor:
        """(N,K,3) image-space (x, y, confidence) -> (N,K,h,w) Gaussians in each easy view.

        Each joint is moved into the view by the view matrix (flipped views take the partner's
        channel), rendered with the codec's sigma and scaled by its confidence clipped to [0, 1].
        Joints with a non-finite position render as zeros.
        """
        kpts_img = np.asarray(kpts_img, dtype=np.float64)
        matrices = np.asarray(torch.as_tensor(unlabeled["matrix"]).double())
        flipped = np.asarray(torch.as_tensor(unlabeled["flipped"]).bool())
        flip = np.asarray(self.cfg.flip_indices)
        kpts_in = np.stack([transform_points(k[:, :2], m) for k, m in zip(kpts_img, matrices)])
        conf = np.clip(np.nan_to_num(kpts_img[..., 2], nan=0.0), 0.0, 1.0)
        kpts_in[flipped] = kpts_in[flipped][:, flip]
        conf[flipped] = conf[flipped][:, flip]
        finite = np.isfinite(kpts_in).all(-1)
        heatmaps, _ = self.codec.encode_batch(np.nan_to_num(kpts_in, nan=-1e4), finite)
        return torch.as_tensor(np.asarray(heatmaps) * conf[..., None, None], dtype=torch.float32)

    def previous_from_store(self, unlabeled: dict, epoch: int) -> tuple[torch.Tensor | None, ...]:
        """``cache`` mode: A_{t-1} and B_{t-1} from last epoch's stored keypoints, rendered in the
        current easy view, (N,K,h,w) each; (None, None) in the first epoch or when the previous
        epoch has no partition. Persons absent from last epoch are all-NaN maps, which
        :meth:`sspcm_targets` replaces by the current teachers (first-epoch rule per person)."""
        if epoch <= 0 or self.store is None or (epoch - 1) not in self.store.epochs():
            return None, None
        found = self.store.read_keypoints(epoch - 1, np.asarray(torch.as_tensor(unlabeled["index"])))
        out = []
        for key in ("kpts_a", "kpts_b"):
            hm = self.render_in_view(found[key], unlabeled)
            hm[torch.from_numpy(~np.asarray(found["found"], dtype=bool))] = float("nan")
            out.append(hm)
        return out[0], out[1]

    def forget_from(self, epoch: int, step: int) -> int:
        """Before a restored run relabels them: drop the stored labels of steps >= ``step`` of
        ``epoch`` and of later epochs (see ``PseudoLabelStore.forget_from``); 0 without a store."""
        return 0 if self.store is None else self.store.forget_from(epoch, step)

    def close_epoch(self, epoch: int) -> int:
        """At the end of ``epoch``: compact its pseudo labels in the store
        (``PseudoLabelStore.compact``), this lane's writer only (each lane compacts its own;
        without a lane, every writer). Lane 0 also takes the writers beyond this run's lanes
        (left by an earlier run with more lanes). Returns the number of files written; 0
        without a store."""
        if self.store is None:
            return 0
        cap = self.cfg.store_rows_per_file
        if self.cfg.lane is None:
            return len(self.store.compact(epoch, None, cap))
        writers = [self.cfg.lane]
        if self.cfg.lane == 0:
            writers += [w for w in self.store.writers(epoch) if w >= self.cfg.lanes]
        return sum(len(self.store.compact(epoch, w, cap)) for w in writers)

    def _write_store(self, unlabeled: dict, epoch: int, step: int, hm_a, hm_b, pcm: PCMOutput) -> None:
        from pipeline.store.pseudo_label_store import PseudoLabelRows

        n = len(unlabeled["images"])
        files = unlabeled.get("image_file")
        rows = PseudoLabelRows(
            image_id=np.asarray(torch.as_tensor(unlabeled["image_id"]), dtype=np.int64),
            person_index=np.asarray(torch.as_tensor(unlabeled["index"]), dtype=np.int64),
            image_file=[str(f) for f in files] if files is not None else [""] * n,
            bbox=np.asarray(torch.as_tensor(unlabeled["bbox"]), dtype=np.float32),
            kpts_a=self.keypoints_in_image(hm_a, unlabeled),
            kpts_b=self.keypoints_in_image(hm_b, unlabeled),
            pi=_in_skeleton_order(pcm.pi, unlabeled, self.cfg.flip_indices),
            kpts_corrected=self.keypoints_in_image(pcm.heatmaps, unlabeled),
            weights=_in_skeleton_order(pcm.weights, unlabeled, self.cfg.flip_indices),
            heatmaps=np.asarray(pcm.heatmaps.float().cpu()) if self.cfg.store_heatmaps else None,
            matrix=np.asarray(torch.as_tensor(unlabeled["matrix"]).double()),
            flipped=np.asarray(torch.as_tensor(unlabeled["flipped"]).bool()),
        )
        self.store.write_batch(epoch, step, rows, writer=self.cfg.lane)

    def _generator(self, step: int, role: str) -> torch.Generator:
        g = torch.Generator()
        lane = self.cfg.lane or 0
        g.manual_seed(int(self.cfg.seed) * 1_000_003 + int(step) * 7 + ROLE_INDEX[role] + 104_729 * lane)
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
        epoch: int = 0,
    ) -> tuple[dict, dict, dict, dict]:
        """Stages 2-3 of SSPCM: PCM, then SSCO + hard affine per role.

        A learns from B_t on a view cut-occluded with B's keypoints, B from A_t with A's
        keypoints, C from the PCM label with PCM's keypoints. Previous-epoch maps that are NaN
        (a person with no cached label) fall back to the current teachers. With a store, the
        batch's pseudo labels are written to partition ``epoch`` under key ``step``.

        Returns:
            (hard_a, hard_b, hard_c, stats) — hard batches as in :meth:`hard_view`.
        """
        if hm_a_prev is not None and hm_b_prev is not None:
            hm_a_prev = torch.where(torch.isnan(hm_a_prev), hm_a, hm_a_prev)
            hm_b_prev = torch.where(torch.isnan(hm_b_prev), hm_b, hm_b_prev)
        pcm: PCMOutput = correct_pseudo_labels(hm_a, hm_b, hm_a_prev, hm_b_prev, self.cfg.pcm)
        if self.store is not None:
            self._write_store(unlabeled, epoch, step, hm_a, hm_b, pcm)
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
            kpts = peak_keypoints_in(target, self._occlusion_weights(weights), isz, hsz)
            occluded, _ = cut_occlude(images, kpts, self._generator(step, role), self.cfg.ssco)
            out.append(self.hard_view(unlabeled, occluded, target, weights, role))
        stats = pcm_statistics(pcm)
        return out[0], out[1], out[2], stats

    def _occlusion_weights(self, weights: torch.Tensor) -> torch.Tensor:
        """Which joints may centre an SSCO / Joint Cutout patch: all (reference) or kept ones."""
        return torch.ones_like(weights) if self.cfg.occlusion_joints == "all" else weights

    def dual_targets(
        self, hm_a: torch.Tensor, hm_b: torch.Tensor, unlabeled: dict, step: int
    ) -> tuple[dict, dict, dict]:
        """Dual Network (Xie et al. 2021): each teacher learns from the other's easy-view heatmaps
        on a Joint-Cutout + hard-affine view, every joint with weight 1 (the reference; with
        ``dual_score_mask`` only joints whose mean teacher peak passes PCM's score threshold).
        Returns (hard_a, hard_b, stats)."""
        score_mask = ((hm_a.amax(dim=(2, 3)) + hm_b.amax(dim=(2, 3))) / 2 > self.cfg.pcm.score_thr).float()
        weights = score_mask if self.cfg.dual_score_mask else torch.ones_like(score_mask)
        images = torch.as_tensor(unlabeled["images"])
        isz, hsz = self.cfg.input_size, self.cfg.heatmap_size
        out = []
        for role, target in (("teacher_a", hm_b), ("teacher_b", hm_a)):
            kpts = peak_keypoints_in(target, self._occlusion_weights(score_mask), isz, hsz)
            occluded, _ = joint_cutout(images, kpts, self._generator(step, role), self.cfg.ssco)
            out.append(self.hard_view(unlabeled, occluded, target, weights, role))
        stats = {"kept_fraction": float(weights.mean()), "score_passed_fraction": float(score_mask.mean())}
        return out[0], out[1], stats


def _in_skeleton_order(values: torch.Tensor, unlabeled: dict, flip_indices) -> np.ndarray:
    """(N,K) per-channel values of easy views -> skeleton joint order (flipped views swapped back)."""
    out = np.asarray(values.float().cpu(), dtype=np.float32).copy()
    flipped = np.asarray(torch.as_tensor(unlabeled["flipped"]).bool())
    out[flipped] = out[flipped][:, np.asarray(flip_indices)]
    return out
