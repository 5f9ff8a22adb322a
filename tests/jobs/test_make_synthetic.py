"""The ``python -m jobs.make_synthetic`` command contract."""

import json
import subprocess
import sys
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "jobs.make_synthetic", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_cli_writes_images_and_annotations(tmp_path):
    out = tmp_path / "val"
    res = run("--out", str(out), "--seed", "5", "--images", "4", "--start-id", "1000",
              "--image-size", "160x128", "--max-people", "2")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "wrote 4 images" in res.stderr
    coco = json.loads((out / "annotations.json").read_text())
    assert [im["id"] for im in coco["images"]] == [1000, 1001, 1002, 1003]
    for im in coco["images"]:
        assert cv2.imread(str(out / "images" / im["file_name"])).shape == (128, 160, 3)
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(
        im["file_name"] for im in coco["images"]
    )
    assert coco["annotations"] and all(a["image_id"] in range(1000, 1004) for a in coco["annotations"])
    assert all(len(a["keypoints"]) == 51 for a in coco["annotations"])
    assert sorted(p.name for p in out.iterdir()) == ["annotations.json", "images"]


def test_cli_rejects_a_bad_image_size(tmp_path):
    res = run("--out", str(tmp_path), "--seed", "0", "--images", "1", "--image-size", "big")
    assert res.returncode != 0 and "WxH" in res.stderr
    assert not (tmp_path / "annotations.json").exists()


def test_cli_left_shade_redraws_the_same_people(tmp_path):
    args = ("--seed", "5", "--images", "2", "--image-size", "160x128")
    assert run("--out", str(tmp_path / "a"), *args).returncode == 0
    assert run("--out", str(tmp_path / "b"), *args, "--left-shade", "0.3").returncode == 0
    a, b = (json.loads((tmp_path / n / "annotations.json").read_text()) for n in ("a", "b"))
    assert a == b  # the same persons and labels ...
    first = a["images"][0]["file_name"]
    assert (tmp_path / "a" / "images" / first).read_bytes() != (
        tmp_path / "b" / "images" / first
    ).read_bytes()
    bad = run("--out", str(tmp_path / "c"), *args, "--left-shade", "1.5")
    assert bad.returncode != 0 and "--left-shade must be in (0, 1]" in bad.stderr
    assert not (tmp_path / "c").exists()


def test_convert_cli_writes_a_coco_file(real_data, tmp_path):
    from pipeline.evaluation.metrics import load_coco_annotations

    mpii = real_data / "mmpose_testdata" / "mpii"
    out = tmp_path / "mpii_coco.json"
    proc = subprocess.run(
        [sys.executable, "-m", "jobs.convert", "mpii", str(mpii / "test_mpii.json"), str(mpii), str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    coco = load_coco_annotations(out)
    assert len(coco.getAnnIds()) == 5
    assert len(coco.loadCats(coco.getCatIds())[0]["keypoints"]) == 16
