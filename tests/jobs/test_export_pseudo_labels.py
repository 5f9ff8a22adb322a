"""`python -m jobs.export_pseudo_labels`: trained teachers + PCM over a pool -> store + COCO JSON."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pytest
from pycocotools.coco import COCO

from jobs.export_pseudo_labels import main as export_main
from jobs.train import main as train_main
from pipeline.store.pseudo_label_store import PseudoLabelStore
from tests.helpers import tiny_overrides


@pytest.fixture(scope="module")
def sspcm_run(synthetic_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "run"
    overrides = tiny_overrides(synthetic_data, out, "sspcm") + [
        f"data.unlabeled_ann={synthetic_data['train_ann']}",
        f"data.unlabeled_images={synthetic_data['train_images']}",
        "data.pool_includes_labeled=false",
    ]
    train_main([f"--{o}" for o in overrides] + ["--log-level=WARNING"])
    return out


def run_export(run, pool, out, *extra):
    args = ["--run", str(run), "--pool", str(pool), "--out", str(out), "--log-level=WARNING", *extra]
    return export_main(args)


def test_export_writes_store_and_coco_json(sspcm_run, synthetic_data, tmp_path, capsys):
    pool = synthetic_data["val_ann"].parent
    summary = run_export(sspcm_run, pool, tmp_path / "out", "--truth", "--score-thr", "0.0")
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["exported_persons"] == summary["exported_persons"]
    n_pool = len(json.loads((pool / "annotations.json").read_text())["annotations"])
    assert summary["persons"] == n_pool

    coco = COCO(str(tmp_path / "out" / "pseudo_labels.json"))  # loads with pycocotools
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) == summary["exported_persons"] > 0
    for a in anns:
        kp = np.asarray(a["keypoints"]).reshape(-1, 3)
        assert a["num_keypoints"] == int((kp[:, 2] > 0).sum()) >= 1
        assert np.all(kp[kp[:, 2] == 0, :2] == 0)
        assert 0.0 <= a["score"]

    # the store holds one row per pool person, readable by DuckDB without project code
    glob = str(tmp_path / "out" / "store" / "**" / "*.parquet")
    q = f"select count(*), count(distinct person_index) from read_parquet('{glob}')"
    rows = duckdb.sql(q).fetchall()[0]
    assert rows == (n_pool, n_pool)
    store = PseudoLabelStore.open(tmp_path / "out" / "store")
    back = store.read_rows(store.epochs()[0])
    assert back.heatmaps is not None and back.heatmaps.shape[1:] == (17, 16, 16)

    quality = json.loads((tmp_path / "out" / "quality.json").read_text())
    assert set(quality) == {"A_t", "B_t", "mean_AB", "PCM", "by_pi", "by_joint"}
    assert all(0.0 <= quality[k]["AP"] <= 1.0 for k in ("A_t", "B_t", "mean_AB", "PCM"))
    # every labelled pool joint lands in exactly one PI bin (pool boxes match their own truth)
    truth_anns = json.loads((pool / "annotations.json").read_text())["annotations"]
    truth_joints = sum(a["num_keypoints"] for a in truth_anns)
    bins = quality["by_pi"]
    assert sum(b["joints"] for b in bins) == truth_joints > 0
    assert sum(b["fraction"] for b in bins) == pytest.approx(1.0)
    for b in bins:
        for source in ("A_t", "B_t", "PCM"):
            value = b[f"{source}_similarity"]
            assert (value is None) == (b["joints"] == 0) and (value is None or 0.0 <= value <= 1.0)
            swapped = b[f"{source}_swapped"]
            assert swapped is None or 0.0 <= swapped <= 1.0 - b[f"{source}_correct"]
    # by joint type: the same joints, one row per COCO joint, in the skeleton's order
    by_joint = quality["by_joint"]
    assert [r["joint"] for r in by_joint][:3] == ["nose", "left_eye", "right_eye"] and len(by_joint) == 17
    assert sum(r["joints"] for r in by_joint) == truth_joints
    assert by_joint[0]["PCM_swapped"] in (0.0, None)  # the nose has no mirror joint


def test_exported_json_trains_as_a_labeled_set(sspcm_run, synthetic_data, tmp_path):
    pool = synthetic_data["val_ann"].parent
    run_export(sspcm_run, pool, tmp_path / "out", "--score-thr", "0.0", "--min-joints", "3")
    exported = tmp_path / "out" / "pseudo_labels.json"
    data = {**synthetic_data, "train_ann": exported, "train_images": pool / "images"}
    out = tmp_path / "student"
    train_main([f"--{o}" for o in tiny_overrides(data, out, "supervised")] + ["--log-level=WARNING"])
    assert "eval/student/AP" in json.loads((out / "eval.json").read_text())


def test_export_options_filter_joints_and_persons(sspcm_run, synthetic_data, tmp_path):
    pool = synthetic_data["val_ann"].parent
    run_export(sspcm_run, pool, tmp_path / "a", "--score-thr", "0.0", "--joints", "0,5,6")
    anns = json.loads((tmp_path / "a" / "pseudo_labels.json").read_text())["annotations"]
    for a in anns:
        kp = np.asarray(a["keypoints"]).reshape(-1, 3)
        assert set(np.nonzero(kp[:, 2])[0]) <= {0, 5, 6}
    summary = run_export(sspcm_run, pool, tmp_path / "b", "--score-thr", "1e9")
    assert summary["exported_persons"] == 0  # nothing passes an impossible score threshold


def test_export_uses_the_runs_pcm_settings_unless_given(sspcm_run, synthetic_data, tmp_path):
    import shutil

    import yaml

    pool = synthetic_data["val_ann"].parent
    run = tmp_path / "run"
    shutil.copytree(sspcm_run, run, ignore=shutil.ignore_patterns("pseudo_labels", "tensorboard"))
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["method"].update(pcm_score_thr=0.0, pcm_pi_thr=0.02, pcm_label="gaussian")
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))

    def pcm_of(out):
        info = json.loads((out / "pseudo_labels.json").read_text())["info"]
        return info["score_thr"], info["pi_thr"], info["pcm_label"]

    def kept_joints(out):
        anns = json.loads((out / "pseudo_labels.json").read_text())["annotations"]
        return sum(a["num_keypoints"] for a in anns)

    run_export(run, pool, tmp_path / "from_run")
    assert pcm_of(tmp_path / "from_run") == (0.0, 0.02, "gaussian")
    # the command line wins, and "none" turns the PI threshold off
    run_export(run, pool, tmp_path / "given", "--pi-thr", "none", "--pcm-label", "mean")
    assert pcm_of(tmp_path / "given") == (0.0, None, "mean")
    # the run's PI threshold really drops joints
    run_export(run, pool, tmp_path / "run_pi", "--pcm-label", "mean")
    assert kept_joints(tmp_path / "run_pi") < kept_joints(tmp_path / "given")
    # a checkpoint directory outside any run: PCMConfig's defaults
    bare = tmp_path / "bare" / "checkpoints" / "step_1"
    shutil.copytree(sorted((sspcm_run / "checkpoints").iterdir())[-1], bare)
    out = tmp_path / "b"
    export_main(["--checkpoint", str(bare), "--pool", str(pool), "--out", str(out), "--log-level=WARNING"])
    assert pcm_of(out) == (0.1, None, "mean")


def test_export_over_ray_data_matches_local(sspcm_run, synthetic_data, tmp_path, ray_session):
    pool = synthetic_data["val_ann"].parent
    run_export(sspcm_run, pool, tmp_path / "local", "--score-thr", "0.0")
    run_export(
        sspcm_run, pool, tmp_path / "ray", "--score-thr", "0.0", "--runtime", "ray", "--batch-size", "8"
    )
    a = json.loads((tmp_path / "local" / "pseudo_labels.json").read_text())["annotations"]
    b = json.loads((tmp_path / "ray" / "pseudo_labels.json").read_text())["annotations"]
    key = lambda x: (x["image_id"], x["bbox"])
    a, b = sorted(a, key=key), sorted(b, key=key)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x["keypoints"], y["keypoints"], atol=1e-3)


def test_export_without_teachers_is_a_clear_error(synthetic_data, tmp_path, caplog):
    with pytest.raises(SystemExit):
        run_export(tmp_path, synthetic_data["val_ann"].parent, tmp_path / "o")
    assert "teacher_a.pt" in caplog.text


def test_inspect_store_prints_summary_and_renders_pngs(sspcm_run, synthetic_data, tmp_path, capsys):
    import cv2

    from jobs.inspect_store import main as inspect_main

    store_dir = sspcm_run / "pseudo_labels"  # written by the training run itself
    summary = inspect_main(
        [str(store_dir), "--render", "3", "--images", str(synthetic_data["train_images"]),
         "--out", str(tmp_path / "png"), "--log-level=WARNING"]
    )  # fmt: skip
    text = capsys.readouterr().out
    assert "kept-joint fraction" in text and "left_ankle" in text
    assert summary["rows"] == sum(summary["rows_per_epoch"].values()) > 0
    assert len(summary["pi_histogram"]) == 17
    pngs = sorted((tmp_path / "png").glob("*.png"))
    assert len(pngs) == 3
    for p in pngs:
        img = cv2.imread(str(p))
        assert img is not None and max(img.shape[:2]) == 256 and img.shape[2] == 3
