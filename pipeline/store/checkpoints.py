"""One directory per checkpoint, on a local disk or any pyarrow filesystem; the latest is found by name.

Layout (ROOT is ``train.checkpoint_uri``, or ``RUN/checkpoints`` when that is unset)::

    ROOT/step_00001200/                         (global optimizer step; step_00000000 = initial state)
        teacher_a.pt teacher_b.pt student.pt   (Network.state_dict() + codec/skeleton)
        trainer_state.json                      (epoch, global step, method, seed)
        config.yaml                             (resolved config)
        _COMPLETE                               (written last: the checkpoint is valid)

ROOT is a local path or a URI that ``pyarrow.fs.FileSystem.from_uri`` knows (``file:///abs/dir``,
``s3://bucket/prefix``, ``gs://bucket/prefix``, ``hdfs://...``). Every file is first written
under ``step_NNNNNNNN.tmp`` and then moved into place: on a local disk with one atomic rename,
elsewhere (object stores have no atomic directory rename) file by file with ``_COMPLETE`` last.
Only directories holding ``_COMPLETE`` count as checkpoints; on a local disk a directory without
it is also accepted when it has ``trainer_state.json`` (checkpoints written before the marker
existed, by an atomic rename).

A checkpoint *location* is a string: the root joined with the directory name, so a local path
for a local root and a URI for a URI root.
"""

from __future__ import annotations

import io
import json
import logging
import os
import pickle
from pathlib import Path
from typing import IO

import pyarrow.fs as pafs
import torch
import yaml

from pipeline.config import Config, config_to_dict
from pipeline.store.locations import is_uri, join_location, split_location

log = logging.getLogger(__name__)

COMPLETE_MARKER = "_COMPLETE"
TRAINER_STATE = "trainer_state.json"
CONFIG_FILE = "config.yaml"
_PREFIX = "step_"


def _step_of(name: str) -> int | None:
    """The global step of a checkpoint directory name, or None for any other name."""
    if name.startswith(_PREFIX) and name[len(_PREFIX) :].isdigit():
        return int(name[len(_PREFIX) :])
    return None


def checkpoint_root(cfg: Config) -> str:
    """Where a run's checkpoints go: ``train.checkpoint_uri`` or ``<train.out_dir>/checkpoints``."""
    return cfg.train.checkpoint_uri or str(Path(cfg.train.out_dir) / "checkpoints")


def checkpoint_store(cfg: Config) -> CheckpointStore:
    """The store of a run's checkpoints (at :func:`checkpoint_root`)."""
    return CheckpointStore(checkpoint_root(cfg))


