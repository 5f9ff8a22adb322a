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


def test_detected_boxes_mode_on_the_truth_boxes_equals_the_ground_truth_mode(synthetic_data, tmp_path):
    from jobs.evaluate import main as evaluate_main

    run = tmp_path / "run"
    train_main(["--log-level=WARNING", *[f"--{o}" for o in tiny_overrides(synthetic_data, run)]])
    ann = synthetic_data["val_ann"]
    truth = json.loads(ann.read_text())["annotations"]
    # the ground-truth boxes as detections at score 1, plus one box below the score threshold
    dets = [{"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 1.0} for a in truth]
    boxes = tmp_path / "dets.json"
    boxes.write_text(json.dumps([*dets, {**dets[0], "score": 0.01}]))
    common = ["--checkpoint", str(run), "--ann", str(ann), "--images", str(synthetic_data["val_images"])]
    on_truth = evaluate_main([*common, "--results-out", str(tmp_path / "a.json"), "--log-level=WARNING"])
    on_dets = evaluate_main(
        [*common, "--boxes", str(boxes), "--box-score-thr", "0.05", "--oks-nms-thr", "1.0",
         "--results-out", str(tmp_path / "b.json"), "--log-level=WARNING"]
    )  # fmt: skip
    assert on_truth["protocol"].startswith("ground-truth boxes")
    assert (
        on_dets["protocol"].startswith("detected boxes (box score >= 0.05")
        and "OKS-NMS 1" in on_dets["protocol"]
    )
    key = lambda r: (r["image_id"], r["keypoints"])  # noqa: E731
    a = sorted(json.loads((tmp_path / "a.json").read_text()), key=key)
    b = sorted(json.loads((tmp_path / "b.json").read_text()), key=key)
    assert len(a) == len(b) == len(truth)  # the low box is left out; nothing is suppressed at 1.0
    for x, y in zip(a, b):
        assert x["keypoints"] == y["keypoints"] and abs(x["score"] - y["score"]) < 1e-12
    for name in KEYS:
        assert abs(on_dets[name] - on_truth[name]) < 1e-12, name


def test_oks_nms_keeps_the_best_of_each_cluster():
    import numpy as np

    from pipeline.evaluation.metrics import oks_nms

    base = np.column_stack([np.arange(17) * 3.0, np.arange(17) * 2.0, np.ones(17)])

    def result(image_id, dx, score):
        kp = base.copy()
        kp[:, 0] += dx
        return {"image_id": image_id, "keypoints": kp.reshape(-1).tolist(), "score": score}

    results = [result(1, 0.0, 0.6), result(1, 0.2, 0.9), result(1, 40.0, 0.5), result(2, 0.1, 0.3)]
    sigmas = np.full(17, 0.05)
    assert oks_nms(results, [900.0] * 4, sigmas, 0.9) == [1, 2, 3]  # index 0 is a copy of 1
    assert oks_nms(results, [900.0] * 4, sigmas, 1.0) == [0, 1, 2, 3]
