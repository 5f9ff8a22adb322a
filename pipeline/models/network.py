"""One pose network with its optimizer and LR schedule: what a network actor hosts.

The same class is used in-process (tests, laptop) and hosted by a Ray actor (cluster).
Everything it exchanges with the outside is numpy arrays or CPU tensors, so it can move
between processes; the device is a constructor argument.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.models import build_model
from pipeline.models.data_parallel import PairForward, convert_sync_batchnorm, init_process_group, wrap_ddp
from pipeline.models.losses import joints_mse_loss
from pipeline.store.checkpoints import load_network_file, resolve_network_checkpoint

log = logging.getLogger(__name__)

ROLES = ("teacher_a", "teacher_b", "student")
TEACHERS = ("teacher_a", "teacher_b")


@dataclass(frozen=True)
class NetworkSpec:
    """Everything needed to build one network identically in any process."""

    role: str
    model_name: str
    num_joints: int
    pretrained: str | None = None
    # A pose checkpoint of this project to start from (whole model); see ModelConfig.*_init.
    init_weights: str | None = None
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_steps: tuple[int, ...] = (70, 90)
    lr_factor: float = 0.1
    sup_weight: float = 0.5
    unsup_weight: float = 1.0
    seed: int = 0
    device: str = "cpu"
    num_threads: int = 0
    deterministic: bool = False
    # BatchNorm mode of the teacher forwards (``predict``, ``predict_previous``): "train" uses
    # the batch's statistics (and updates the running ones), as the reference code does.
    teacher_bn: str = "train"
    # Labeled and hard batches through separate forwards (reference: BN statistics per batch)
    # or one forward over both.
    separate_forwards: bool = True


def _to_tensor(x, device: torch.device, dtype=torch.float32) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    return x.to(device=device, dtype=dtype, non_blocking=True)


def load_pose_weights(model: torch.nn.Module, spec: NetworkSpec) -> str:
    """Copy a trained pose checkpoint (``spec.init_weights``) into ``model``, head included.

    The checkpoint must hold the same architecture and number of joints; anything else is a
    ValueError naming the file and the mismatch. Returns the resolved file.
    """
    path = resolve_network_checkpoint(spec.init_weights, spec.role)
    state = load_network_file(path)
    their = state["spec"]
    if their.get("model_name") != spec.model_name or their.get("num_joints") != spec.num_joints:
        raise ValueError(
            f"{path}: model.{spec.role}_init holds a {their.get('model_name')} with "
            f"{their.get('num_joints')} joints, but the {spec.role} is a {spec.model_name} "
            f"with {spec.num_joints} joints"
        )
    model.load_state_dict(state["model"])
    log.info("%s starts from %s (%s)", spec.role, path, spec.model_name)
    return str(path)


class Network:
    """A pose network, its Adam optimizer, its step LR schedule and its previous-epoch copy.

    Batches are dicts:
        labeled: ``images`` (N,3,H,W) float normalised input space, ``targets`` (N,K,h,w),
            ``target_weights`` (N,K).
        hard (consistency targets): ``images`` (M,3,H,W), ``targets`` (M,K,h,w),
            ``target_weights`` (M,K), all in the hard view of this network.
    """

    def __init__(self, spec: NetworkSpec):
        if spec.teacher_bn not in ("train", "eval"):
            raise ValueError(f"teacher_bn must be 'train' or 'eval', got {spec.teacher_bn!r}")
        self.spec = spec
        if spec.num_threads > 0:
            torch.set_num_threads(spec.num_threads)
        if spec.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        self.device = torch.device(spec.device)
        # Seed per role so that A and B start from different weights but reproducibly.
        role_offset = ROLES.index(spec.role) if spec.role in ROLES else 0
        torch.manual_seed(spec.seed * 1000 + role_offset)
        self.model = build_model(spec.model_name, spec.num_joints, pretrained=spec.pretrained)
        if spec.init_weights:
            load_pose_weights(self.model, spec)
        self.model = self.model.to(self.device)
        self._build_optimizer()
        self.previous: torch.nn.Module | None = None
        # The training forward: PairForward(model), or its DistributedDataParallel wrapper.
        self.train_forward = PairForward(self.model)
        self.rank, self.world_size = 0, 1
        self.epoch = 0
        self.step = 0

    def _build_optimizer(self) -> None:
        spec = self.spec
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(
            self.optimizer, milestones=list(spec.lr_steps), gamma=spec.lr_factor
        )

    # ---- data parallelism ------------------------------------------------------------
    def join_group(
        self,
        init_method: str,
        rank: int,
        world_size: int,
        *,
        backend: str | None = None,
        timeout_s: float = 300.0,
        sync_batchnorm: bool = True,
    ) -> int:
        """Become rank ``rank`` of a data-parallel group of ``world_size`` replicas of this role.

        Joins the torch.distributed group at ``init_method`` (gloo on CPU, NCCL on CUDA unless
        ``backend`` says otherwise), then :meth:`use_process_group`. Returns the rank.
        """
        backend = backend or ("nccl" if self.device.type == "cuda" else "gloo")
        init_process_group(init_method, rank, world_size, backend, timeout_s)
        self.use_process_group(sync_batchnorm)
        return self.rank

    def use_process_group(self, sync_batchnorm: bool = True) -> None:
        """Train data-parallel in the process group this process already belongs to (joined by
        :meth:`join_group`, or set up by Ray Train): BatchNorm synchronised over the ranks when
        ``sync_batchnorm``, the model wrapped in DistributedDataParallel (which also broadcasts
        rank 0's weights). Optimizer and LR schedule are rebuilt around the converted modules
        with their state kept; a previous-epoch copy is converted too."""
        import torch.distributed as dist

        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        if sync_batchnorm:
            opt_state, sched_state = self.optimizer.state_dict(), self.scheduler.state_dict()
            self.model = convert_sync_batchnorm(self.model, self.device)
            self._build_optimizer()
            self.optimizer.load_state_dict(opt_state)
            self.scheduler.load_state_dict(sched_state)
            if self.previous is not None:
                self.previous = convert_sync_batchnorm(self.previous, self.device)
        self.train_forward = wrap_ddp(self.model, self.device)
        log.info("%s: rank %d of %d (sync BN %s)", self.spec.role, self.rank, self.world_size, sync_batchnorm)

    # ---- inference -------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, batch: dict) -> torch.Tensor:
        """Teacher heatmaps (N,K,h,w) float32 on CPU for ``batch['images']`` (N,3,H,W).

        BatchNorm runs in ``spec.teacher_bn`` mode: "train" (the reference: batch statistics,
        running statistics updated) or "eval" (running statistics).
        """
        return self._predict_with(self.model, batch)

    @torch.no_grad()
    def predict_previous(self, batch: dict) -> torch.Tensor | None:
        """Heatmaps of the frozen end-of-last-epoch copy (``snapshot`` mode); None in epoch 0."""
        if self.previous is None:
            return None
        return self._predict_with(self.previous, batch)

    def _predict_with(self, model: torch.nn.Module, batch: dict) -> torch.Tensor:
        was_training = model.training
        model.train(self.spec.teacher_bn == "train")
        out = model(_to_tensor(batch["images"], self.device)).float().cpu()
        model.train(was_training)
        return out

    # ---- training --------------------------------------------------------------------
    def train_step(
        self,
        labeled: dict,
        hard: dict | None = None,
        sup_weight: float | None = None,
        unsup_scale: float = 1.0,
    ) -> dict:
        """One optimizer step on ``sup_weight * sup + unsup_scale * unsup_weight * consistency``.

        ``unsup_scale`` is the warm-up ramp of the consistency term (1 = the paper's weight).

        The labeled and hard images go through the network in two forward passes (BatchNorm
        statistics per batch, as the reference), or in one over both with
        ``spec.separate_forwards`` False. ``sup_weight`` defaults to the spec's (0.5, paper) when
        ``hard`` is given and to 1.0 for purely supervised training.
        """
        self.model.train()
        x_lab = _to_tensor(labeled["images"], self.device)
        n_lab = x_lab.shape[0]
        if hard is None:
            out_lab, out_hard = self.train_forward(x_lab)
        elif self.spec.separate_forwards:
            out_lab, out_hard = self.train_forward(x_lab, _to_tensor(hard["images"], self.device))
        else:
            out, _ = self.train_forward(torch.cat([x_lab, _to_tensor(hard["images"], self.device)], dim=0))
            out_lab, out_hard = out[:n_lab], out[n_lab:]
        sup = joints_mse_loss(
            out_lab,
            _to_tensor(labeled["targets"], self.device),
            _to_tensor(labeled["target_weights"], self.device),
        )
        w_sup = sup_weight if sup_weight is not None else (self.spec.sup_weight if hard is not None else 1.0)
        loss = w_sup * sup
        metrics = {"sup_loss": float(sup.detach())}
        if hard is not None:
            unsup = joints_mse_loss(
                out_hard,
                _to_tensor(hard["targets"], self.device),
                _to_tensor(hard["target_weights"], self.device),
            )
            loss = loss + unsup_scale * self.spec.unsup_weight * unsup
            metrics["unsup_loss"] = float(unsup.detach())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        metrics["loss"] = float(loss.detach())
        metrics["lr"] = self.optimizer.param_groups[0]["lr"]
        return metrics

    def end_epoch(self, keep_snapshot: bool = True) -> int:
        """Advance the LR schedule; keep a frozen copy for next epoch's PCM (``snapshot`` mode)."""
        if keep_snapshot:
            self.previous = copy.deepcopy(self.model).eval()
            for p in self.previous.parameters():
                p.requires_grad_(False)
        self.scheduler.step()
        self.epoch += 1
        return self.epoch

    # ---- state -----------------------------------------------------------------------
    def get_weights(self) -> dict[str, np.ndarray]:
        """Model state dict as numpy arrays (for moving weights between processes)."""
        return {k: v.detach().cpu().numpy().copy() for k, v in self.model.state_dict().items()}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        self.model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()})

    def state_dict(self) -> dict:
        """Full training state (model, optimizer, schedule, previous copy, counters) on CPU."""

        def cpu(sd):
            return {k: (v.detach().cpu().clone() if torch.is_tensor(v) else v) for k, v in sd.items()}

        opt = self.optimizer.state_dict()
        opt_state = {k: cpu(v) for k, v in opt["state"].items()}
        return {
            "spec": self.spec.__dict__.copy(),
            "model": cpu(self.model.state_dict()),
            "optimizer": {"state": opt_state, "param_groups": opt["param_groups"]},
            "scheduler": self.scheduler.state_dict(),
            "previous": None if self.previous is None else cpu(self.previous.state_dict()),
            "epoch": self.epoch,
            "step": self.step,
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("previous") is not None:
            self.previous = copy.deepcopy(self.model).eval()
            self.previous.load_state_dict(state["previous"])
            for p in self.previous.parameters():
                p.requires_grad_(False)
        else:
            self.previous = None
        self.epoch = int(state["epoch"])
        self.step = int(state["step"])
