"""Views: affine crops of an image, their augmentation, and moving heatmaps between views.

Affine convention (pixel centres at integer coordinates in every space, no half-pixel shifts):
``get_affine_matrix(center, size, rot, (W, H))`` maps image space to input space so that the
region of ``size`` = (w, h) image px around ``center``, rotated, covers the output rectangle
edge to edge: ``center`` lands on ``((W - 1) / 2, (H - 1) / 2)`` and a point ``w / 2`` to its right
lands on ``W - 1/2`` (the outer edge of the last pixel column); the scale is ``W / w`` in x and
``H / h`` in y. A positive ``rotation_deg`` turns the image content counter-clockwise as seen in
the crop (the SimpleBaseline sense): with 90 degrees, a point right of the centre in the image
appears above the centre in the crop. A flipped view mirrors the crop after all that:
``x_in -> W - 1 - x_in``, and (``docs/conventions.md``) swaps left/right channels.

Matrices are ``(2, 3)`` float64 with ``[x_out, y_out] = M @ [x, y, 1]``; batched helpers accept
``(..., 2, 3)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import cv2
import numpy as np
import torch
import torch.nn.functional as F

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


# --- boxes and matrices -------------------------------------------------------------------------


def box_to_center_size(
    bbox_xywh: Sequence[float] | np.ndarray, aspect_ratio: float, padding: float = 1.25
) -> tuple[np.ndarray, np.ndarray]:
    """COCO box (x, y, w, h) in image space -> ``center`` (2,), ``size`` (2,) float64 image px.

    The box is enlarged (never shrunk) to ``aspect_ratio`` = W / H of the network input, then
    both sides are multiplied by ``padding``. ``center = (x + w / 2, y + h / 2)``.
    """
    box = np.asarray(bbox_xywh, dtype=np.float64).reshape(-1)
    if box.shape != (4,) or not np.all(np.isfinite(box)):
        raise ValueError(f"box_to_center_size: bbox_xywh must be 4 finite numbers, got {bbox_xywh!r}")
    x, y, w, h = box
    if w <= 0 or h <= 0:
        raise ValueError(f"box_to_center_size: bbox_xywh {box.tolist()} has non-positive width or height")
    if aspect_ratio <= 0:
        raise ValueError(f"box_to_center_size: aspect_ratio must be > 0, got {aspect_ratio}")
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    else:
        w = h * aspect_ratio
    center = np.array([x + box[2] / 2.0, y + box[3] / 2.0], dtype=np.float64)
    return center, np.array([w, h], dtype=np.float64) * padding


def get_affine_matrix(
    center: Sequence[float] | np.ndarray,
    size: Sequence[float] | np.ndarray,
    rotation_deg: float,
    output_size: tuple[int, int],
    flip: bool = False,
) -> np.ndarray:
    """(2, 3) float64 matrix image space -> input space (see the module docstring).

    Args:
        center: (2,) region centre, image px.
        size: (2,) region (w, h), image px, before rotation.
        rotation_deg: counter-clockwise rotation of the content as seen in the crop.
        output_size: (W, H) of the crop.
        flip: mirror the crop horizontally (``x_in -> W - 1 - x_in``).
    """
    c = np.asarray(center, dtype=np.float64).reshape(2)
    s = np.asarray(size, dtype=np.float64).reshape(2)
    if not np.all(s > 0):
        raise ValueError(f"get_affine_matrix: size must be positive, got {s.tolist()}")
    out_w, out_h = output_size
    theta = np.deg2rad(rotation_deg)
    cos, sin = np.cos(theta), np.sin(theta)
    # Counter-clockwise on screen with y down: (1, 0) -> (cos, -sin).
    rot = np.array([[cos, sin], [-sin, cos]])
    lin = np.diag([out_w / s[0], out_h / s[1]]) @ rot
    out_c = np.array([(out_w - 1) / 2.0, (out_h - 1) / 2.0])
    m = np.concatenate([lin, (out_c - lin @ c)[:, None]], axis=1)
    if flip:
        m = compose_affine(flip_matrix(out_w), m)
    return m


def flip_matrix(width: int) -> np.ndarray:
    """(2, 3) horizontal mirror of a crop of ``width`` px: ``x -> width - 1 - x``."""
    return np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0]])


def invert_affine(m: ArrayT) -> ArrayT:
    """Inverse of (..., 2, 3) affine matrices (numpy or torch)."""
    lin, t = m[..., :2, :2], m[..., :2, 2:]
    if isinstance(m, torch.Tensor):
        inv = torch.linalg.inv(lin)
        return torch.cat([inv, -inv @ t], dim=-1)
    inv = np.linalg.inv(lin)
    return np.concatenate([inv, -inv @ t], axis=-1)


def compose_affine(m2: ArrayT, m1: ArrayT) -> ArrayT:
    """(..., 2, 3) matrix applying ``m1`` first, then ``m2`` (numpy or torch, broadcast)."""
    lin = m2[..., :2, :2] @ m1[..., :2, :2]
    t = m2[..., :2, :2] @ m1[..., :2, 2:] + m2[..., :2, 2:]
    if isinstance(m2, torch.Tensor):
        return torch.cat([lin, t], dim=-1)
    return np.concatenate([lin, t], axis=-1)


def transform_points(points: ArrayT, m: Any) -> ArrayT:
    """Apply affine matrices to points: points ``(*B, *P, 2)``, m ``(*B, 2, 3)`` -> ``(*B, *P, 2)``.

    The batch dims of ``m`` align with the leading dims of ``points`` (e.g. points (N, K, 2) with
    m (N, 2, 3), or any points with one (2, 3) matrix). Works for numpy and torch (``m`` is moved
    to the points' kind, device and dtype); floating numpy points keep their dtype.
    """
    if isinstance(points, torch.Tensor):
        mat = torch.as_tensor(m).to(device=points.device, dtype=points.dtype)
    else:
        mat = np.asarray(m, dtype=np.float64)
    if mat.shape[-2:] != (2, 3) or points.shape[-1] != 2:
        raise ValueError(
            f"transform_points: need points (..., 2) and m (..., 2, 3), got "
            f"{tuple(points.shape)} and {tuple(mat.shape)}"
        )
    n_batch = mat.ndim - 2
    n_extra = points.ndim - 1 - n_batch
    if n_extra < 0 or tuple(points.shape[:n_batch]) != tuple(mat.shape[:n_batch]):
        raise ValueError(
            f"transform_points: batch dims of m {tuple(mat.shape)} do not lead points {tuple(points.shape)}"
        )
    bshape = tuple(mat.shape[:n_batch]) + (1,) * n_extra
    lin = mat[..., :2, :2].reshape(bshape + (2, 2))
    t = mat[..., :2, 2].reshape(bshape + (2,))
    if isinstance(points, torch.Tensor):
        return (lin @ points[..., None])[..., 0] + t
    pts = np.asarray(points)
    out = (lin @ pts[..., None].astype(np.float64))[..., 0] + t
    return out.astype(pts.dtype) if np.issubdtype(pts.dtype, np.floating) else out


def heatmap_matrix(m_img_to_in: ArrayT, input_size: tuple[int, int], heatmap_size: tuple[int, int]) -> ArrayT:
    """(..., 2, 3) image -> heatmap space: ``x_hm = x_in * w / W``, ``y_hm = y_in * h / H``."""
    scale = [[heatmap_size[0] / input_size[0]], [heatmap_size[1] / input_size[1]]]
    if isinstance(m_img_to_in, torch.Tensor):
        return m_img_to_in * torch.tensor(scale, dtype=m_img_to_in.dtype, device=m_img_to_in.device)
    return np.asarray(m_img_to_in, dtype=np.float64) * np.array(scale)


# --- views --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ViewParams:
    """Where a view looks: region ``center``/``size`` (image px), rotation, zoom, mirror.

    ``scale`` multiplies ``size`` (scale > 1 zooms out: the person looks smaller).
    """

    center: tuple[float, float]
    size: tuple[float, float]
    rotation_deg: float = 0.0
    scale: float = 1.0
    flip: bool = False

    def matrix(self, output_size: tuple[int, int]) -> np.ndarray:
        """(2, 3) float64 image -> input space matrix of this view."""
        size = np.asarray(self.size, dtype=np.float64) * self.scale
        return get_affine_matrix(self.center, size, self.rotation_deg, output_size, self.flip)


@dataclass
class View:
    """A crop: ``image`` (H, W, 3) uint8 in input space, ``matrix`` (2, 3) image -> input space.

    ``flipped`` says the crop is mirrored, so its keypoint/heatmap channels are flip-swapped.
    """

    image: np.ndarray
    matrix: np.ndarray
    flipped: bool


def warp_image(image: np.ndarray, m: np.ndarray, output_size: tuple[int, int]) -> np.ndarray:
    """Warp an (H, W, C) image with a (2, 3) matrix src px -> dst px into (H_out, W_out, C).

    Bilinear, constant 0 outside; dst pixel (x, y) samples src at ``invert_affine(m) @ (x, y, 1)``.
    """
    if image.ndim not in (2, 3):
        raise ValueError(f"warp_image: image must be (H, W) or (H, W, C), got {image.shape}")
    return cv2.warpAffine(
        image,
        np.asarray(m, dtype=np.float64),
        (int(output_size[0]), int(output_size[1])),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def make_view(image: np.ndarray, params: ViewParams, output_size: tuple[int, int]) -> View:
    """Crop ``image`` (H, W, 3) uint8 image space into a View of ``output_size`` (W, H)."""
    m = params.matrix(output_size)
    return View(image=warp_image(image, m, output_size), matrix=m, flipped=bool(params.flip))


# --- augmentation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AugmentRanges:
    """Random view ranges (paper): rotation clip(N(0, sigma), +-max) with probability
    ``rotation_prob``, scale clip(N(1, scale_sigma), scale_min..scale_max), flip with ``flip_prob``.
    """

    rotation_sigma: float = 30.0
    rotation_max: float = 60.0
    rotation_prob: float = 0.6
    scale_sigma: float = 0.25
    scale_min: float = 0.75
    scale_max: float = 1.25
    flip_prob: float = 0.5

    @classmethod
    def from_config(cls, cfg: Any, hard: bool = False) -> AugmentRanges:
        """From a ``pipeline.config.AugmentConfig``-like object; ``hard`` = hard affine (no flip)."""
        return cls(
            rotation_sigma=cfg.rotation_sigma,
            rotation_max=cfg.rotation_max,
            rotation_prob=cfg.hard_rotation_prob if hard else cfg.easy_rotation_prob,
            scale_sigma=cfg.scale_sigma,
            scale_min=cfg.scale_min,
            scale_max=cfg.scale_max,
            flip_prob=0.0 if hard else cfg.flip_prob,
        )


EASY_VIEW = AugmentRanges()
# Hard affine: same ranges, rotation with p=0.8, no flip (reference code: on top of the easy view).
HARD_VIEW = AugmentRanges(rotation_prob=0.8, flip_prob=0.0)


def _sample_rotation_scale_flip(rng: np.random.Generator, ranges: AugmentRanges) -> tuple[float, float, bool]:
    """Draw (rotation_deg, scale, flip); always five draws, so the stream does not depend on outcomes."""
    scale = float(
        np.clip(1.0 + ranges.scale_sigma * rng.standard_normal(), ranges.scale_min, ranges.scale_max)
    )
    rot = float(
        np.clip(ranges.rotation_sigma * rng.standard_normal(), -ranges.rotation_max, ranges.rotation_max)
    )
    rotate = rng.random() < ranges.rotation_prob
    flip = rng.random() < ranges.flip_prob
    return (rot if rotate else 0.0), scale, bool(flip)


def sample_view_params(
    rng: np.random.Generator,
    center: Sequence[float] | np.ndarray,
    size: Sequence[float] | np.ndarray,
    ranges: AugmentRanges = EASY_VIEW,
) -> ViewParams:
    """Random ViewParams around ``center``/``size`` (image px) within ``ranges``."""
    rot, scale, flip = _sample_rotation_scale_flip(rng, ranges)
    c = np.asarray(center, dtype=np.float64).reshape(2)
    s = np.asarray(size, dtype=np.float64).reshape(2)
    return ViewParams(
        center=(float(c[0]), float(c[1])),
        size=(float(s[0]), float(s[1])),
        rotation_deg=rot,
        scale=scale,
        flip=flip,
    )


def sample_hard_affine(
    rng: np.random.Generator, input_size: tuple[int, int], ranges: AugmentRanges = HARD_VIEW
) -> np.ndarray:
    """(2, 3) float64 input -> input space matrix: a random rotation/zoom about the crop centre.

    Composing it after an easy view's matrix, ``compose_affine(hard, view.matrix)``, gives the
    hard view's image -> input matrix (the reference applies the hard affine on the easy crop).
    ``ranges.flip_prob`` must be 0: a flip would also need a channel swap the caller cannot see.
    """
    if ranges.flip_prob != 0.0:
        raise ValueError("sample_hard_affine: ranges.flip_prob must be 0 for the hard affine")
    rot, scale, _ = _sample_rotation_scale_flip(rng, ranges)
    w, h = input_size
    center = ((w - 1) / 2.0, (h - 1) / 2.0)
    return get_affine_matrix(center, (w * scale, h * scale), rot, input_size)


# --- flip channels ------------------------------------------------------------------------------


def _index_like(x: ArrayT, flip_indices: Sequence[int] | np.ndarray) -> Any:
    idx = np.asarray(flip_indices, dtype=np.int64)
    return torch.as_tensor(idx, device=x.device) if isinstance(x, torch.Tensor) else idx


def flip_keypoints_channels(kpts: ArrayT, flip_indices: Sequence[int] | np.ndarray) -> ArrayT:
    """(..., K, C) keypoints with joint k replaced by joint ``flip_indices[k]`` (any space)."""
    if kpts.shape[-2] != len(flip_indices):
        raise ValueError(
            f"flip_keypoints_channels: {kpts.shape[-2]} joints, {len(flip_indices)} flip indices"
        )
    return kpts[..., _index_like(kpts, flip_indices), :]


def swap_flip_channels(heatmaps: ArrayT, flip_indices: Sequence[int] | np.ndarray) -> ArrayT:
    """(..., K, h, w) heatmaps with channel k replaced by channel ``flip_indices[k]``."""
    if heatmaps.shape[-3] != len(flip_indices):
        raise ValueError(
            f"swap_flip_channels: {heatmaps.shape[-3]} channels, {len(flip_indices)} flip indices"
        )
    return heatmaps[..., _index_like(heatmaps, flip_indices), :, :]


# --- warping batches of maps --------------------------------------------------------------------


def _as_numpy64(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().to(torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def warp_batch(maps: ArrayT, matrices: Any, output_size: tuple[int, int]) -> ArrayT:
    """Warp (N, C, h_src, w_src) float maps with (N, 2, 3) matrices src px -> dst px.

    Returns (N, C, h, w) for ``output_size`` = (w, h): dst pixel (x, y) samples the src at
    ``invert_affine(m) @ (x, y, 1)``, bilinear, zeros outside (pixel centres at integer
    coordinates, i.e. ``grid_sample(align_corners=True)``). Vectorised over N; torch maps stay on
    their device, numpy maps come back as numpy.
    """
    is_numpy = not isinstance(maps, torch.Tensor)
    x = torch.from_numpy(np.ascontiguousarray(maps)) if is_numpy else maps
    if x.ndim != 4 or not x.is_floating_point():
        raise ValueError(f"warp_batch: maps must be floating (N, C, h, w), got {tuple(x.shape)} {x.dtype}")
    m = _as_numpy64(matrices)
    if m.shape != (x.shape[0], 2, 3):
        raise ValueError(f"warp_batch: matrices must be ({x.shape[0]}, 2, 3), got {m.shape}")
    h_src, w_src = x.shape[-2:]
    if h_src < 2 or w_src < 2:
        raise ValueError(f"warp_batch: maps must be at least 2x2, got {h_src}x{w_src}")
    w_out, h_out = output_size
    # dst px -> normalised src coords in one matrix: N_src @ inv(m), N(x) = 2 x / (w - 1) - 1.
    to_norm = np.array([[2.0 / (w_src - 1), 0.0, -1.0], [0.0, 2.0 / (h_src - 1), -1.0]])
    theta = torch.from_numpy(compose_affine(to_norm, invert_affine(m))).to(device=x.device, dtype=x.dtype)
    ys, xs = torch.meshgrid(
        torch.arange(h_out, device=x.device, dtype=x.dtype),
        torch.arange(w_out, device=x.device, dtype=x.dtype),
        indexing="ij",
    )
    grid = transform_points(torch.stack([xs, ys], dim=-1).expand(x.shape[0], h_out, w_out, 2), theta)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out.numpy() if is_numpy else out


def warp_heatmaps(
    heatmaps: ArrayT,
    src_matrices: Any,
    dst_matrices: Any,
    src_flipped: Any,
    dst_flipped: Any,
    input_size: tuple[int, int],
    heatmap_size: tuple[int, int],
    flip_indices: Sequence[int] | np.ndarray,
) -> ArrayT:
    """Move (N, K, h, w) heatmaps of src views into dst views (heatmap space of each view).

    Path per image: src heatmap px -> src input px -> image -> dst input px -> dst heatmap px,
    through the (N, 2, 3) image -> input matrices; bilinear, zeros outside. Channels are
    flip-swapped for images where ``src_flipped != dst_flipped`` ((N,) bool). Torch heatmaps
    stay on their device; numpy comes back as numpy.
    """
    src = heatmap_matrix(_as_numpy64(src_matrices), input_size, heatmap_size)
    dst = heatmap_matrix(_as_numpy64(dst_matrices), input_size, heatmap_size)
    warped = warp_batch(heatmaps, compose_affine(dst, invert_affine(src)), heatmap_size)
    swap = np.asarray(_as_numpy64(src_flipped) != _as_numpy64(dst_flipped)).reshape(-1)
    if swap.shape != (warped.shape[0],):
        raise ValueError(
            f"warp_heatmaps: src_flipped/dst_flipped must be ({warped.shape[0]},), got {swap.shape}"
        )
    if not swap.any():
        return warped
    swapped = swap_flip_channels(warped, flip_indices)
    if isinstance(warped, torch.Tensor):
        mask = torch.from_numpy(swap).to(warped.device).view(-1, 1, 1, 1)
        return torch.where(mask, swapped, warped)
    return np.where(swap.reshape(-1, 1, 1, 1), swapped, warped)
