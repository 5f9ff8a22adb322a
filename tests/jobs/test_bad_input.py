"""Bad input to the trainer: one clear error naming the file / record / field, or skip-and-count."""

from __future__ import annotations

import json
import shutil

import pytest

from jobs.train import main as train_main
from pipeline.data.coco import AnnotationError
from pipeline.data.image_checks import BadImageError
from pipeline.data.images import ImageError
from tests.helpers import tiny_overrides


def copy_set(src_ann, src_images, dst):
    shutil.copytree(src_images, dst / "images")
    shutil.copy(src_ann, dst / "annotations.json")
    return dst / "annotations.json", dst / "images"


def run(data, out, *extra):
    return train_main(["--log-level=ERROR", *[f"--{o}" for o in tiny_overrides(data, out)], *extra])


def test_missing_image_is_named(synthetic_data, tmp_path):
    ann, images = copy_set(synthetic_data["train_ann"], synthetic_data["train_images"], tmp_path / "set")
    victim = sorted(images.iterdir())[3]
    victim.unlink()
    data = {**synthetic_data, "train_ann": ann, "train_images": images}
    with pytest.raises(BadImageError, match=victim.name):
        run(data, tmp_path / "run")


def test_truncated_jpeg_fails_by_name_or_is_skipped_and_counted(synthetic_data, tmp_path, caplog):
    ann, images = copy_set(synthetic_data["train_ann"], synthetic_data["train_images"], tmp_path / "set")
    victim = sorted(images.iterdir())[5]
    victim.write_bytes(victim.read_bytes()[:-2000])
    data = {**synthetic_data, "train_ann": ann, "train_images": images}
    # without the option: the first time the image is read, one error names the file
    with pytest.raises((ImageError, BadImageError), match=victim.name):
        run(data, tmp_path / "run", "--optim.steps_per_epoch=20", "--optim.epochs=1")
    # with the explicit option: skipped and counted, the run completes
    out = tmp_path / "run2"
    results = run(data, out, "--data.skip_bad_images=true")
    assert "eval/student/AP" in results
    assert any("skipped 1 unreadable image" in r.getMessage() for r in caplog.records)


def test_wrong_keypoint_count_names_file_record_and_field(synthetic_data, tmp_path):
    data = json.loads(synthetic_data["train_ann"].read_text())
    bad_id = data["annotations"][4]["id"]
    data["annotations"][4]["keypoints"] = data["annotations"][4]["keypoints"][:-3]
    ann = tmp_path / "bad.json"
    ann.write_text(json.dumps(data))
    with pytest.raises(AnnotationError) as e:
        run({**synthetic_data, "train_ann": ann}, tmp_path / "run")
    msg = str(e.value)
    assert "bad.json" in msg and str(bad_id) in msg and "keypoints" in msg
