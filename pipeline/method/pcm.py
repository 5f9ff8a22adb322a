"""Position-inconsistency pseudo-label Correction Module (PCM, SSPCM stage 2).

For every image and joint, PCM looks at four teacher pairs built from the current teachers
(A_t, B_t) and their previous-epoch versions (A_{t-1}, B_{t-1}), all predicted on the SAME
current easy view:

    pair 0 = (A_t, B_t), 1 = (A_{t-1}, B_t), 2 = (A_t, B_{t-1}), 3 = (A_{t-1}, B_{t-1}).

The position inconsistency (PI) of a pair is the distance between the argmax positions of its
two heatmaps, divided by the heatmap diagonal sqrt(h^2 + w^2). The pair with the least PI wins
(ties go to the lowest index, i.e. the current teachers); the corrected label is the mean of
that pair's two heatmaps. In the first epoch (no previous teachers) only pair 0 exists.

``PCMConfig.label = "gaussian"`` (not in the paper) re-renders that mean as one Gaussian of the
codec's sigma at the mean map's decoded peak (argmax + quarter offset), with the mean map's
maximum as its height, so that where the two teachers disagree by more than a sigma the student
gets one sharp peak, not two. Position and confidence are those of PCM's corrected keypoint;
only the target's shape changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from pipeline.geometry.heatmaps import encode_gaussians, refine_quarter_offset

NUM_PAIRS = 4
# Which heatmap each pair takes from A (0 = A_t, 1 = A_{t-1}) and from B (0 = B_t, 1 = B_{t-1}).
_PAIR_USES_A_PREV = (False, True, False, True)
_PAIR_USES_B_PREV = (False, False, True, True)


@dataclass(frozen=True)
class PCMConfig:
    """PCM thresholds.

    Attributes:
        score_thr: keep a joint only where mean(max(A_t), max(B_t)) > score_thr (paper: 0.1).
        pi_thr: if set, also drop joints whose chosen PI (normalised by the heatmap diagonal)
            exceeds it. None turns the filter off (the released SSPCM configs have it off).
        label: ``"mean"`` (paper: the chosen pair's mean heatmap) or ``"gaussian"`` (a Gaussian
            of ``sigma`` heatmap px at the mean heatmap's decoded peak, as high as that peak).
        sigma: Gaussian sigma in heatmap px for ``label="gaussian"``.
    """

    score_thr: float = 0.1
    pi_thr: float | None = None
    label: Literal["mean", "gaussian"] = "mean"
    sigma: float = 2.0

    def __post_init__(self) -> None:
        if self.pi_thr is not None and self.pi_thr < 0:
            raise ValueError(f"pi_thr must be >= 0 or None, got {self.pi_thr}")
        if self.label not in ("mean", "gaussian"):
            raise ValueError(f"label must be 'mean' or 'gaussian', got {self.label!r}")
        if not self.sigma > 0:
            raise ValueError(f"sigma must be > 0, got {self.sigma}")


@dataclass
class PCMOutput:
    """Result of :func:`correct_pseudo_labels` (all in the current easy view, heatmap space).

    Attributes:
        heatmaps: (N, K, h, w) corrected labels, dtype of the inputs.
        weights: (N, K) 0/1 float mask, dtype of the inputs.
        pi: (N, K) PI of the chosen pair (argmax distance / heatmap diagonal).
        pair_index: (N, K) int64 in 0..3, the chosen pair.
        pi_current: (N, K) PI of (A_t, B_t).
    """

    heatmaps: torch.Tensor
    weights: torch.Tensor
    pi: torch.Tensor
    pair_index: torch.Tensor
    pi_current: torch.Tensor


def argmax_xy(heatmaps: torch.Tensor) -> torch.Tensor:
    """(N, K, h, w) heatmaps -> (N, K, 2) integer-valued (x, y) argmax in heatmap space.

    x is the column, y the row; ties go to the first maximum in row-major order. Returned as
    float64 so that distances are exact and ties compare exactly.
    """
    w = heatmaps.shape[-1]
    idx = heatmaps.flatten(2).argmax(dim=-1)
    return torch.stack([idx % w, torch.div(idx, w, rounding_mode="floor")], dim=-1).to(torch.float64)


def _check_inputs(
    hm_a: torch.Tensor,
    hm_b: torch.Tensor,
    hm_a_prev: torch.Tensor | None,
    hm_b_prev: torch.Tensor | None,
) -> None:
    if (hm_a_prev is None) != (hm_b_prev is None):
        raise ValueError("give both previous-epoch heatmaps (hm_a_prev, hm_b_prev) or neither")
    if hm_a.dim() != 4:
        raise ValueError(f"heatmaps must be (N, K, h, w), got shape {tuple(hm_a.shape)}")
    named = {"hm_b": hm_b, "hm_a_prev": hm_a_prev, "hm_b_prev": hm_b_prev}
    for name, hm in named.items():
        if hm is not None and hm.shape != hm_a.shape:
            raise ValueError(f"{name} has shape {tuple(hm.shape)}, hm_a has {tuple(hm_a.shape)}")


def _diagonal(heatmaps: torch.Tensor) -> float:
    h, w = heatmaps.shape[-2:]
    return float(h * h + w * w) ** 0.5


def pair_inconsistency(hm_first: torch.Tensor, hm_second: torch.Tensor) -> torch.Tensor:
    """(N, K, h, w) x2 -> (N, K) float64 argmax distance / heatmap diagonal (heatmap space)."""
    return (argmax_xy(hm_first) - argmax_xy(hm_second)).norm(dim=-1) / _diagonal(hm_first)


@torch.no_grad()
def correct_pseudo_labels(
    hm_a: torch.Tensor,
    hm_b: torch.Tensor,
    hm_a_prev: torch.Tensor | None = None,
    hm_b_prev: torch.Tensor | None = None,
    cfg: PCMConfig = PCMConfig(),  # noqa: B008 - frozen dataclass, safe as a default
) -> PCMOutput:
    """Pick, per image and joint, the most position-consistent teacher pair.

    Args:
        hm_a, hm_b: (N, K, h, w) current teachers' heatmaps A_t, B_t on the current easy view.
        hm_a_prev, hm_b_prev: (N, K, h, w) previous-epoch teachers' heatmaps on the SAME view,
            or both None (first epoch: only pair (A_t, B_t) is used).
        cfg: thresholds.

    Returns:
        :class:`PCMOutput`; heatmaps and weights have hm_a's dtype and device (the other inputs
        are converted to them). Nothing keeps a graph.
    """
    _check_inputs(hm_a, hm_b, hm_a_prev, hm_b_prev)
    hm_a = hm_a.detach()
    hm_b = hm_b.detach().to(hm_a)
    diag = _diagonal(hm_a)
    xy_a, xy_b = argmax_xy(hm_a), argmax_xy(hm_b)
    pi_current = (xy_a - xy_b).norm(dim=-1) / diag
    if hm_a_prev is None or hm_b_prev is None:
        pair_index = torch.zeros_like(pi_current, dtype=torch.int64)
        pi_chosen = pi_current
        first, second = hm_a, hm_b
    else:
        hm_a_prev = hm_a_prev.detach().to(hm_a)
        hm_b_prev = hm_b_prev.detach().to(hm_a)
        xy_ap, xy_bp = argmax_xy(hm_a_prev), argmax_xy(hm_b_prev)
        pis = torch.stack(
            [
                pi_current,
                (xy_ap - xy_b).norm(dim=-1) / diag,
                (xy_a - xy_bp).norm(dim=-1) / diag,
                (xy_ap - xy_bp).norm(dim=-1) / diag,
            ]
        )  # (4, N, K)
        # min returns the first minimum, so ties prefer the current pair.
        pi_chosen, pair_index = pis.min(dim=0)
        uses_a_prev = torch.tensor(_PAIR_USES_A_PREV, device=hm_a.device)[pair_index]
        uses_b_prev = torch.tensor(_PAIR_USES_B_PREV, device=hm_a.device)[pair_index]
        first = torch.where(uses_a_prev[..., None, None], hm_a_prev, hm_a)
        second = torch.where(uses_b_prev[..., None, None], hm_b_prev, hm_b)
    label = 0.5 * first + 0.5 * second
    if cfg.label == "gaussian":
        label = render_peak_gaussian(label, cfg.sigma)
    keep = (hm_a.amax(dim=(2, 3)).double() + hm_b.amax(dim=(2, 3)).double()) / 2 > cfg.score_thr
    if cfg.pi_thr is not None:
        keep &= pi_chosen <= cfg.pi_thr
    return PCMOutput(
        heatmaps=label,
        weights=keep.to(hm_a.dtype),
        pi=pi_chosen.to(hm_a.dtype),
        pair_index=pair_index,
        pi_current=pi_current.to(hm_a.dtype),
    )


def render_peak_gaussian(heatmaps: torch.Tensor, sigma: float) -> torch.Tensor:
    """(N, K, h, w) heatmaps -> (N, K, h, w) Gaussians of ``sigma`` heatmap px centred on each
    map's argmax refined by the quarter offset and as high as the map's maximum, in the same
    heatmap space and dtype. A map whose maximum is not positive becomes all zeros."""
    xy = refine_quarter_offset(heatmaps.float(), argmax_xy(heatmaps).float())
    maxvals = heatmaps.flatten(2).amax(dim=-1)
    h, w = heatmaps.shape[-2:]
    rendered, _ = encode_gaussians(xy, maxvals > 0, (w, h), sigma)
    return (rendered * maxvals.clamp(min=0).float()[..., None, None]).to(heatmaps)


def pcm_statistics(out: PCMOutput) -> dict[str, float]:
    """Scalars for logging: kept fraction, mean PIs and the chosen-pair histogram (fractions).

    Keys: ``kept_fraction``, ``mean_pi`` (chosen pair, all joints), ``mean_pi_kept`` (kept
    joints; 0 if none), ``mean_pi_current`` (pair 0), ``pair_{0..3}_fraction``.
    """
    weights = out.weights.double()
    pi = out.pi.double()
    kept = weights.sum()
    hist = torch.bincount(out.pair_index.flatten().cpu(), minlength=NUM_PAIRS).double()
    total = max(out.pair_index.numel(), 1)
    stats = {
        "kept_fraction": float(weights.mean()) if weights.numel() else 0.0,
        "mean_pi": float(pi.mean()) if pi.numel() else 0.0,
        "mean_pi_kept": float((pi * weights).sum() / kept) if kept > 0 else 0.0,
        "mean_pi_current": float(out.pi_current.double().mean()) if pi.numel() else 0.0,
    }
    for p in range(NUM_PAIRS):
        stats[f"pair_{p}_fraction"] = float(hist[p]) / total
    return stats
