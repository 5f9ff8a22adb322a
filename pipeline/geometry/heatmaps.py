"""Heatmap codec: Gaussian targets from keypoints, and keypoints back from heatmaps.

Spaces (``docs/conventions.md``): keypoints to encode are in input space; heatmaps and decoded
keypoints are in heatmap space, ``x_hm = x_in / stride_x`` with ``stride = input_size /
heatmap_size``, pixel centres at integer coordinates. ``heatmap_to_image`` takes decoded
keypoints back to image space through a view's matrix.

Every function accepts numpy arrays or torch tensors (any device) and returns the same kind.
The numerics run in torch; numpy inputs are wrapped without copying where possible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.geometry.views import flip_keypoints_channels, invert_affine, transform_points

DecodeMethod = Literal["argmax", "dark"]


def _to_torch(x: Any, dtype: torch.dtype | None = None) -> tuple[torch.Tensor, bool]:
    """(tensor, was_numpy)."""
    if isinstance(x, torch.Tensor):
        return (x if dtype is None else x.to(dtype)), False
    t = torch.from_numpy(np.ascontiguousarray(x))
    return (t if dtype is None else t.to(dtype)), True


def _back(t: torch.Tensor, was_numpy: bool) -> Any:
    return t.cpu().numpy() if was_numpy else t


def _check_heatmaps(heatmaps: torch.Tensor, fn: str) -> None:
    if heatmaps.ndim != 4 or not heatmaps.is_floating_point():
        raise ValueError(
            f"{fn}: heatmaps must be floating (N, K, h, w), got {tuple(heatmaps.shape)} {heatmaps.dtype}"
        )


# --- encoding -----------------------------------------------------------------------------------


def encode_gaussians(
    kpts_hm: torch.Tensor, valid: torch.Tensor, heatmap_size: tuple[int, int], sigma: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unnormalised Gaussians (peak 1) at sub-pixel heatmap-space positions.

    Args:
        kpts_hm: (..., K, 2) float, heatmap space.
        valid: (..., K) bool, joints to draw.
    Returns:
        heatmaps (..., K, h, w) float32 and weights (..., K) float32. A joint gets weight 0 (and an
        all-zero map) when not valid, not finite, or when its 3-sigma square misses the heatmap.
    """
    w, h = heatmap_size
    mu = kpts_hm.to(torch.float32)
    finite = torch.isfinite(mu).all(dim=-1)
    mu = torch.where(finite[..., None], mu, torch.zeros_like(mu))
    r = 3.0 * sigma
    inside = (
        (mu[..., 0] + r >= 0) & (mu[..., 0] - r <= w - 1) & (mu[..., 1] + r >= 0) & (mu[..., 1] - r <= h - 1)
    )
    weight = (valid.to(torch.bool) & finite & inside).to(torch.float32)
    xs = torch.arange(w, dtype=torch.float32, device=mu.device)
    ys = torch.arange(h, dtype=torch.float32, device=mu.device)
    gx = torch.exp(-((xs - mu[..., 0:1]) ** 2) / (2 * sigma**2))  # (..., K, w)
    gy = torch.exp(-((ys - mu[..., 1:2]) ** 2) / (2 * sigma**2))  # (..., K, h)
    heatmaps = gy[..., :, None] * gx[..., None, :] * weight[..., None, None]
    return heatmaps, weight


# --- decoding: free functions -------------------------------------------------------------------


def get_max_preds(heatmaps: Any) -> tuple[Any, Any]:
    """Integer argmax of (N, K, h, w) heatmaps.

    Returns:
        coords (N, K, 2) float32 heatmap space (x, y) and maxvals (N, K). Unlike SimpleBaseline,
        coords are kept (not zeroed) where the maximum is <= 0; use the score to discard them.
    """
    hm, was_numpy = _to_torch(heatmaps)
    _check_heatmaps(hm, "get_max_preds")
    n, k, _, w = hm.shape
    maxvals, idx = hm.reshape(n, k, -1).max(dim=-1)
    coords = torch.stack([idx % w, torch.div(idx, w, rounding_mode="floor")], dim=-1).to(torch.float32)
    return _back(coords, was_numpy), _back(maxvals, was_numpy)


def _neighbours(hm: torch.Tensor, coords: torch.Tensor, offsets: Sequence[tuple[int, int]]) -> torch.Tensor:
    """Values of (N, K, h, w) maps at integer ``coords`` (N, K, 2) + each (dx, dy) offset: (N, K, len).

    Reads outside the map return the nearest border value (callers mask those joints).
    """
    n, k, h, w = hm.shape
    padded = F.pad(hm.reshape(n * k, 1, h, w), (1, 1, 1, 1), mode="replicate").reshape(n, k, -1)
    x = coords[..., 0].round().long().clamp(0, w - 1) + 1
    y = coords[..., 1].round().long().clamp(0, h - 1) + 1
    off = torch.tensor(offsets, dtype=torch.long, device=hm.device)
    flat = (y[..., None] + off[:, 1]) * (w + 2) + (x[..., None] + off[:, 0])
    return torch.gather(padded, 2, flat)