class CheckpointStore:
    """The checkpoint directories under one root (a local path or a pyarrow filesystem URI).

    Args:
        root: local directory or URI; with ``filesystem``, a path inside that filesystem.
        filesystem: an already open pyarrow filesystem (tests, or a filesystem configured by hand);
            None = derived from ``root``.
    """

    def __init__(self, root: str | Path, filesystem: pafs.FileSystem | None = None):
        self.root = str(root)
        if filesystem is not None:
            self.fs, self.fs_root = filesystem, self.root.rstrip("/")
        elif is_uri(self.root):
            self.fs, path = pafs.FileSystem.from_uri(self.root)
            self.fs_root = path.rstrip("/")
        else:
            self.fs, self.fs_root = pafs.LocalFileSystem(), os.path.abspath(self.root)
        # a local directory is renamed atomically, and only that kind of store may hold
        # checkpoints from before the completion marker
        self.atomic_rename = isinstance(self.fs, pafs.LocalFileSystem)

    def __repr__(self) -> str:
        return f"CheckpointStore({self.root!r})"

    # ---- names and paths -----------------------------------------------------------
    def location(self, global_step: int) -> str:
        """Location of the checkpoint of ``global_step`` (whether or not it exists)."""
        return join_location(self.root, f"{_PREFIX}{global_step:08d}")

    def _fs_dir(self, ckpt: str | Path) -> str:
        """Path inside the filesystem of a checkpoint given by location or by directory name."""
        return f"{self.fs_root}/{split_location(ckpt)[1]}"

    # ---- listing -------------------------------------------------------------------
    def list(self) -> list[str]:
        """Locations of the complete checkpoints, oldest first (temporary or partial ones never)."""
        infos = self.fs.get_file_info(pafs.FileSelector(self.fs_root, allow_not_found=True))
        dirs = {
            info.base_name: info.path
            for info in infos
            if info.type == pafs.FileType.Directory and _step_of(info.base_name) is not None
        }
        names = sorted(dirs, key=_step_of)
        markers = self.fs.get_file_info([f"{dirs[n]}/{COMPLETE_MARKER}" for n in names])
        complete = {n for n, m in zip(names, markers) if m.type == pafs.FileType.File}
        legacy = [n for n in names if n not in complete]
        if self.atomic_rename and legacy:
            states = self.fs.get_file_info([f"{dirs[n]}/{TRAINER_STATE}" for n in legacy])
            complete |= {n for n, s in zip(legacy, states) if s.type == pafs.FileType.File}
        return [join_location(self.root, n) for n in names if n in complete]

    def is_complete(self, ckpt: str | Path) -> bool:
        """Whether the checkpoint directory ``ckpt`` (a location or a directory name) is complete,
        by the rule of :meth:`list`: it holds ``_COMPLETE`` (or, on a local disk, the
        ``trainer_state.json`` of the older layout) and is not a temporary ``*.tmp`` directory."""
        path = self._fs_dir(ckpt)
        if path.rstrip("/").endswith(".tmp"):
            return False
        if self.fs.get_file_info(f"{path}/{COMPLETE_MARKER}").type == pafs.FileType.File:
            return True
        legacy = self.fs.get_file_info(f"{path}/{TRAINER_STATE}").type == pafs.FileType.File
        return self.atomic_rename and legacy

    def require_complete(self, ckpt: str | Path) -> None:
        """:class:`IncompleteCheckpointError` naming ``ckpt`` and the complete checkpoints beside
        it, unless it is complete (:meth:`is_complete`)."""
        if self.is_complete(ckpt):
            return
        location = join_location(self.root, split_location(ckpt)[1])
        complete = [split_location(c)[1] for c in self.list()]
        raise IncompleteCheckpointError(
            f"{location}: not a complete checkpoint (no {COMPLETE_MARKER} marker: its save or its "
            f"deletion was interrupted, and its files may be partial); complete checkpoints in "
            f"{self.root}: {complete or 'none'}"
        )

    def latest(self) -> str | None:
        """Location of the newest complete checkpoint, or None."""
        done = self.list()
        return done[-1] if done else None

    # ---- writing -------------------------------------------------------------------
    def _write(self, path: str, data: bytes) -> None:
        with self.fs.open_output_stream(path) as f:
            f.write(data)

    def _delete_dir_if_exists(self, path: str) -> None:
        if self.fs.get_file_info(path).type != pafs.FileType.NotFound:
            self.fs.delete_dir(path)

    def save(self, global_step: int, states: dict[str, dict], trainer_state: dict, cfg: Config) -> str:
        """Write the states of all networks, the trainer state and the config; return the location.

        Args:
            global_step: names the directory (``step_%08d``).
            states: role -> ``Network.state_dict()`` (plus metadata), one ``<role>.pt`` each.
            trainer_state: JSON-serialisable schedule position.
            cfg: the resolved config, written as ``config.yaml``.
        """
        final = self._fs_dir(self.location(global_step))
        tmp = final + ".tmp"
        self._delete_dir_if_exists(tmp)
        self.fs.create_dir(tmp, recursive=True)
        files: dict[str, bytes] = {}
        for role, state in states.items():
            buf = io.BytesIO()
            torch.save(state, buf)
            files[f"{role}.pt"] = buf.getvalue()
        files[TRAINER_STATE] = json.dumps(trainer_state, indent=2).encode()
        files[CONFIG_FILE] = yaml.safe_dump(config_to_dict(cfg), sort_keys=False).encode()
        for name, data in files.items():
            self._write(f"{tmp}/{name}", data)
        marker = {"global_step": global_step, "files": {n: len(d) for n, d in files.items()}}
        self._write(f"{tmp}/{COMPLETE_MARKER}", json.dumps(marker).encode())

        if self.fs.get_file_info(final).type != pafs.FileType.NotFound:
            # an older checkpoint of the same step: invalidate it first, then replace it
            if self.fs.get_file_info(f"{final}/{COMPLETE_MARKER}").type == pafs.FileType.File:
                self.fs.delete_file(f"{final}/{COMPLETE_MARKER}")
            self.fs.delete_dir(final)
        if self.atomic_rename:
            self.fs.move(tmp, final)
        else:
            self.fs.create_dir(final, recursive=True)
            for name in [*files, COMPLETE_MARKER]:  # the marker last: only then is it valid
                self.fs.move(f"{tmp}/{name}", f"{final}/{name}")
            self._delete_dir_if_exists(tmp)
        location = self.location(global_step)
        log.info("checkpoint written: %s", location)
        return location

    def prune(self, keep: int) -> list[str]:
        """Delete complete checkpoints beyond the newest ``keep`` (0 = keep all), keeping also the
        newest checkpoint of the epoch before the newest one's (an export's previous-epoch
        teachers). A checkpoint's ``_COMPLETE`` marker (and ``trainer_state.json``, which marks
        a complete checkpoint of the older layout) go first, so a pruning that stops midway
        leaves a directory no reader lists (the next save or prune removes it). Returns the
        deleted locations."""
        if keep <= 0:
            return []
        done = self.list()
        kept = set(done[-keep:])
        epochs = {c: self._epoch_of(c) for c in done}
        newest_epoch = epochs[done[-1]] if done else None
        earlier = [c for c in done if newest_epoch is not None and epochs[c] < newest_epoch]
        if earlier:
            last_epoch = max(epochs[c] for c in earlier)
            kept.add([c for c in earlier if epochs[c] == last_epoch][-1])
        removed = []
        for ckpt in done:
            if ckpt in kept:
                continue
            path = self._fs_dir(ckpt)
            for name in (COMPLETE_MARKER, TRAINER_STATE):  # unlisted first (see ``list``), then gone
                if self.fs.get_file_info(f"{path}/{name}").type == pafs.FileType.File:
                    self.fs.delete_file(f"{path}/{name}")
            self._delete_dir_if_exists(path)
            removed.append(ckpt)
        if removed:
            log.info("removed %d old checkpoint(s) (train.keep_checkpoints=%d)", len(removed), keep)
        return removed

    def _epoch_of(self, ckpt: str) -> int:
        try:
            return int(self.load_trainer_state(ckpt).get("epoch", -1))
        except (FileNotFoundError, ValueError):
            return -1

    # ---- reading -------------------------------------------------------------------
    def read_bytes(self, ckpt: str | Path, filename: str) -> bytes:
        """One file of a checkpoint (given by location or directory name)."""
        path = f"{self._fs_dir(ckpt)}/{filename}"
        if self.fs.get_file_info(path).type != pafs.FileType.File:
            raise FileNotFoundError(f"checkpoint file not found: {join_location(ckpt, filename)}")
        with self.fs.open_input_stream(path) as f:
            return f.read()

    def load_network_state(self, ckpt: str | Path, role: str) -> dict:
        """``<role>.pt`` of a checkpoint, tensors on CPU."""
        data = self.read_bytes(ckpt, f"{role}.pt")
        return load_tensors(io.BytesIO(data), join_location(ckpt, f"{role}.pt"))

    def load_trainer_state(self, ckpt: str | Path) -> dict:
        """``trainer_state.json`` of a checkpoint."""
        return json.loads(self.read_bytes(ckpt, TRAINER_STATE))


