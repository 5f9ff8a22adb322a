"""jobs.inspect_store: the summary on stdout and N rendered PNGs of the original image sizes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from jobs.inspect_store import main
from pipeline.data.skeletons import get_skeleton
from pipeline.store.pseudo_label_store import PseudoLabelRows, PseudoLabelStore

REPO = Path(__file__).resolve().parents[2]
K = 17
IMAGES = {"a.jpg": (120, 160), "b.png": (200, 100), "c.jpg": (90, 90)}  # name -> (H, W)


def person_rows(files: list[str], first_index: int, seed: int) -> PseudoLabelRows:
    """One person per entry of ``files``; keypoints inside that image (image space)."""
    rng = np.random.default_rng(seed)
    n = len(files)
    size = np.array([IMAGES[f][::-1] for f in files], dtype=np.float32)  # (n, 2) = (W, H)
    xy = rng.uniform(0.1, 0.9, (n, K, 2)).astype(np.float32) * size[:, None]
    kpts = lambda: np.concatenate([xy + rng.normal(0, 2, xy.shape), rng.random((n, K, 1))], -1).astype(
        np.float32
    )
    kpts_b = kpts()
    kpts_b[0, 5] = np.nan  # a joint teacher B did not find: skipped when drawing
    return PseudoLabelRows(
        image_id=np.arange(first_index, first_index + n, dtype=np.int64),
        person_index=np.arange(first_index, first_index + n, dtype=np.int64),
        image_file=files,
        bbox=np.concatenate([size * 0.1, size * 0.8], -1).astype(np.float32),
        kpts_a=kpts(),
        kpts_b=kpts_b,
        pi=rng.uniform(0, 0.2, (n, K)).astype(np.float32),
        kpts_corrected=kpts(),
        weights=(rng.random((n, K)) > 0.25).astype(np.float32),
    )


@pytest.fixture()
def store_and_images(tmp_path) -> tuple[Path, Path]:
    images = tmp_path / "images"
    images.mkdir()
    for name, (h, w) in IMAGES.items():
        assert cv2.imwrite(str(images / name), np.full((h, w, 3), 90, np.uint8))
    root = tmp_path / "store"
    store = PseudoLabelStore(root, num_joints=K)
    store.write_batch(0, 0, person_rows(["a.jpg", "b.png", "a.jpg"], 0, seed=0))  # two persons in a.jpg
    store.write_batch(1, 0, person_rows(["b.png", "a.jpg"], 0, seed=1))
    store.write_batch(1, 1, person_rows(["c.jpg"], 2, seed=2))
    return root, images


def test_prints_the_summary_and_renders_n_pngs(store_and_images, tmp_path):
    root, images = store_and_images
    out = tmp_path / "png"
    cmd = [sys.executable, "-m", "jobs.inspect_store", str(root), "--epoch", "0", "--render", "2"]
    cmd += ["--images", str(images), "--out", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    text = "\n".join(lines[:-1])
    assert "rows 6 in 2 epochs (epoch 0: 3, epoch 1: 3)" in text
    assert "kept-joint fraction" in text and "histogram per joint" in text
    for name in get_skeleton("coco17").joint_names:  # one histogram row per joint
        assert any(line.strip().startswith(name + " ") for line in lines), name

    summary = json.loads(lines[-1])
    assert summary["rows"] == 6 and summary["epochs"] == [0, 1]
    assert np.asarray(summary["pi_histogram"]).shape == (K, 10)
    pngs = [Path(p) for p in summary["rendered"]]
    assert sorted(p.name for p in pngs) == ["epoch0000_a.png", "epoch0000_b.png"]
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in pngs)
    for png in pngs:
        image = cv2.imread(str(png))
        assert image is not None
        source = next(n for n in IMAGES if Path(n).stem == png.stem.split("_", 1)[1])
        assert image.shape == (*IMAGES[source], 3)
        # the three colours are on the grey image (teacher A blue, B green, PCM red; BGR)
        assert (image != 90).any(axis=-1).sum() > 50
        for channel in range(3):
            assert (image[..., channel] > 180).any(), channel


def test_default_epoch_is_the_last_and_render_needs_images(store_and_images, tmp_path, capsys):
    root, images = store_and_images
    summary = main([str(root), "--render", "5", "--images", str(images), "--out", str(tmp_path / "png")])
    # epoch 1 holds three images; five asked, three drawn
    assert sorted(Path(p).name for p in summary["rendered"]) == [
        "epoch0001_a.png",
        "epoch0001_b.png",
        "epoch0001_c.png",
    ]
    assert "rows 6" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main([str(root), "--render", "1"])
    assert e.value.code == 2