def refine_quarter_offset(heatmaps: Any, coords: Any) -> Any:
    """SimpleBaseline refinement: move integer argmax ``coords`` (N, K, 2) heatmap space a quarter
    pixel per axis towards the higher neighbour of (N, K, h, w) ``heatmaps``.

    An axis is refined only where both neighbours exist on that axis. Returns (N, K, 2) float32.
    """
    hm, was_numpy = _to_torch(heatmaps)
    c, _ = _to_torch(coords)
    _check_heatmaps(hm, "refine_quarter_offset")
    c = c.to(device=hm.device, dtype=torch.float32)
    h, w = hm.shape[-2:]
    v = _neighbours(hm, c, [(1, 0), (-1, 0), (0, 1), (0, -1)])
    diff = torch.stack([v[..., 0] - v[..., 1], v[..., 2] - v[..., 3]], dim=-1)
    xi, yi = c[..., 0].round(), c[..., 1].round()
    ok = torch.stack([(xi > 0) & (xi < w - 1), (yi > 0) & (yi < h - 1)], dim=-1)
    return _back(c + 0.25 * torch.sign(diff).to(torch.float32) * ok, was_numpy)


def dark_kernel_radius(sigma: float) -> int:
    """Half-size of DARK's blur kernel for a target ``sigma`` (sigma 2 -> 11x11, as in DARK).

    Inverts OpenCV's kernel-size-to-sigma rule ``sigma = 0.3 ((k - 1) / 2 - 1) + 0.8``.
    """
    return max(1, round((sigma - 0.8) / 0.3 + 1.0))


def gaussian_blur(heatmaps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, K, h, w) maps, reflect-101 border, each map rescaled to keep
    its original maximum (DARK's distribution modulation). Same shape and dtype."""
    n, k, h, w = heatmaps.shape
    r = dark_kernel_radius(sigma)
    t = torch.arange(-r, r + 1, dtype=heatmaps.dtype, device=heatmaps.device)
    g = torch.exp(-(t**2) / (2 * sigma**2))
    g = g / g.sum()
    x = heatmaps.reshape(n * k, 1, h, w)
    mode = "reflect" if r < min(h, w) else "replicate"
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode=mode), g.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, r, r), mode=mode), g.view(1, 1, -1, 1))
    x = x.reshape(n, k, h, w)
    old_max = heatmaps.amax(dim=(-2, -1), keepdim=True)
    new_max = x.amax(dim=(-2, -1), keepdim=True)
    return x * (old_max / new_max.clamp_min(1e-12))


def refine_dark(heatmaps: Any, coords: Any, sigma: float) -> Any:
    """DARK refinement (Zhang et al. 2020) of integer argmax ``coords`` (N, K, 2) heatmap space.

    The (N, K, h, w) maps are blurred with a ``sigma`` Gaussian (rescaled to the original peak),
    log-transformed, and the peak is moved by the second-order Taylor step ``-H^-1 g`` with
    central differences at the argmax. Joints on the border row/column, or whose Hessian is not
    negative definite, keep their integer coords. Returns (N, K, 2) float32.
    """
    hm, was_numpy = _to_torch(heatmaps)
    c, _ = _to_torch(coords)
    _check_heatmaps(hm, "refine_dark")
    c = c.to(device=hm.device, dtype=torch.float32)
    h, w = hm.shape[-2:]
    logm = torch.log(gaussian_blur(hm.to(torch.float32), sigma).clamp_min(1e-10))
    offsets = [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, 1), (1, -1), (-1, -1)]
    v = _neighbours(logm, c, offsets)
    dx = 0.5 * (v[..., 1] - v[..., 2])
    dy = 0.5 * (v[..., 3] - v[..., 4])
    dxx = v[..., 1] - 2 * v[..., 0] + v[..., 2]
    dyy = v[..., 3] - 2 * v[..., 0] + v[..., 4]
    dxy = 0.25 * (v[..., 5] - v[..., 6] - v[..., 7] + v[..., 8])
    det = dxx * dyy - dxy**2
    xi, yi = c[..., 0].round(), c[..., 1].round()
    ok = (xi > 0) & (xi < w - 1) & (yi > 0) & (yi < h - 1) & (dxx < 0) & (det > 1e-12)
    safe_det = torch.where(ok, det, torch.ones_like(det))
    off_x = -(dyy * dx - dxy * dy) / safe_det
    off_y = -(dxx * dy - dxy * dx) / safe_det
    off = torch.stack([off_x, off_y], dim=-1) * ok[..., None]
    return _back(c + off, was_numpy)