# ---- functions on a checkpoint location (local path or URI) --------------------------
def load_network_state(ckpt: str | Path, role: str) -> dict:
    """``<role>.pt`` of the checkpoint at ``ckpt`` (a local directory or a URI), tensors on CPU."""
    parent, name = split_location(ckpt)
    return CheckpointStore(parent).load_network_state(name, role)


def load_trainer_state(ckpt: str | Path) -> dict:
    """``trainer_state.json`` of the checkpoint at ``ckpt`` (a local directory or a URI)."""
    parent, name = split_location(ckpt)
    return CheckpointStore(parent).load_trainer_state(name)


# ---- the run-directory API (local paths: RUN/checkpoints) ----------------------------
def checkpoint_dir(run_dir: str | Path, global_step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"{_PREFIX}{global_step:08d}"


def save_checkpoint(
    run_dir: str | Path, global_step: int, states: dict[str, dict], trainer_state: dict, cfg: Config
) -> Path:
    """Write the states of all networks plus trainer state; a partial directory is never visible."""
    return Path(CheckpointStore(Path(run_dir) / "checkpoints").save(global_step, states, trainer_state, cfg))


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoint directories of a run, oldest first (temporary ones are never listed)."""
    return [Path(p) for p in CheckpointStore(Path(run_dir) / "checkpoints").list()]


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    done = list_checkpoints(run_dir)
    return done[-1] if done else None


class IncompleteCheckpointError(ValueError):
    """A checkpoint directory that is not complete (no ``_COMPLETE``); the message names it."""


class UnsafeCheckpointError(ValueError):
    """A checkpoint file that holds more than tensors and plain types (the message names it)."""


def load_tensors(source: str | Path | IO[bytes], name: str) -> dict:
    """``torch.load(weights_only=True)`` on CPU: tensors, numbers, strings, lists, dicts and tuples
    only, so a checkpoint from elsewhere cannot run code while it is read. A file that holds
    anything else (a pickled class, a function) raises :class:`UnsafeCheckpointError` naming
    ``name`` and what torch refused."""
    try:
        state = torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        reason = str(e).strip().splitlines()
        why = next((line for line in reason if "Unsupported" in line or "global" in line.lower()), reason[0])
        raise UnsafeCheckpointError(
            f"{name}: refused by torch.load(weights_only=True): {why.strip()} (a checkpoint must hold "
            "tensors and plain types only; load it only if you trust its source, and re-save its state dict)"
        ) from None
    if not isinstance(state, dict):
        raise UnsafeCheckpointError(f"{name}: holds a {type(state).__name__}, not a dict of tensors")
    return state


def load_network_file(path: str | Path) -> dict:
    """Load one ``<role>.pt`` file (CPU); ``path`` is a local path or a URI."""
    if is_uri(path):
        fs, fs_path = pafs.FileSystem.from_uri(str(path))
        if fs.get_file_info(fs_path).type != pafs.FileType.File:
            raise FileNotFoundError(f"checkpoint file not found: {path}")
        with fs.open_input_stream(fs_path) as f:
            state = load_tensors(io.BytesIO(f.read()), str(path))
    else:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"checkpoint file not found: {p}")
        state = load_tensors(p, str(p))
    for key in ("spec", "model"):
        if key not in state:
            raise ValueError(f"{path}: not a network checkpoint (missing field {key!r})")
    return state


def resolve_network_checkpoint(path: str | Path, role: str = "student") -> Path | str:
    """Accept a ``.pt`` file, a checkpoint directory, or a run directory (latest checkpoint).

    A checkpoint directory written by a run (``step_NNNNNNNN``) must be complete
    (:meth:`CheckpointStore.is_complete`), else :class:`IncompleteCheckpointError` names it; a
    folder of another name holding ``<role>.pt`` files (e.g. released weights) is read as is.

    A URI (``s3://...``) is resolved the same way and returned as a URI; there a checkpoint root
    (``train.checkpoint_uri``) also stands for its latest checkpoint.
    """
    if is_uri(path):
        return _resolve_uri_network_checkpoint(str(path), role)
    p = Path(path)
    if p.is_file():
        return p
    if _step_of(p.name.removesuffix(".tmp")) is not None:  # a checkpoint directory: only a complete one
        CheckpointStore(p.parent).require_complete(p.name)
    # the role's own file, else the network a run of another method has (supervised: student)
    for ckpt in (p, latest_checkpoint(p)):
        for r in (role, "student", "teacher_a"):
            if ckpt is not None and (ckpt / f"{r}.pt").is_file():
                return ckpt / f"{r}.pt"
    raise FileNotFoundError(f"no network checkpoint for role {role!r} at {p}")


def _resolve_uri_network_checkpoint(uri: str, role: str) -> str:
    fs, fs_path = pafs.FileSystem.from_uri(uri)
    fs_path = fs_path.rstrip("/")
    if fs.get_file_info(fs_path).type == pafs.FileType.File:
        return uri
    if fs.get_file_info(f"{fs_path}/{role}.pt").type == pafs.FileType.File:
        parent, name = split_location(uri)
        if _step_of(name.removesuffix(".tmp")) is not None:
            CheckpointStore(parent).require_complete(name)
        return join_location(uri, f"{role}.pt")
    # a run directory (its checkpoints/ folder), or a checkpoint root (train.checkpoint_uri)
    for sub, base in ((f"{fs_path}/checkpoints", join_location(uri, "checkpoints")), (fs_path, uri)):
        latest = CheckpointStore(sub, fs).latest()
        if latest is None:
            continue
        name = split_location(latest)[1]
        for r in (role, "student", "teacher_a"):
            if fs.get_file_info(f"{sub}/{name}/{r}.pt").type == pafs.FileType.File:
                return join_location(join_location(base, name), f"{r}.pt")
    raise FileNotFoundError(f"no network checkpoint for role {role!r} at {uri}")
