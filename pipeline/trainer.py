"""The training loop, written once: it drives any executor (in-process or Ray) through epochs.

``Trainer`` owns the schedule position (epoch, step in epoch, global step), calls the method's
step function once per batch pair, logs metrics (JSONL + TensorBoard), writes one checkpoint
directory per epoch, resumes from the latest, recovers from a dead actor, and evaluates
the student (and the A+B ensemble) with pycocotools at the end. What it runs on (data, network
specs, the pseudo labeler) comes from :mod:`pipeline.run_setup`.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from pipeline.config import Config, ConfigError, save_config
from pipeline.data.skeletons import skeleton_reference
from pipeline.data.topdown import EvalDataset, LabeledDataset, UnlabeledDataset
from pipeline.evaluation.checkpoint_eval import evaluate_networks, models_from_weights
from pipeline.method.schedule import STEP_FUNCTIONS, Executor, LocalExecutor
from pipeline.run_setup import RunData, build_local, load_run_data, make_codec, network_specs
from pipeline.store.checkpoints import checkpoint_store

log = logging.getLogger(__name__)


def epoch_batches(
    n: int, batch_size: int, num_batches: int, seed: int, epoch: int, salt: int
) -> list[list[int]]:
    """``num_batches`` shuffled index batches of size ``batch_size`` from ``range(n)`` (cycling)."""
    needed = batch_size * num_batches
    rng = np.random.default_rng([seed, epoch, salt])
    order = np.concatenate([rng.permutation(n) for _ in range(max(1, math.ceil(needed / max(n, 1))))])
    return [order[i * batch_size : (i + 1) * batch_size].tolist() for i in range(num_batches)]


def shard_of(order: list[list[int]], rank: int, world_size: int) -> list[list[int]]:
    """Rank ``rank``'s part of every step's batch: its contiguous slice (the global batch of
    ``B`` persons gives each of ``world_size`` ranks ``B / world_size``)."""
    if world_size == 1:
        return order
    out = []
    for batch in order:
        size = len(batch) // world_size
        out.append(batch[rank * size : (rank + 1) * size])
    return out


class RunLogger:
    """Metrics to ``metrics.jsonl`` and TensorBoard event files in the run directory."""

    def __init__(self, run_dir: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.jsonl = open(run_dir / "metrics.jsonl", "a")
        self.tb = SummaryWriter(log_dir=str(run_dir / "tensorboard"))

    def log(self, step: int, values: dict[str, Any]) -> None:
        self.jsonl.write(json.dumps({"step": step, **values}) + "\n")
        self.jsonl.flush()
        for k, v in values.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                self.tb.add_scalar(k, v, step)

    def close(self) -> None:
        self.jsonl.close()
        self.tb.close()


class Trainer:
    """Runs one method for ``optim.epochs`` epochs over network handles through an executor.

    Args:
        cfg: resolved config.
        data: the run's labeled, unlabeled and validation persons (:func:`pipeline.run_setup.load_run_data`).
        nets: role -> handle of a :class:`Network` (the object itself, or a Ray actor handle).
        pseudo: handle of a :class:`PseudoLabeler` (unused by the supervised method).
        executor: how calls are made (``LocalExecutor`` or ``actors.executor.RayExecutor``).
        batches: ``(kind, dataset, order) -> iterator of collated batches`` for ``kind`` in
            {"labeled", "unlabeled"}; default: a torch DataLoader in this process. The Ray
            runtime passes a Ray Data stream that yields the same batches.
        rank, world_size: this process's place when the Trainer itself runs once per rank (Ray
            Train's workers): each rank trains on its shard of every batch, and only rank 0
            writes (config, metrics, checkpoints) and evaluates.
        report: ``(metrics, checkpoint or None)``, called on every rank at each epoch end and
            after the final evaluation (with the final checkpoint; Ray Train's ``report``).

    The schedule position is (epoch, step in epoch); every sample's randomness is keyed by
    (seed, epoch, index) and SSCO's by the global step, so a checkpoint needs no RNG state: a
    resumed run replays exactly the batches an uninterrupted run would have seen.
    """

    def __init__(
        self,
        cfg: Config,
        data: RunData,
        nets: dict,
        pseudo: Any,
        executor: Executor,
        batches: Callable[[str, Any, list[list[int]]], Iterator[dict]] | None = None,
        rank: int = 0,
        world_size: int = 1,
        report: Callable[[dict, str | None], None] | None = None,
    ):
        m = cfg.method
        if m.name == "sspcm" and m.previous_teachers == "cache" and not m.store_pseudo_labels:
            raise ConfigError(
                "method.previous_teachers='cache' reads last epoch's labels from the pseudo-label "
                "store: set method.store_pseudo_labels=true (or use 'snapshot')"
            )
        self.cfg, self.data, self.nets, self.pseudo, self.ex = cfg, data, nets, pseudo, executor
        self.batches = batches or self._local_batches
        self.rank, self.world_size, self.report = rank, world_size, report
        self.is_chief = rank == 0
        self.codec = make_codec(cfg)
        self.run_dir = Path(cfg.train.out_dir)
        self.step_fn = STEP_FUNCTIONS[cfg.method.name]
        o = cfg.optim
        # One epoch is one pass over the larger of the labeled set and the unlabeled pool
        # (the labeled set is cycled), as in the reference code; or a fixed number of steps.
        passes = [len(data.labeled) // o.batch_size]
        if data.unlabeled:
            passes.append(len(data.unlabeled) // o.unlabeled_batch_size)
        self.steps_per_epoch = o.steps_per_epoch or max(1, *passes)
        self.epoch = 0
        self.step_in_epoch = 0
        self.global_step = 0
        self.recoveries = 0

    def unsup_scale(self, step: int) -> float:
        """Warm-up ramp of the consistency term: linear from 0 to 1 over ``method.unsup_warmup_steps``."""
        warmup = self.cfg.method.unsup_warmup_steps
        return 1.0 if warmup <= 0 else min(1.0, step / warmup)

    # ---- state ---------------------------------------------------------------------
    def resume(self) -> bool:
        """Restore networks and schedule position from the latest checkpoint; False if none."""
        ckpt = checkpoint_store(self.cfg).latest()
        if ckpt is None:
            return False
        self._restore(ckpt)
        return True

    def restore(self, ckpt: str) -> None:
        """Load every network and the schedule position from checkpoint ``ckpt``."""
        self._restore(ckpt)

    def _restore(self, ckpt: str) -> None:
        store = checkpoint_store(self.cfg)
        state = store.load_trainer_state(ckpt)
        loads = [
            self.ex.submit(h, "load_state_dict", store.load_network_state(ckpt, r))
            for r, h in self.nets.items()
        ]
        self.ex.gather(loads)
        self.epoch, self.global_step = state["epoch"], state["global_step"]
        self.step_in_epoch = state.get("step_in_epoch", 0)
        if self.pseudo is not None and self.cfg.method.name != "supervised":
            # labels of the steps to be run again go, whatever wrote them (any number of lanes)
            self.ex.gather(self.ex.submit(self.pseudo, "forget_from", self.epoch, self.global_step))
        log.info("restored %s (epoch %d, step %d)", ckpt, self.epoch, self.global_step)

    def save(self) -> str | None:
        """Checkpoint every network and the schedule position; returns the checkpoint's location
        (None on ranks other than 0, which write nothing)."""
        if not self.is_chief:
            return None
        roles = list(self.nets)
        states = self.ex.gather([self.ex.submit(self.nets[r], "state_dict") for r in roles])
        meta = {"codec": self.cfg.codec.__dict__, "skeleton": skeleton_reference(self.data.skeleton)}
        states = {r: {**s, **meta} for r, s in zip(roles, states)}
        trainer_state = {
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "method": self.cfg.method.name,
            "seed": self.cfg.train.seed,
        }
        store = checkpoint_store(self.cfg)
        location = store.save(self.global_step, states, trainer_state, self.cfg)
        store.prune(self.cfg.train.keep_checkpoints)
        return location

    # ---- loop ----------------------------------------------------------------------
    def _local_batches(self, kind: str, dataset, order: list[list[int]]) -> Iterator[dict]:
        return iter(
            torch.utils.data.DataLoader(dataset, batch_sampler=order, num_workers=self.cfg.data.num_workers)
        )

    def train(self) -> dict[str, float]:
        cfg, o = self.cfg, self.cfg.optim
        if self.is_chief:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_config(cfg, self.run_dir / "config.yaml")
        logger = RunLogger(self.run_dir) if self.is_chief else None
        skel = self.data.skeleton
        lab_ds = LabeledDataset(self.data.labeled, self.codec, skel, augment=cfg.augment, seed=cfg.train.seed)
        unl_ds = (
            UnlabeledDataset(self.data.unlabeled, self.codec, skel, augment=cfg.augment, seed=cfg.train.seed)
            if self.data.unlabeled
            else None
        )
        if checkpoint_store(cfg).latest() is None:
            self.save()  # the initial state: a network that dies in epoch 0 is restored from here
        bar = tqdm(
            total=o.epochs * self.steps_per_epoch,
            initial=self.global_step,
            desc=cfg.method.name,
            unit="step",
            file=sys.stderr,
            mininterval=1.0 if sys.stderr.isatty() else 30.0,
            disable=not self.is_chief,
        )
        try:
            while self.epoch < o.epochs:
                try:
                    self._train_epoch(lab_ds, unl_ds, logger, bar)
                except self.ex.recoverable_errors as e:
                    self._recover(e, bar)
                    continue
                self._end_epoch(logger)
        finally:
            bar.close()
        results = self.evaluate(write=True) if self.is_chief else {}
        if logger is not None:
            logger.log(self.global_step, {"epoch": self.epoch, **results})
            logger.close()
        if self.report is not None:  # with the final checkpoint again: Ray Train keeps metrics with one
            final = checkpoint_store(cfg).latest() if self.is_chief else None
            self.report({"epoch": self.epoch, "global_step": self.global_step, **results}, final)
        return results

    def _recover(self, error: Exception, bar) -> None:
        """A network or pseudo-label actor died: Ray restarts it; every network goes back to the
        latest checkpoint (and the store forgets the labels of the steps that run again)."""
        self.recoveries += 1
        if self.recoveries > self.cfg.resources.max_actor_restarts:
            raise RuntimeError(f"giving up after {self.recoveries - 1} recoveries") from error
        ckpt = checkpoint_store(self.cfg).latest()
        log.warning("an actor failed (%s); restoring every network from %s", type(error).__name__, ckpt)
        actors = list(self.nets.values())
        if self.pseudo is not None and self.cfg.method.name != "supervised":
            actors.append(self.pseudo)  # the restore calls it (forget_from): it must be back too
        self.ex.wait_restarted(actors)
        self._restore(ckpt)
        bar.n = self.global_step
        bar.refresh()

    def _end_epoch(self, logger: RunLogger) -> None:
        cfg = self.cfg
        keep = cfg.method.name == "sspcm" and cfg.method.previous_teachers == "snapshot"
        calls = [self.ex.submit(h, "end_epoch", keep) for h in self.nets.values()]
        if self.pseudo is not None and cfg.method.name != "supervised":
            # the epoch's pseudo labels: one store file per writer instead of one per step (before
            # the checkpoint: a run that dies here resumes from an earlier one, labels those steps
            # again and compacts again)
            calls.append(self.ex.submit(self.pseudo, "close_epoch", self.epoch))
        self.ex.gather(calls)
        self.epoch += 1
        self.step_in_epoch = 0
        every = cfg.train.checkpoint_every_epochs
        saved = None
        if (every and self.epoch % every == 0) or self.epoch == cfg.optim.epochs:
            saved = self.save()  # the final state is always saved
        every = cfg.train.eval_every_epochs
        if every and self.epoch % every == 0 and self.epoch < cfg.optim.epochs and self.is_chief:
            logger.log(self.global_step, {"epoch": self.epoch, **self.evaluate()})
        if self.report is not None:
            self.report({"epoch": self.epoch, "global_step": self.global_step}, saved)

    def _train_epoch(self, lab_ds, unl_ds, logger: RunLogger, bar) -> None:
        cfg, o = self.cfg, self.cfg.optim
        start = self.step_in_epoch  # > 0 after resuming from a mid-epoch checkpoint
        lab_ds.set_epoch(self.epoch)
        order = epoch_batches(len(lab_ds), o.batch_size, self.steps_per_epoch, cfg.train.seed, self.epoch, 0)
        lab_iter = self.batches("labeled", lab_ds, shard_of(order[start:], self.rank, self.world_size))
        unl_iter = None
        if unl_ds is not None:
            unl_ds.set_epoch(self.epoch)
            order = epoch_batches(
                len(unl_ds), o.unlabeled_batch_size, self.steps_per_epoch, cfg.train.seed, self.epoch, 1
            )
            unl_iter = self.batches("unlabeled", unl_ds, shard_of(order[start:], self.rank, self.world_size))
        t0, n_img = time.perf_counter(), 0
        for i in range(start, self.steps_per_epoch):
            labeled = next(lab_iter)
            unlabeled = next(unl_iter) if unl_iter is not None else None
            metrics = self.step_fn(
                self.ex,
                self.nets,
                pseudo=self.pseudo,
                labeled=labeled,
                unlabeled=unlabeled,
                step=self.global_step,
                epoch=self.epoch,
                previous=cfg.method.previous_teachers,
                unsup_scale=self.unsup_scale(self.global_step),
            )
            self.global_step += 1
            self.step_in_epoch = i + 1
            n_img += o.batch_size + (o.unlabeled_batch_size if unlabeled is not None else 0)
            bar.update(1)
            last = i == self.steps_per_epoch - 1
            if logger is not None and (self.global_step % cfg.train.log_every == 0 or last):
                dt = time.perf_counter() - t0
                values = {"epoch": self.epoch, "images_per_s": n_img / max(dt, 1e-9), **metrics}
                logger.log(self.global_step, values)
                loss_key = next((k for k in metrics if k.endswith("/loss")), None)
                if loss_key:
                    bar.set_postfix({"loss": f"{metrics[loss_key]:.2e}", "ep": self.epoch})
            every = cfg.train.checkpoint_every_steps
            if every and self.global_step % every == 0 and self.step_in_epoch < self.steps_per_epoch:
                self.save()

    # ---- evaluation ----------------------------------------------------------------
    def evaluate(self, write: bool = False, tag: str = "") -> dict[str, float]:
        """COCO AP of the student (or the only network) and of the A+B ensemble on the val set.

        With ``write``, the results go to ``results_<network><tag>.json`` and ``eval<tag>.json``
        in the run directory (``tag`` tells an intermediate evaluation from the final one).
        """
        weights = self.ex.gather([self.ex.submit(h, "get_weights") for h in self.nets.values()])
        specs = network_specs(self.cfg, self.data.skeleton.num_joints)
        models = models_from_weights(
            dict(zip(self.nets, weights)),
            {role: spec.model_name for role, spec in specs.items()},
            self.data.skeleton.num_joints,
        )
        out = evaluate_networks(
            models,
            EvalDataset(self.data.val, self.codec, self.data.skeleton),
            self.codec,
            self.cfg.data.val_ann,
            self.data.skeleton.sigmas_array,
            batch_size=self.cfg.eval.batch_size,
            flip_indices=self.data.skeleton.flip_indices if self.cfg.eval.flip_test else None,
            results_dir=self.run_dir if write else None,
            tag=tag,
        )
        if write:
            (self.run_dir / f"eval{tag}.json").write_text(json.dumps(out, indent=2))
        return out


def train_local(cfg: Config, resume: bool = False) -> dict[str, float]:
    """Train ``cfg`` in this process (no Ray) and return the final evaluation."""
    data = load_run_data(cfg)
    nets, pseudo = build_local(cfg, data)
    trainer = Trainer(cfg, data, nets, pseudo, LocalExecutor())
    if resume:
        trainer.resume()
    return trainer.train()
