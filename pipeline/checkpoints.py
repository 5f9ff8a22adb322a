"""One directory per checkpoint, written atomically; the latest one is found by name.

Layout::

    RUN/checkpoints/step_00001200/            (global optimizer step; step_00000000 = initial state)
        teacher_a.pt teacher_b.pt student.pt   (Network.state_dict() + codec/skeleton)
        trainer_state.json                      (epoch, global step, method, seed)
        config.yaml                             (resolved config)
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import torch

from pipeline.config import Config, save_config

log = logging.getLogger(__name__)


def checkpoint_dir(run_dir: str | Path, global_step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{global_step:08d}"


def save_checkpoint(
    run_dir: str | Path, global_step: int, states: dict[str, dict], trainer_state: dict, cfg: Config
) -> Path:
    """Write the states of all networks plus trainer state; a partial directory is never visible."""
    final = checkpoint_dir(run_dir, global_step)
    tmp = final.with_name(final.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for role, state in states.items():
        torch.save(state, tmp / f"{role}.pt")
    (tmp / "trainer_state.json").write_text(json.dumps(trainer_state, indent=2))
    save_config(cfg, tmp / "config.yaml")
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    log.info("checkpoint written: %s", final)
    return final


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoint directories of a run, oldest first (temporary ones are never listed)."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(
        p for p in root.iterdir() if p.is_dir() and p.name.startswith("step_") and p.name[5:].isdigit()
    )


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    done = list_checkpoints(run_dir)
    return done[-1] if done else None


def load_network_file(path: str | Path) -> dict:
    """Load one ``<role>.pt`` file (CPU)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {p}")
    state = torch.load(p, map_location="cpu", weights_only=False)
    for key in ("spec", "model"):
        if key not in state:
            raise ValueError(f"{p}: not a network checkpoint (missing field {key!r})")
    return state


def resolve_network_checkpoint(path: str | Path, role: str = "student") -> Path:
    """Accept a ``.pt`` file, a checkpoint directory, or a run directory (latest checkpoint)."""
    p = Path(path)
    if p.is_file():
        return p
    if (p / f"{role}.pt").is_file():
        return p / f"{role}.pt"
    latest = latest_checkpoint(p)
    if latest is not None:
        candidates = [latest / f"{r}.pt" for r in (role, "student", "teacher_a")]
        for c in candidates:
            if c.is_file():
                return c
    raise FileNotFoundError(f"no network checkpoint for role {role!r} at {p}")
