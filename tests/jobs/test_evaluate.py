"""The ``python -m jobs.evaluate`` command contracts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pycocotools.coco import COCO

from jobs.train import main as train_main
from pipeline.evaluation.metrics import ground_truth_as_results
from tests.helpers import tiny_overrides

REPO = Path(__file__).resolve().parents[2]
KEYS = {"AP", "AP50", "AP75", "APm", "APl", "AR"}


def run_evaluate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jobs.evaluate", "--log-level=WARNING", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
    )


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def test_results_mode_ground_truth_scores_one(real_data, tmp_path):
    ann = real_data / "coco_mini" / "annotations" / "person_keypoints_val2017.json"
    results = tmp_path / "gt_results.json"
    results.write_text(json.dumps(ground_truth_as_results(COCO(str(ann)))))
    proc = run_evaluate("--ann", str(ann), "--results", str(results))
    assert proc.returncode == 0, proc.stderr
    stats = last_json(proc.stdout)
    assert KEYS <= set(stats) and stats["AP"] == 1.0 and stats["AR"] == 1.0


def test_results_mode_bad_file_names_record_and_field(real_data, tmp_path):
    ann = real_data / "mmpose_testdata" / "coco" / "test_coco.json"
    results = ground_truth_as_results(COCO(str(ann)))
    results[3]["keypoints"] = results[3]["keypoints"][:-3]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(results))
    proc = run_evaluate("--ann", str(ann), "--results", str(bad))
    assert proc.returncode != 0
    assert "bad.json" in proc.stderr and "[3]" in proc.stderr and "keypoints" in proc.stderr


def test_checkpoint_mode_on_a_trained_run(synthetic_data, tmp_path):
    run = tmp_path / "run"
    trained = train_main(["--log-level=WARNING", *[f"--{o}" for o in tiny_overrides(synthetic_data, run)]])
    proc = run_evaluate(
        "--checkpoint",
        str(run),
        "--ann",
        str(synthetic_data["val_ann"]),
        "--images",
        str(synthetic_data["val_images"]),
    )
    assert proc.returncode == 0, proc.stderr
    stats = last_json(proc.stdout)
    assert KEYS <= set(stats)
    # the same network on the same boxes gives the same AP as the trainer's own evaluation
    assert abs(stats["AP"] - trained["eval/student/AP"]) < 1e-9
    pt = run / "checkpoints" / "step_00000004" / "student.pt"
    proc = run_evaluate(
        "--checkpoint",
        str(pt),
        "--ann",
        str(synthetic_data["val_ann"]),
        "--images",
        str(synthetic_data["val_images"]),
    )
    assert proc.returncode == 0 and abs(last_json(proc.stdout)["AP"] - stats["AP"]) < 1e-12
