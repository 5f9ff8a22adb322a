"""Occlusion augmentations driven by pseudo keypoints, applied to easy-view input images.

* :func:`cut_occlude` — SSCO (SSPCM, Huang et al. 2023): per image, cut square patches around
  joints of another image of the batch and paste them centred on this image's joints.
* :func:`joint_cutout` — Joint Cutout (Dual Network, Xie et al. 2021): erase square patches
  centred on randomly chosen joints.

Both only change the images; the target heatmaps stay as they are (the occluded joint must
still be predicted where it was). Keypoints are ``(x, y)`` in INPUT space: x indexes columns,
y indexes rows (the reference SSCO code swaps them, which moves patches to the transposed
position; we do not).

Patch sizes are given in pixels at an input height of 256 (the paper's 256x192) and scale
linearly with the input height H: ``half = round(h0 * H / 256)`` for ``h0`` drawn uniformly
from the integers ``[lo, hi)`` (as ``torch.randint``, so (10, 20) gives 10..19 like the
reference), and the centre jitter is ``N(0, (jitter_sigma * H / 256)^2)``. At 256x192 and
256x256 this is exactly the reference's fixed-pixel behaviour.

A patch of half-size r centred on (cx, cy) covers columns cx-r..cx+r and rows cy-r..cy+r
(inclusive, 2r+1 pixels). Boxes in the info objects are ``(x0, y0, x1, y1)`` in input pixels
with exclusive ends, i.e. ``images[i, :, y0:y1, x0:x1]``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)

REFERENCE_INPUT_HEIGHT = 256


@dataclass(frozen=True)
class SSCOConfig:
    """Knobs of SSCO and Joint Cutout.

    Attributes:
        num_pairs: joint pairs (j, j') pasted per image (paper: 2).
        half_size_range: [lo, hi) patch half-size in px at input height 256 (paper: 10..19).
        jitter_sigma: std of the patch-centre jitter in px at input height 256 (paper: 10).
        num_joints_real: only channels 0..num_joints_real-1 are used (17 for COCO; the
            reference nets carry 24 channels, the extra ones are not real joints).
        cutout_joints: joints erased per image by Joint Cutout (Dual Network configs: 5).
    """

    num_pairs: int = 2
    half_size_range: tuple[int, int] = (10, 20)
    jitter_sigma: float = 10.0
    num_joints_real: int = 17
    cutout_joints: int = 5

    def __post_init__(self) -> None:
        lo, hi = self.half_size_range
        if not 0 <= lo < hi:
            raise ValueError(f"half_size_range must satisfy 0 <= lo < hi, got {self.half_size_range}")
        if self.num_pairs < 0 or self.cutout_joints < 0 or self.num_joints_real < 1:
            raise ValueError(f"invalid counts in {self}")
        if self.jitter_sigma < 0:
            raise ValueError(f"jitter_sigma must be >= 0, got {self.jitter_sigma}")


@dataclass
class CutOccludeInfo:
    """What :func:`cut_occlude` did (CPU tensors, input space).

    Attributes:
        partner: (N,) int64 index of the image patches were cut from (never the image itself).
        joints: (N, P, 2) int64 (j, j'): destination joint in this image, source joint in partner.
        half_size: (N, P) int64 patch half-size in px (already scaled to the input size).
        src_boxes: (N, P, 4) int64 (x0, y0, x1, y1) region copied from the partner image.
        dst_boxes: (N, P, 4) int64 (x0, y0, x1, y1) region written in this image (same size).
        pasted: (N, P) bool, False where the pair was skipped (joint off-image / nothing fits).
    """

    partner: torch.Tensor
    joints: torch.Tensor
    half_size: torch.Tensor
    src_boxes: torch.Tensor
    dst_boxes: torch.Tensor
    pasted: torch.Tensor


@dataclass
class JointCutoutInfo:
    """What :func:`joint_cutout` did (CPU tensors, input space).

    Attributes:
        joints: (N, P) int64 erased joint per slot.
        boxes: (N, P, 4) int64 (x0, y0, x1, y1) erased region (clipped to the image).
        erased: (N, P) bool, False where the joint was off-image or the box was empty.
    """

    joints: torch.Tensor
    boxes: torch.Tensor
    erased: torch.Tensor


def _check(images: torch.Tensor, kpts_in: torch.Tensor) -> None:
    if images.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    if kpts_in.dim() != 3 or kpts_in.shape[0] != images.shape[0] or kpts_in.shape[-1] < 2:
        raise ValueError(
            f"kpts_in must be (N, K, 2) with N={images.shape[0]}, got shape {tuple(kpts_in.shape)}"
        )


def _scale(images: torch.Tensor) -> float:
    return images.shape[-2] / REFERENCE_INPUT_HEIGHT


def _draw_half_sizes(
    shape: tuple[int, ...], cfg: SSCOConfig, scale: float, g: torch.Generator
) -> torch.Tensor:
    """Integer half-sizes in [lo, hi) at height 256, scaled to the input; CPU int64."""
    lo, hi = cfg.half_size_range
    h0 = torch.randint(lo, hi, shape, generator=g, device=g.device).cpu()
    return torch.round(h0.double() * scale).long()


def _jittered_centres(xy: torch.Tensor, sigma: float, g: torch.Generator) -> torch.Tensor:
    """(..., 2) float (x, y) -> (..., 2) int64 pixel centres after N(0, sigma^2) jitter."""
    noise = torch.randn(xy.shape, generator=g, device=g.device, dtype=torch.float64).cpu()
    return torch.floor(xy.double() + noise * sigma + 0.5).long()


def _inside(xy: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(..., 2) float (x, y) -> (...) bool: finite and within the pixel grid."""
    x, y = xy[..., 0], xy[..., 1]
    finite = torch.isfinite(x) & torch.isfinite(y)
    return finite & (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)


def _box_mask(boxes: torch.Tensor, height: int, width: int, device: torch.device) -> torch.Tensor:
    """(..., 4) int64 (x0, y0, x1, y1) boxes -> (..., H, W) bool masks."""
    boxes = boxes.to(device)
    rows = torch.arange(height, device=device)
    cols = torch.arange(width, device=device)
    in_rows = (rows >= boxes[..., 1:2]) & (rows < boxes[..., 3:4])  # (..., H)
    in_cols = (cols >= boxes[..., 0:1]) & (cols < boxes[..., 2:3])  # (..., W)
    return in_rows[..., :, None] & in_cols[..., None, :]


def _clipped_offsets(
    src: torch.Tensor, dst: torch.Tensor, half: torch.Tensor, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-axis offset range [lo, hi] (inclusive) around the centres that exists in both images."""
    lo = torch.maximum(-half, torch.maximum(-src, -dst))
    hi = torch.minimum(half, torch.minimum(size - 1 - src, size - 1 - dst))
    return lo, hi


def _paste_from_partner(
    out: torch.Tensor,
    source: torch.Tensor,
    partner: torch.Tensor,
    src_boxes: torch.Tensor,
    dst_boxes: torch.Tensor,
    pasted: torch.Tensor,
) -> torch.Tensor:
    """Copy source[partner[i]] box src_boxes[i] into out[i] at dst_boxes[i], for all i at once.

    Args:
        out: (N, C, H, W) images being written.
        source: (N, C, H, W) unmodified images patches are read from.
        partner: (N,) int64; src_boxes, dst_boxes: (N, 4) same-size boxes; pasted: (N,) bool.
    """
    n, _, height, width = out.shape
    device = out.device
    shift = (src_boxes[:, :2] - dst_boxes[:, :2]).to(device)  # (N, 2) (dx, dy)
    rows = (torch.arange(height, device=device)[None, :] + shift[:, 1:2]).clamp(0, height - 1)
    cols = (torch.arange(width, device=device)[None, :] + shift[:, 0:1]).clamp(0, width - 1)
    gathered = source[partner.to(device)[:, None, None], :, rows[:, :, None], cols[:, None, :]]
    gathered = gathered.permute(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
    mask = _box_mask(dst_boxes, height, width, device) & pasted.to(device)[:, None, None]
    return torch.where(mask[:, None], gathered, out)


@torch.no_grad()
def cut_occlude(
    images: torch.Tensor,
    kpts_in: torch.Tensor,
    generator: torch.Generator,
    cfg: SSCOConfig = SSCOConfig(),  # noqa: B008 - frozen dataclass, safe as a default
) -> tuple[torch.Tensor, CutOccludeInfo]:
    """SSCO: paste patches cut around another image's joints onto this image's joints.

    For each image i: a partner p(i) != i is drawn uniformly among the other images; for each
    of ``cfg.num_pairs`` slots, joints j (here) and j' (partner) are drawn uniformly (with
    replacement) among the first ``num_joints_real`` channels; a square patch of half-size r
    around partner's joint j' is copied and pasted centred on joint j. Both centres are
    jittered independently by N(0, sigma^2) as in the reference. Patches are clipped
    consistently: only offsets that exist in both the source and the destination image are
    copied (no zero fill). Pairs where either joint lies outside the image (or is not finite,
    e.g. a masked joint moved off-image) are skipped. Slots are applied in order (a later patch
    may cover an earlier one); sources are always read from the unmodified batch. Target
    heatmaps are unchanged by design. Deterministic given the generator's state.

    Args:
        images: (N, C, H, W) input-space images (normalised float; any dtype works).
        kpts_in: (N, K, >=2) pseudo keypoints (x, y) in input space of these images.
        generator: source of all randomness (CPU or the images' device).
        cfg: see :class:`SSCOConfig`.

    Returns:
        (N, C, H, W) new images (the input is not modified) and a :class:`CutOccludeInfo`.
    """
    _check(images, kpts_in)
    n, _, height, width = images.shape
    num_real = min(cfg.num_joints_real, kpts_in.shape[1])
    p = cfg.num_pairs
    g = generator
    scale = _scale(images)

    partner = torch.arange(n)
    if n > 1:
        offset = torch.randint(1, n, (n,), generator=g, device=g.device).cpu()
        partner = (partner + offset) % n
    joints = torch.randint(0, num_real, (n, p, 2), generator=g, device=g.device).cpu()
    half = _draw_half_sizes((n, p), cfg, scale, g)

    xy = kpts_in[..., :2].detach().to("cpu", torch.float64)  # (N, K, 2)
    rows_n = torch.arange(n)[:, None]
    dst_xy = xy[rows_n, joints[..., 0]]  # (N, P, 2)
    src_xy = xy[partner[:, None], joints[..., 1]]  # (N, P, 2)
    valid = _inside(dst_xy, height, width) & _inside(src_xy, height, width) & (n > 1)
    both = torch.stack([src_xy, dst_xy], dim=2).where(valid[..., None, None], 0.0)  # (N, P, 2, 2)
    centres = _jittered_centres(both, cfg.jitter_sigma * scale, g)
    src_c, dst_c = centres[:, :, 0], centres[:, :, 1]  # (N, P, 2) int64

    lo_x, hi_x = _clipped_offsets(src_c[..., 0], dst_c[..., 0], half, width)
    lo_y, hi_y = _clipped_offsets(src_c[..., 1], dst_c[..., 1], half, height)
    pasted = valid & (lo_x <= hi_x) & (lo_y <= hi_y)
    offsets = torch.stack([lo_x, lo_y, hi_x + 1, hi_y + 1], dim=-1)  # (N, P, 4)
    src_boxes = offsets + src_c.repeat(1, 1, 2)
    dst_boxes = offsets + dst_c.repeat(1, 1, 2)
    src_boxes[~pasted] = 0
    dst_boxes[~pasted] = 0

    out = images.detach().clone()
    for slot in range(p):  # num_pairs is a small constant (2); the batch is vectorised
        out = _paste_from_partner(
            out, images, partner, src_boxes[:, slot], dst_boxes[:, slot], pasted[:, slot]
        )
    log.debug("cut_occlude: %d of %d patches pasted", int(pasted.sum()), pasted.numel())
    info = CutOccludeInfo(
        partner=partner,
        joints=joints,
        half_size=half,
        src_boxes=src_boxes,
        dst_boxes=dst_boxes,
        pasted=pasted,
    )
    return out, info


@torch.no_grad()
def joint_cutout(
    images: torch.Tensor,
    kpts_in: torch.Tensor,
    generator: torch.Generator,
    cfg: SSCOConfig = SSCOConfig(),  # noqa: B008 - frozen dataclass, safe as a default
) -> tuple[torch.Tensor, JointCutoutInfo]:
    """Joint Cutout (Dual Network baseline): zero square patches centred on random joints.

    Per image, ``cfg.cutout_joints`` joints are drawn uniformly with replacement among the
    first ``num_joints_real`` channels; each patch centre is the joint jittered by
    N(0, sigma^2), its half-size is drawn from ``half_size_range`` (scaled as in the module
    docstring), the box is clipped to the image and filled with 0 — the ImageNet mean colour
    in normalised input space, as in the reference. Joints outside the image are skipped.
    Target heatmaps are unchanged. Deterministic given the generator's state.

    Args:
        images: (N, C, H, W) input-space images (normalised float).
        kpts_in: (N, K, >=2) pseudo keypoints (x, y) in input space.
        generator: source of all randomness.
        cfg: see :class:`SSCOConfig`.

    Returns:
        (N, C, H, W) new images (the input is not modified) and a :class:`JointCutoutInfo`.
    """
    _check(images, kpts_in)
    n, _, height, width = images.shape
    num_real = min(cfg.num_joints_real, kpts_in.shape[1])
    g = generator
    scale = _scale(images)

    joints = torch.randint(0, num_real, (n, cfg.cutout_joints), generator=g, device=g.device).cpu()
    half = _draw_half_sizes((n, cfg.cutout_joints), cfg, scale, g)
    xy = kpts_in[..., :2].detach().to("cpu", torch.float64)[torch.arange(n)[:, None], joints]  # (N, P, 2)
    inside = _inside(xy, height, width)
    centre = _jittered_centres(xy.where(inside[..., None], 0.0), cfg.jitter_sigma * scale, g)

    x0 = (centre[..., 0] - half).clamp(0, width)
    x1 = (centre[..., 0] + half + 1).clamp(0, width)
    y0 = (centre[..., 1] - half).clamp(0, height)
    y1 = (centre[..., 1] + half + 1).clamp(0, height)
    erased = inside & (x0 < x1) & (y0 < y1)
    boxes = torch.stack([x0, y0, x1, y1], dim=-1) * erased[..., None]

    mask = _box_mask(boxes, height, width, images.device).any(dim=1)  # (N, H, W)
    out = images.detach().masked_fill(mask[:, None], 0)
    return out, JointCutoutInfo(joints=joints, boxes=boxes, erased=erased)
