"""Data parallelism of one network role: torch.distributed process group, SyncBatchNorm, DDP.

A role trained by N processes (ranks) keeps one model replica per rank. Every rank sees its
own shard of each batch; DistributedDataParallel averages the gradients over the ranks during
``backward`` and SyncBatchNorm normalises with the statistics of the whole (global) batch, so a
step at N ranks x b persons equals a step at 1 rank x N*b persons up to float rounding.

torch's ``nn.SyncBatchNorm`` runs only on accelerators (its kernels ``batch_norm_stats`` etc.
have no CPU implementation in torch 2.13). On CPU (gloo) the role uses
:class:`CpuSyncBatchNorm`: the same normalisation, its global mean and variance gathered with
``torch.distributed.nn.functional.all_reduce`` (the autograd-aware collective, whose backward
is itself an all-reduce), so gradients through the statistics are exact too.
"""

from __future__ import annotations

import datetime
import logging
import warnings

import torch
import torch.distributed as dist
from torch.distributed.nn.functional import all_reduce as differentiable_all_reduce

log = logging.getLogger(__name__)

# The autograd-aware all_reduce (torch.distributed.nn) is marked deprecated in favour of
# functional collectives, which do not differentiate through the reduction; DDP's
# broadcast_buffers=False (rank-local buffers at init) has no replacement yet.
warnings.filterwarnings("ignore", message=r"torch\.distributed\.nn\.functional\.all_reduce is deprecated")
warnings.filterwarnings("ignore", message=r"`broadcast_buffers` is deprecated")


def init_process_group(init_method: str, rank: int, world_size: int, backend: str, timeout_s: float) -> None:
    """Join this process to its role's process group (``tcp://host:port`` rendezvous).

    ``timeout_s`` bounds every collective: a rank whose peer died raises instead of waiting
    forever.
    """
    if dist.is_initialized():
        raise RuntimeError("this process already belongs to a torch.distributed process group")
    dist.init_process_group(
        backend=backend,
        init_method=init_method,
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=timeout_s),
    )
    log.info("rank %d/%d joined %s (%s)", rank, world_size, init_method, backend)


class CpuSyncBatchNorm(torch.nn.BatchNorm2d):
    """BatchNorm2d whose training-mode statistics are those of the batch over all ranks (CPU).

    Input (N, C, H, W) on this rank; the mean and the biased variance are taken over every
    rank's N x H x W values per channel (two all-reduces: the sums, then the squared
    deviations, as numerically safe as a two-pass variance); running statistics use the
    unbiased variance, as ``nn.BatchNorm2d`` does. In eval mode it is plain BatchNorm2d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        if not (self.training and distributed):
            return super().forward(x)
        count = torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype)
        total = differentiable_all_reduce(torch.cat([x.sum(dim=(0, 2, 3)), count]))
        n = total[-1]
        mean = total[:-1] / n
        centred = x - mean[None, :, None, None]
        var = differentiable_all_reduce(centred.pow(2).sum(dim=(0, 2, 3))) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var.detach() * n / torch.clamp(n - 1, min=1)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(unbiased, alpha=m)
        out = centred * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            out = out * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return out


def convert_sync_batchnorm(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Every BatchNorm2d of ``model`` synchronised over the process group (weights and running
    statistics kept): ``nn.SyncBatchNorm`` on an accelerator, :class:`CpuSyncBatchNorm` on CPU."""
    if device.type != "cpu":
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return _convert_cpu(model)


def _convert_cpu(module: torch.nn.Module) -> torch.nn.Module:
    if isinstance(module, torch.nn.BatchNorm2d) and not isinstance(module, CpuSyncBatchNorm):
        new = CpuSyncBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
        )
        new.load_state_dict(module.state_dict())
        new.train(module.training)
        return new
    for name, child in module.named_children():
        module.add_module(name, _convert_cpu(child))
    return module


class PairForward(torch.nn.Module):
    """One DDP forward for a training step that runs the model on two batches (labeled, hard)
    separately: DDP expects exactly one forward per backward."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x_lab: torch.Tensor, x_hard: torch.Tensor | None = None):
        if x_hard is None:
            return self.model(x_lab), None
        return self.model(x_lab), self.model(x_hard)


def wrap_ddp(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``PairForward(model)`` in DistributedDataParallel (gradients averaged over the ranks).

    ``broadcast_buffers`` is off: SyncBatchNorm keeps the running statistics equal on every
    rank already, and rank 0's buffers must not overwrite the others' mid-step.
    """
    device_ids = None
    if device.type == "cuda":
        device_ids = [device.index if device.index is not None else torch.cuda.current_device()]
    return torch.nn.parallel.DistributedDataParallel(
        PairForward(model), device_ids=device_ids, broadcast_buffers=False
    )


def destroy_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
