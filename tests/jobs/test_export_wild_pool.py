"""Exporting a wild pool: a plain image folder + a detection file, Ray Data workers, resume."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pytest
from pycocotools.coco import COCO

from jobs.export_pseudo_labels import main as export_main
from jobs.train import main as train_main
from tests.helpers import tiny_overrides

REPO = Path(__file__).resolve().parents[2]
THR = 0.3


@pytest.fixture(scope="module")
def dual_run(synthetic_data, tmp_path_factory):
    """Two trained teachers (Dual Network, two epochs: PCM gets a previous epoch)."""
    out = tmp_path_factory.mktemp("wild") / "run"
    overrides = tiny_overrides(synthetic_data, out, "dual")
    train_main([f"--{o}" for o in overrides] + ["--log-level=WARNING"])
    return out


@pytest.fixture(scope="module")
def wild_folder(synthetic_data, tmp_path_factory):
    """A folder of images in two sub-folders, no annotations file, and a detection file naming
    images by file name and by the number in it, with scores on both sides of ``THR``."""
    root = tmp_path_factory.mktemp("wild_pool")
    images = root / "photos"
    truth = json.loads(synthetic_data["train_ann"].read_text())
    names = {img["id"]: img["file_name"] for img in truth["images"]}
    rng = np.random.default_rng(0)
    dets = []
    for i, ann in enumerate(truth["annotations"]):
        name = names[ann["image_id"]]
        sub = "a" if ann["image_id"] % 2 else "b/c"
        target = images / sub / name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(synthetic_data["train_images"] / name, target)
        box = [v + float(rng.uniform(-2, 2)) for v in ann["bbox"]]
        det = {"category_id": 1, "bbox": box, "score": float(rng.uniform(0, 1))}
        det.update({"file_name": f"{sub}/{name}"} if i % 2 else {"image_id": int(Path(name).stem)})
        dets.append(det)
    dets.append({"file_name": "a/missing.jpg", "category_id": 3, "bbox": [0, 0, 9, 9], "score": 1.0})
    boxes = root / "detections.json"
    boxes.write_text(json.dumps(dets))
    kept = sum(d["score"] >= THR and d["category_id"] == 1 for d in dets)
    assert 0 < kept < len(dets) - 1
    return {"images": images, "boxes": boxes, "kept": kept}


def export_args(run, folder, out, *extra):
    return [
        "--run", str(run), "--images", str(folder["images"]), "--boxes", str(folder["boxes"]),
        "--det-score-thr", str(THR), "--out", str(out), "--score-thr", "0.0", "--batch-size", "4",
        "--log-level=WARNING", *extra,
    ]  # fmt: skip


def store_rows(out: Path) -> dict[int, list]:
    """person_index -> (image_id, corrected keypoints) of every store row, read with DuckDB."""
    glob = str(out / "store" / "**" / "*.parquet")
    rows = duckdb.sql(f"select person_index, image_id, kpts_corrected from read_parquet('{glob}')").fetchall()
    return {int(p): (int(i), list(k)) for p, i, k in rows}, len(rows)


def test_folder_export_on_two_ray_workers(dual_run, wild_folder, tmp_path, ray_session):
    assert not any(wild_folder["images"].rglob("*.json"))  # no annotations file anywhere
    summary = export_main(
        export_args(dual_run, wild_folder, tmp_path / "ray", "--runtime", "ray", "--workers", "2")
    )
    rows, n = store_rows(tmp_path / "ray")
    assert n == len(rows) == wild_folder["kept"] == summary["persons"] == summary["labeled_persons"]
    assert sorted(rows) == list(range(n))  # unique keys 0..N-1
    coco = COCO(str(tmp_path / "ray" / "pseudo_labels.json"))
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) == summary["exported_persons"] == n  # score threshold 0: every person exported
    assert {a["id"] - 1 for a in anns} == set(rows)
    files = {img["file_name"] for img in coco.dataset["images"]}
    assert all((wild_folder["images"] / f).is_file() for f in files)
    assert coco.dataset["categories"][0]["keypoints"][0] == "nose"
    for a in anns:
        assert a["image_id"] == rows[a["id"] - 1][0]

    # the same labels as in this process
    export_main(export_args(dual_run, wild_folder, tmp_path / "local"))
    local, _ = store_rows(tmp_path / "local")
    assert set(local) == set(rows)
    for p in rows:
        np.testing.assert_allclose(local[p][1], rows[p][1], atol=1e-3)


def test_an_export_in_out_needs_resume(dual_run, wild_folder, tmp_path, caplog):
    export_main(export_args(dual_run, wild_folder, tmp_path / "o"))
    with pytest.raises(SystemExit):
        export_main(export_args(dual_run, wild_folder, tmp_path / "o"))
    assert "--resume" in caplog.text
    with pytest.raises(SystemExit):  # other settings: the field is named
        export_main(export_args(dual_run, wild_folder, tmp_path / "o", "--min-joints", "5", "--resume"))
    assert "'min_joints'" in caplog.text
    before = (tmp_path / "o" / "pseudo_labels.json").read_bytes()
    summary = export_main(export_args(dual_run, wild_folder, tmp_path / "o", "--resume"))  # nothing left
    assert summary["labeled_persons"] == wild_folder["kept"]
    assert (tmp_path / "o" / "pseudo_labels.json").read_bytes() == before


def _wait_for_files(store: Path, at_least: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if len(list(store.rglob("part-*.parquet"))) >= at_least:
            return
        if proc.poll() is not None:
            pytest.fail(f"the export ended (rc {proc.returncode}) before it could be killed")
        time.sleep(0.05)
    pytest.fail("the export wrote no store file in time")


def test_killed_driver_then_resume_gives_the_uninterrupted_rows(dual_run, wild_folder, tmp_path):
    export_main(export_args(dual_run, wild_folder, tmp_path / "whole"))
    want, _ = store_rows(tmp_path / "whole")

    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable,
        "-m",
        "jobs.export_pseudo_labels",
        *export_args(dual_run, wild_folder, out, "--batch-size", "2"),
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_for_files(out / "store", 2, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = len(store_rows(out)[0])
    assert 0 < partial < len(want)  # killed mid-way
    assert not (out / "pseudo_labels.json").exists()

    summary = export_main(export_args(dual_run, wild_folder, out, "--batch-size", "2", "--resume"))
    got, n = store_rows(out)
    assert n == len(got) == len(want) == summary["labeled_persons"]  # none lost, none twice
    for p in want:
        assert got[p][0] == want[p][0]
        np.testing.assert_allclose(got[p][1], want[p][1], atol=1e-5)
    a = json.loads((out / "pseudo_labels.json").read_text())["annotations"]
    b = json.loads((tmp_path / "whole" / "pseudo_labels.json").read_text())["annotations"]
    assert sorted(x["id"] for x in a) == sorted(x["id"] for x in b)


def _labeling_workers() -> list[int]:
    """PIDs of this machine's Ray Data labeling actors (their process title names the class)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if b"PoolLabelWriter" in (proc / "cmdline").read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def test_killed_ray_worker_then_resume_gives_the_uninterrupted_rows(
    dual_run, wild_folder, tmp_path, ray_session
):
    import threading

    export_main(export_args(dual_run, wild_folder, tmp_path / "whole"))
    want, _ = store_rows(tmp_path / "whole")
    out = tmp_path / "killed"
    args = export_args(dual_run, wild_folder, out, "--batch-size", "2", "--runtime", "ray", "--workers", "2")
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["summary"] = export_main(args)
        except BaseException as e:  # the export may fail with its worker, or survive it
            outcome["error"] = e

    thread = threading.Thread(target=run)
    thread.start()
    end = time.monotonic() + 120
    while time.monotonic() < end and not list((out / "store").rglob("part-*.parquet")):
        time.sleep(0.05)
    victims = _labeling_workers()
    assert victims, "no labeling worker to kill"
    os.kill(victims[0], signal.SIGKILL)
    thread.join(timeout=300)
    assert not thread.is_alive()
    if "summary" not in outcome:  # the worker took the export down: finish it
        export_main([*args, "--resume"])
    got, n = store_rows(out)
    assert n == len(got) == len(want)  # none lost, none twice
    for p in want:
        assert got[p][0] == want[p][0]
        np.testing.assert_allclose(got[p][1], want[p][1], atol=1e-3)


def test_export_to_a_filesystem_uri(dual_run, wild_folder, tmp_path):
    out = tmp_path / "by_uri"
    summary = export_main(export_args(dual_run, wild_folder, out.as_uri()))
    assert summary["json"] == out.as_uri() + "/pseudo_labels.json"
    rows, n = store_rows(out)  # the same files, read as a local folder
    assert n == len(rows) == wild_folder["kept"]
    coco = COCO(str(out / "pseudo_labels.json"))
    assert len(coco.getAnnIds()) == n
    again = export_main(export_args(dual_run, wild_folder, out.as_uri(), "--resume"))
    assert again["labeled_persons"] == n
