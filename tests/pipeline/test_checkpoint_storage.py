"""Checkpoints on a local path, a ``file://`` URI and a non-local pyarrow filesystem (object-store-like)."""

from __future__ import annotations

import json

import pyarrow.fs as pafs
import pytest
import torch

from pipeline.config import Config, load_config
from pipeline.store.checkpoints import (
    COMPLETE_MARKER,
    CheckpointStore,
    checkpoint_root,
    join_location,
    latest_checkpoint,
    list_checkpoints,
    load_network_file,
    load_network_state,
    load_trainer_state,
    resolve_network_checkpoint,
    save_checkpoint,
    split_location,
)


def _states(seed: int) -> dict[str, dict]:
    g = torch.Generator().manual_seed(seed)
    return {
        role: {"spec": {"role": role}, "model": {"w": torch.randn(3, 4, generator=g)}, "step": seed}
        for role in ("teacher_a", "student")
    }


def _trainer_state(step: int) -> dict:
    return {"epoch": step // 2, "step_in_epoch": 0, "global_step": step, "method": "dual", "seed": 0}


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    torch.testing.assert_close(a["model"]["w"], b["model"]["w"], rtol=0, atol=0)
    assert a["spec"] == b["spec"] and a["step"] == b["step"]


def _mock_store() -> CheckpointStore:
    """An in-memory filesystem seen through a sub-tree (not local: no atomic directory rename)."""
    fs = pafs.SubTreeFileSystem("bucket", pafs.FileSystem.from_uri("mock:///")[0])
    return CheckpointStore("runs/r1/checkpoints", fs)


def test_locations_join_and_split():
    assert join_location("s3://b/p/", "step_1") == "s3://b/p/step_1"
    assert join_location("s3://b/p?region=x", "step_1") == "s3://b/p/step_1?region=x"
    assert split_location("s3://b/p/step_1?region=x") == ("s3://b/p?region=x", "step_1")
    assert split_location("runs/a/step_1") == ("runs/a", "step_1")


def test_file_uri_save_list_latest_load(tmp_path):
    root = f"file://{tmp_path}/ck"
    store = CheckpointStore(root)
    assert store.list() == [] and store.latest() is None
    cfg = Config()
    for step in (0, 2, 10):
        loc = store.save(step, _states(step), _trainer_state(step), cfg)
        assert loc == f"{root}/step_{step:08d}"
    assert store.list() == [f"{root}/step_{s:08d}" for s in (0, 2, 10)]
    latest = store.latest()
    assert latest == f"{root}/step_00000010"
    for role, state in _states(10).items():
        _assert_same(store.load_network_state(latest, role), state)
        _assert_same(load_network_state(latest, role), state)  # the free function, from the URI alone
    assert store.load_trainer_state(latest) == _trainer_state(10) == load_trainer_state(latest)
    # the files are on the local disk, with the marker and the resolved config
    d = tmp_path / "ck" / "step_00000010"
    assert {p.name for p in d.iterdir()} == {
        "teacher_a.pt", "student.pt", "trainer_state.json", "config.yaml", COMPLETE_MARKER,
    }  # fmt: skip
    assert load_config(d / "config.yaml") == cfg
    assert not list((tmp_path / "ck").glob("*.tmp"))


def test_resolve_and_load_network_file_from_uris(tmp_path):
    CheckpointStore(tmp_path / "run" / "checkpoints").save(4, _states(4), _trainer_state(4), Config())
    run_uri = f"file://{tmp_path}/run"
    want = f"{run_uri}/checkpoints/step_00000004/student.pt"
    assert resolve_network_checkpoint(run_uri) == want  # a run directory
    assert resolve_network_checkpoint(f"{run_uri}/checkpoints") == want  # a checkpoint root
    assert resolve_network_checkpoint(f"{run_uri}/checkpoints/step_00000004", "teacher_a").endswith(
        "step_00000004/teacher_a.pt"
    )
    _assert_same(load_network_file(want), _states(4)["student"])
    with pytest.raises(FileNotFoundError, match="no network checkpoint"):
        resolve_network_checkpoint(f"file://{tmp_path}/nothing")


def test_half_written_checkpoints_are_ignored_on_a_local_disk(tmp_path):
    run = tmp_path / "run"
    save_checkpoint(run, 2, _states(2), _trainer_state(2), Config())
    root = run / "checkpoints"
    (root / "step_00000006.tmp").mkdir()  # killed while writing: never renamed
    (root / "step_00000006.tmp" / "student.pt").write_bytes(b"partial")
    (root / "step_00000008").mkdir()  # neither marker nor trainer state: not a checkpoint
    (root / "step_00000008" / "student.pt").write_bytes(b"partial")
    (root / "notes").mkdir()
    assert [p.name for p in list_checkpoints(run)] == ["step_00000002"]
    assert latest_checkpoint(run) == root / "step_00000002"
    # a re-save of a step cleans its temporary directory and replaces an older copy
    save_checkpoint(run, 6, _states(6), _trainer_state(6), Config())
    save_checkpoint(run, 6, _states(7), _trainer_state(6), Config())
    assert not (root / "step_00000006.tmp").exists()
    assert latest_checkpoint(run) == root / "step_00000006"
    _assert_same(load_network_state(root / "step_00000006", "student"), _states(7)["student"])


def test_checkpoints_from_before_the_marker_still_count_locally(tmp_path):
    """Old runs: an atomically renamed directory with trainer_state.json and no marker."""
    run = tmp_path / "run"
    old = run / "checkpoints" / "step_00000004"
    old.mkdir(parents=True)
    torch.save(_states(4)["student"], old / "student.pt")
    (old / "trainer_state.json").write_text(json.dumps(_trainer_state(4)))
    assert latest_checkpoint(run) == old
    assert resolve_network_checkpoint(run) == old / "student.pt"
    assert load_trainer_state(old) == _trainer_state(4)


def test_object_store_save_list_latest_load():
    store = _mock_store()
    assert not store.atomic_rename
    for step in (0, 3):
        assert store.save(step, _states(step), _trainer_state(step), Config()) == (
            f"runs/r1/checkpoints/step_{step:08d}"
        )
    assert store.list() == ["runs/r1/checkpoints/step_00000000", "runs/r1/checkpoints/step_00000003"]
    for role, state in _states(3).items():
        _assert_same(store.load_network_state(store.latest(), role), state)
    assert store.load_trainer_state("step_00000003") == _trainer_state(3)
    names = {i.base_name for i in store.fs.get_file_info(pafs.FileSelector("runs/r1/checkpoints"))}
    assert names == {"step_00000000", "step_00000003"}  # no temporary directory left behind


def test_object_store_needs_the_marker():
    """Without an atomic rename, a directory with every file but the marker is not a checkpoint."""
    store = _mock_store()
    store.save(1, _states(1), _trainer_state(1), Config())
    store.save(2, _states(2), _trainer_state(2), Config())
    store.fs.delete_file(f"runs/r1/checkpoints/step_00000002/{COMPLETE_MARKER}")
    assert store.latest() == "runs/r1/checkpoints/step_00000001"


class _CrashBeforeMarker:
    """A filesystem that dies when the completion marker is moved into place."""

    def __init__(self, fs: pafs.FileSystem):
        self._fs = fs

    def __getattr__(self, name):
        return getattr(self._fs, name)

    def move(self, src: str, dest: str) -> None:
        if dest.endswith(COMPLETE_MARKER):
            raise OSError("connection lost")
        self._fs.move(src, dest)


def test_object_store_crash_while_moving_leaves_the_previous_latest():
    store = _mock_store()
    store.save(1, _states(1), _trainer_state(1), Config())
    store.fs = _CrashBeforeMarker(store.fs)
    with pytest.raises(OSError, match="connection lost"):
        store.save(2, _states(2), _trainer_state(2), Config())
    # every payload file of step 2 is in place, but without the marker it does not count
    step2 = pafs.FileSelector("runs/r1/checkpoints/step_00000002")
    files = {i.base_name for i in store.fs.get_file_info(step2)}
    assert "student.pt" in files and COMPLETE_MARKER not in files
    assert store.latest() == "runs/r1/checkpoints/step_00000001"
    store.fs = store.fs._fs  # the connection is back: the same step is written again
    store.save(2, _states(2), _trainer_state(2), Config())
    assert store.latest() == "runs/r1/checkpoints/step_00000002"


def test_checkpoint_root_default_and_uri():
    cfg = load_config(None, ["train.out_dir=runs/x"])
    assert checkpoint_root(cfg) == "runs/x/checkpoints"
    cfg = load_config(None, ["train.checkpoint_uri=s3://bucket/sspcm/x"])
    assert checkpoint_root(cfg) == "s3://bucket/sspcm/x"


def test_training_writes_to_and_resumes_from_a_uri(synthetic_data, tmp_path):
    """``train.checkpoint_uri``: every checkpoint goes there (none under out_dir) and --resume reads it."""
    from jobs.train import main as train_main
    from tests.helpers import tiny_overrides

    out, uri = tmp_path / "run", f"file://{tmp_path}/remote/ck"
    args = ["--log-level=WARNING", *[f"--{o}" for o in tiny_overrides(synthetic_data, out)]]
    args.append(f"--train.checkpoint_uri={uri}")
    train_main([*args, "--optim.epochs=1"])
    assert CheckpointStore(uri).list() == [f"{uri}/step_00000000", f"{uri}/step_00000002"]
    train_main([*args, "--optim.epochs=2", "--resume"])
    latest = CheckpointStore(uri).latest()
    assert latest == f"{uri}/step_00000004"
    assert load_trainer_state(latest)["epoch"] == 2
    assert not (out / "checkpoints").exists()


class _AnyObject:
    """A pickled object of a class: what a checkpoint from elsewhere could smuggle in."""


def test_a_checkpoint_holding_objects_is_refused_by_name(tmp_path):
    import torch

    from pipeline.store.checkpoints import UnsafeCheckpointError, load_network_file, load_network_state

    ckpt = tmp_path / "step_00000001"
    ckpt.mkdir()
    state = {"spec": {"model_name": "tiny", "num_joints": 17}, "model": {"w": torch.zeros(2)}}
    torch.save(state, ckpt / "student.pt")
    assert load_network_file(ckpt / "student.pt")["model"]["w"].shape == (2,)  # tensors and plain types
    torch.save({**state, "extra": _AnyObject()}, ckpt / "teacher_a.pt")
    with pytest.raises(
        UnsafeCheckpointError, match=r"teacher_a\.pt: refused by torch\.load\(weights_only=True\)"
    ):
        load_network_file(ckpt / "teacher_a.pt")
    with pytest.raises(UnsafeCheckpointError, match=r"teacher_a\.pt"):
        load_network_state(ckpt.as_uri(), "teacher_a")


def test_retention_keeps_the_newest_and_the_previous_epochs_checkpoint(tmp_path):
    import torch

    from pipeline.config import Config, ConfigError, load_config
    from pipeline.store.checkpoints import CheckpointStore

    store = CheckpointStore(tmp_path / "checkpoints")
    steps_epochs = [(0, 0), (2, 1), (4, 2), (6, 3), (7, 3), (8, 3)]
    for step, epoch in steps_epochs:
        store.save(step, {"student": {"w": torch.zeros(1)}}, {"epoch": epoch, "global_step": step}, Config())
        removed = store.prune(2)
        assert all(r not in store.list() for r in removed)
    names = [p.rsplit("/", 1)[-1] for p in store.list()]
    assert names == ["step_00000004", "step_00000007", "step_00000008"]  # + epoch 2's newest
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == names  # nothing left behind
    assert store.prune(0) == []  # 0 keeps everything

    # a pruning stopped after unlisting: the directory is not a checkpoint any more
    (tmp_path / "checkpoints" / "step_00000004" / "_COMPLETE").unlink()
    (tmp_path / "checkpoints" / "step_00000004" / "trainer_state.json").unlink()
    assert [p.rsplit("/", 1)[-1] for p in store.list()] == ["step_00000007", "step_00000008"]

    with pytest.raises(ConfigError, match="train.keep_checkpoints"):
        load_config(None, ["train.keep_checkpoints=-1"])