def heatmap_to_image(
    kpts_hm: Any,
    matrices: Any,
    input_size: tuple[int, int],
    heatmap_size: tuple[int, int],
    flipped: Any = None,
    flip_indices: Sequence[int] | None = None,
) -> Any:
    """(N, K, 2) heatmap-space keypoints -> (N, K, 2) image space via (N, 2, 3) image -> input matrices.

    ``x_in = x_hm * W / w`` (likewise y), then the inverse view matrix. Channels stay in view
    order unless ``flipped`` ((N,) bool) and ``flip_indices`` are given: then flipped views'
    channels are swapped back to skeleton order. Extra trailing columns (e.g. scores) are not
    accepted; pass ``kpts[..., :2]``.
    """
    pts, was_numpy = _to_torch(kpts_hm)
    if pts.ndim != 3 or pts.shape[-1] != 2:
        raise ValueError(f"heatmap_to_image: kpts_hm must be (N, K, 2), got {tuple(pts.shape)}")
    pts = pts.to(torch.float64) if was_numpy else pts.float()
    stride = torch.tensor(
        [input_size[0] / heatmap_size[0], input_size[1] / heatmap_size[1]], dtype=pts.dtype, device=pts.device
    )
    m = matrices.detach().cpu().double().numpy() if isinstance(matrices, torch.Tensor) else matrices
    inv = invert_affine(np.asarray(m, dtype=np.float64))
    out = transform_points(pts * stride, inv)
    if flipped is not None:
        if flip_indices is None:
            raise ValueError("heatmap_to_image: flipped given without flip_indices")
        flags = flipped.detach().cpu().numpy() if isinstance(flipped, torch.Tensor) else flipped
        mask = torch.as_tensor(np.asarray(flags, dtype=bool).reshape(-1, 1, 1), device=out.device)
        out = torch.where(mask, flip_keypoints_channels(out, flip_indices), out)
    return out.cpu().numpy().astype(np.float32) if was_numpy else out


# --- the codec ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeatmapCodec:
    """Gaussian heatmap targets (SimpleBaseline) with argmax+quarter or DARK decoding.

    ``input_size`` (W, H) and ``heatmap_size`` (w, h); ``sigma`` in heatmap px. The decoding
    method is the field ``decode_method`` (``CodecConfig.decode``; the name ``decode`` is the method).
    """

    input_size: tuple[int, int] = (192, 256)
    heatmap_size: tuple[int, int] = (48, 64)
    sigma: float = 2.0
    decode_method: DecodeMethod = "argmax"

    def __post_init__(self) -> None:
        if self.decode_method not in ("argmax", "dark"):
            raise ValueError(
                f"HeatmapCodec: decode_method must be 'argmax' or 'dark', got {self.decode_method!r}"
            )
        if not (self.sigma > 0 and math.isfinite(self.sigma)):
            raise ValueError(f"HeatmapCodec: sigma must be > 0, got {self.sigma}")

    @classmethod
    def from_config(cls, cfg: Any) -> HeatmapCodec:
        """From a ``pipeline.config.CodecConfig``-like object."""
        return cls(tuple(cfg.input_size), tuple(cfg.heatmap_size), float(cfg.sigma), cfg.decode)

    @property
    def stride(self) -> tuple[float, float]:
        """Input px per heatmap px, (x, y)."""
        return (self.input_size[0] / self.heatmap_size[0], self.input_size[1] / self.heatmap_size[1])

    def encode_batch(self, kpts_in: Any, visible: Any) -> tuple[Any, Any]:
        """(N, K, 2) input-space keypoints, (N, K) bool -> heatmaps (N, K, h, w), weights (N, K) float32."""
        pts, was_numpy = _to_torch(kpts_in)
        vis, _ = _to_torch(visible)
        if pts.ndim < 2 or pts.shape[-1] != 2 or tuple(vis.shape) != tuple(pts.shape[:-1]):
            raise ValueError(
                f"HeatmapCodec.encode: need kpts_in (..., K, 2) and visible (..., K), got "
                f"{tuple(pts.shape)} and {tuple(vis.shape)}"
            )
        stride = torch.tensor(self.stride, dtype=torch.float64, device=pts.device)
        kpts_hm = pts.to(torch.float64) / stride
        heatmaps, weight = encode_gaussians(kpts_hm, vis.to(pts.device), self.heatmap_size, self.sigma)
        return _back(heatmaps, was_numpy), _back(weight, was_numpy)

    def encode(self, kpts_in: Any, visible: Any) -> tuple[Any, Any]:
        """(K, 2) input-space keypoints, (K,) bool -> heatmaps (K, h, w) float32, weights (K,) float32."""
        return self.encode_batch(kpts_in, visible)

    def decode(self, heatmaps: Any) -> tuple[Any, Any]:
        """(N, K, h, w) heatmaps -> keypoints (N, K, 2) float32 heatmap space, scores (N, K) peak values."""
        coords, maxvals = get_max_preds(heatmaps)
        if self.decode_method == "dark":
            return refine_dark(heatmaps, coords, self.sigma), maxvals
        return refine_quarter_offset(heatmaps, coords), maxvals
