"""Heatmap losses."""

from __future__ import annotations

import torch


def joints_mse_loss(pred: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor) -> torch.Tensor:
    """Joints MSE with per-joint target weights (SimpleBaseline's JointsMSELoss).

    Args:
        pred: (N, K, h, w) predicted heatmaps.
        target: (N, K, h, w) target heatmaps (detached).
        target_weight: (N, K) or (N, K, 1) weights, 0 drops a joint.

    Returns:
        Scalar: mean over joints of 0.5 * mean over (N, h*w) of (w * (pred - target))^2.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    n, k = pred.shape[:2]
    w = target_weight.reshape(n, k, 1).to(pred.dtype)
    diff = (pred.reshape(n, k, -1) - target.reshape(n, k, -1).to(pred.dtype)) * w
    return 0.5 * diff.pow(2).mean(dim=(0, 2)).mean()
