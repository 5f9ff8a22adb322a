"""End-to-end runs of ``jobs.train`` on the synthetic fixture (seconds each, CPU)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from jobs.train import main as train_main
from pipeline.evaluation.metrics import coco_keypoint_eval
from tests.helpers import tiny_overrides

REPO = __import__("pathlib").Path(__file__).resolve().parents[2]


def _args(data, out, method="supervised", extra=()):
    return ["--log-level=WARNING", *[f"--{o}" for o in tiny_overrides(data, out, method)], *extra]


def test_supervised_run_writes_everything(synthetic_data, tmp_path):
    out = tmp_path / "run"
    results = train_main(_args(synthetic_data, out))
    assert set(results) >= {"eval/student/AP", "eval/student/AP50", "eval/student/AR"}
    assert (out / "config.yaml").is_file()
    # the initial state, then one per epoch (2 steps each)
    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert names == ["step_00000000", "step_00000002", "step_00000004"]
    assert {p.name for p in (out / "checkpoints" / "step_00000004").iterdir()} == {
        "student.pt",
        "trainer_state.json",
        "config.yaml",
        "_COMPLETE",
    }
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [x["step"] for x in lines if "student/loss" in x]
    assert steps == [1, 2, 3, 4]
    assert any("eval/student/AP" in x for x in lines)
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    # the written results are a valid COCO results file that pycocotools scores identically
    again = coco_keypoint_eval(synthetic_data["val_ann"], out / "results_student.json")
    assert again["AP"] == pytest.approx(results["eval/student/AP"], abs=1e-12)


def test_final_state_is_saved_without_epoch_checkpoints(synthetic_data, tmp_path):
    out = tmp_path / "run"
    train_main(_args(synthetic_data, out, extra=["--train.checkpoint_every_epochs=0", "--optim.epochs=3"]))
    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert names == ["step_00000000", "step_00000006"]


def _student_weights(run_dir):
    ckpts = sorted((run_dir / "checkpoints").iterdir())
    return torch.load(ckpts[-1] / "student.pt", weights_only=True)["model"]


def test_resume_reaches_the_same_weights(synthetic_data, tmp_path):
    full = tmp_path / "full"
    train_main(_args(synthetic_data, full, extra=["--optim.epochs=3"]))
    part = tmp_path / "part"
    train_main(_args(synthetic_data, part, extra=["--optim.epochs=1"]))
    train_main(_args(synthetic_data, part, extra=["--optim.epochs=3", "--resume"]))
    state = json.loads((part / "checkpoints" / "step_00000006" / "trainer_state.json").read_text())
    assert state["global_step"] == 6 and state["epoch"] == 3
    a, b = _student_weights(full), _student_weights(part)
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=lambda m, k=k: f"{k}: {m}")


def test_resume_from_a_mid_epoch_checkpoint(synthetic_data, tmp_path):
    """SSPCM (snapshot teachers) stopped inside epoch 2 and resumed = one uninterrupted run."""
    common = ["--optim.steps_per_epoch=3", "--train.checkpoint_every_steps=2", "--train.deterministic=true"]
    full = tmp_path / "full"
    train_main(_args(synthetic_data, full, "sspcm", [*common, "--optim.epochs=2"]))
    part = tmp_path / "part"
    train_main(_args(synthetic_data, part, "sspcm", [*common, "--optim.epochs=2"]))
    # pretend the run was killed right after step 4 (epoch 1, step 1 of 3): drop later checkpoints
    import shutil

    for p in (part / "checkpoints").iterdir():
        if int(p.name[5:]) > 4:
            shutil.rmtree(p)
    state = json.loads((part / "checkpoints" / "step_00000004" / "trainer_state.json").read_text())
    assert (state["epoch"], state["step_in_epoch"]) == (1, 1)
    train_main(_args(synthetic_data, part, "sspcm", [*common, "--optim.epochs=2", "--resume"]))
    for role in ("teacher_a", "teacher_b", "student"):
        a = torch.load(full / "checkpoints" / "step_00000006" / f"{role}.pt", weights_only=True)
        b = torch.load(part / "checkpoints" / "step_00000006" / f"{role}.pt", weights_only=True)
        for k in a["model"]:
            torch.testing.assert_close(
                a["model"][k], b["model"][k], msg=lambda m, k=k, r=role: f"{r} {k}: {m}"
            )


@pytest.mark.parametrize("method", ["dual", "sspcm"])
def test_semi_supervised_methods_run(synthetic_data, tmp_path, method):
    out = tmp_path / method
    results = train_main(_args(synthetic_data, out, method))
    assert "eval/ensemble_ab/AP" in results
    assert ("eval/student/AP" in results) == (method == "sspcm")
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    train_lines = [x for x in lines if "teacher_a/loss" in x]
    assert len(train_lines) == 4 and all("teacher_a/unsup_loss" in x for x in train_lines)
    if method == "sspcm":
        assert all("student/unsup_loss" in x and "pcm/kept_fraction" in x for x in train_lines)
        roles = {p.name for p in (out / "checkpoints" / "step_00000004").glob("*.pt")}
        assert roles == {"teacher_a.pt", "teacher_b.pt", "student.pt"}
        # snapshot mode: the previous-epoch copies are checkpointed from epoch 1 on
        st = torch.load(out / "checkpoints" / "step_00000004" / "teacher_a.pt", weights_only=True)
        assert st["previous"] is not None


def test_bad_config_field_is_named(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "jobs.train", "--optim.learning_rate=0.1"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "optim.learning_rate" in proc.stderr


def test_missing_config_file_is_named(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "jobs.train", "--config", str(tmp_path / "nope.yaml")],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "nope.yaml" in proc.stderr
