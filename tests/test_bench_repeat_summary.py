"""bench.repeat_summary: means and margins over the benchmark's repeats, read from run directories."""

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pytest

from bench.repeat_summary import collect, goals, main, summarise
from bench.semi_supervised import QUALITY_FILE, VARIANTS, run_dir
from pipeline.config import load_config, save_config
from pipeline.evaluation.metrics import coco_keypoint_eval, ground_truth_as_results, load_coco_annotations

REPO = Path(__file__).resolve().parents[1]


def write_run(
    root: Path,
    seed: int,
    repeat: int,
    method: str,
    ap: float | None,
    steps_per_epoch: int = 30,
    val_ann: Path | None = None,
):
    """A benchmark run directory as bench.semi_supervised leaves it: config.yaml (+ eval.json once
    finished; ``ap=None`` for a run still training)."""
    run = run_dir(argparse.Namespace(seed=seed, repeat=repeat, out_dir=str(root)), method)
    data = f"/data/bench/seed{seed}_d0.5"
    cfg = load_config(
        REPO / "configs" / "synthetic_benchmark.yaml",
        [
            # the oracle trains on every label of the seed's data (its all_labels.json)
            f"data.labeled_ann={data}/all_labels.json"
            if method == "oracle"
            else f"data.labeled_ann={data}/labeled/annotations.json",
            "data.num_labeled=300",
            f"method.name={VARIANTS[method][0]}",
            "optim.epochs=15",
            f"optim.steps_per_epoch={steps_per_epoch}",
            f"train.seed={seed + 1000 * repeat}",
            *([f"data.val_ann={val_ann}"] if val_ann else []),
        ],
    )
    save_config(cfg, run / "config.yaml")
    if ap is not None:
        network = "teacher_a" if method == "dual" else "student"
        (run / "eval.json").write_text(json.dumps({f"eval/{network}/AP": ap, "eval/ensemble_ab/AP": 0.5}))
    return run


# seed -> repeat -> (supervised, dual, sspcm) AP
APS = {
    0: {0: (0.060, 0.070, 0.080), 1: (0.050, 0.064, 0.062), 2: (0.055, 0.066, 0.074)},
    1: {0: (0.040, 0.041, 0.046)},
}


def write_all(first: Path, second: Path) -> None:
    """Supervised and Dual of every repeat in ``first``, SSPCM in ``second`` (split as in practice)."""
    for seed, repeats in APS.items():
        for repeat, (sup, dual, sspcm) in repeats.items():
            write_run(first, seed, repeat, "supervised", sup)
            write_run(first, seed, repeat, "dual", dual)
            write_run(second, seed, repeat, "sspcm", sspcm)


def test_means_and_margins_over_repeats_and_dirs(tmp_path):
    write_all(tmp_path / "a", tmp_path / "b")
    unfinished = write_run(tmp_path / "a", 1, 1, "sspcm", None)  # still training
    runs, left_out, setting = collect([tmp_path / "a", tmp_path / "b"])
    assert left_out == [unfinished]
    assert setting == {"steps": 450, "labeled_persons": 300, "data": "d0.5"}
    assert len(runs) == 12 and {(r.seed, r.repeat) for r in runs} == {(0, 0), (0, 1), (0, 2), (1, 0)}
    summary = summarise(runs)
    seed0 = summary["seeds"][0]
    assert seed0["repeats"][1] == {"supervised": 0.050, "dual": 0.064, "sspcm": 0.062}
    assert seed0["methods"]["sspcm"]["mean"] == pytest.approx((0.080 + 0.062 + 0.074) / 3)
    diffs = [0.080 - 0.070, 0.062 - 0.064, 0.074 - 0.066]
    margin = seed0["margins"]["sspcm-dual"]
    mean = sum(diffs) / 3
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 2)
    assert margin["mean"] == pytest.approx(mean) and margin["sd"] == pytest.approx(sd)
    assert margin["se"] == pytest.approx(sd / math.sqrt(3))
    assert margin["n"] == 3 and margin["positive"] == 2
    # one repeat: a mean but no spread
    seed1 = summary["seeds"][1]["margins"]["dual-supervised"]
    assert seed1["n"] == 1 and seed1["mean"] == pytest.approx(0.001) and math.isnan(seed1["sd"])
    # pooled over the four (seed, repeat) pairs
    pooled = summary["pooled"]["sspcm-dual"]
    assert pooled["n"] == 4 and pooled["positive"] == 3
    assert pooled["mean"] == pytest.approx((sum(diffs) + 0.005) / 4)
    # goals without bootstrap draws: SSPCM - Dual is the mean of the two seeds' means, not judged on
    # two seeds; the intervals are not measured
    checked = {g["goal"].split(":")[0]: g for g in goals(runs, summary, draws=0)}
    sspcm_dual = checked["SSPCM - Dual above 0 by at least 2 standard errors, pooled over the seeds"]
    assert sspcm_dual["runs"] == 4 and sspcm_dual["seeds"] == 2
    assert sspcm_dual["mean"] == pytest.approx((mean + 0.005) / 2)
    assert sspcm_dual["se"] == pytest.approx(abs(mean - 0.005) / 2)
    assert sspcm_dual["se_over_runs"] == pytest.approx(pooled["se"])
    assert sspcm_dual["met"] is None and "not judged under 3 seeds" in sspcm_dual["measured"]
    assert checked["Dual - supervised"]["met"] is None
    assert checked["3 seeds x 3 repeats of supervised, Dual and SSPCM"]["repeats_of_all_three"] == {
        0: 3,
        1: 1,
    }


def test_sspcm_dual_is_judged_over_seed_means_not_runs(tmp_path):
    """Repeats of one seed share its data and burn-ins: three close repeats of a seed where SSPCM
    leads do not make a margin that the other two seeds do not share."""
    margins = {(0, 0): 0.030, (0, 1): 0.031, (0, 2): 0.029, (1, 0): 0.002, (2, 0): -0.001}
    for (seed, repeat), diff in margins.items():
        write_run(tmp_path, seed, repeat, "supervised", 0.05)
        write_run(tmp_path, seed, repeat, "dual", 0.06)
        write_run(tmp_path, seed, repeat, "sspcm", 0.06 + diff)
    runs, _, _ = collect([tmp_path])
    summary = summarise(runs)
    per_run = summary["pooled"]["sspcm-dual"]
    assert per_run["n"] == 5 and per_run["mean"] >= 2 * per_run["se"]  # over runs it would pass
    checked = {g["goal"].split(":")[0]: g for g in goals(runs, summary, draws=0)}
    sspcm_dual = checked["SSPCM - Dual above 0 by at least 2 standard errors, pooled over the seeds"]
    seed_means = [0.030, 0.002, -0.001]
    mean = sum(seed_means) / 3
    se = math.sqrt(sum((m - mean) ** 2 for m in seed_means) / 2) / math.sqrt(3)
    assert sspcm_dual["seeds"] == 3 and sspcm_dual["mean"] == pytest.approx(mean)
    assert sspcm_dual["se"] == pytest.approx(se) and sspcm_dual["met"] is False
    assert "over 3 seeds' means" in sspcm_dual["measured"] and "(5 runs)" in sspcm_dual["measured"]


def test_cli_prints_the_table_and_standard_json(tmp_path, capsys):
    write_all(tmp_path / "a", tmp_path / "b")
    main([str(tmp_path / "a"), str(tmp_path / "b"), "--json"])
    out = capsys.readouterr().out.strip().splitlines()
    table = json.loads(out[-1])  # standard JSON: the spread of a single repeat is null, not NaN
    assert table["seeds"]["1"]["margins"]["sspcm-dual"]["sd"] is None
    assert table["pooled"]["dual-supervised"]["n"] == 4 and len(table["runs"]) == 12
    assert any(line.startswith("0     mean") for line in out)
    assert any("all runs dual-supervised: +0.0090 AP" in line for line in out)


def test_a_run_found_twice_is_an_error_naming_both(tmp_path):
    write_all(tmp_path / "a", tmp_path / "b")
    again = write_run(tmp_path / "b", 0, 2, "dual", 0.07)
    with pytest.raises(ValueError, match="dual of seed 0 repeat 2 found twice") as e:
        collect([tmp_path / "a", tmp_path / "b"])
    assert str(again) in str(e.value) and str(tmp_path / "a" / "seed0_r2" / "dual") in str(e.value)


def test_runs_of_different_settings_are_not_averaged(tmp_path):
    write_all(tmp_path / "a", tmp_path / "b")
    longer = write_run(tmp_path / "c", 2, 0, "sspcm", 0.09, steps_per_epoch=60)
    with pytest.raises(ValueError, match="different settings") as e:
        collect([tmp_path / "a", tmp_path / "c"])
    assert f"{longer} has steps 900" in str(e.value) and "has 450" in str(e.value)


def test_bad_eval_file_names_file_and_field(tmp_path, capsys):
    run = write_run(tmp_path, 0, 0, "dual", 0.07)
    (run / "eval.json").write_text(json.dumps({"eval/student/AP": 0.07}))
    with pytest.raises(ValueError, match="no field 'eval/teacher_a/AP'") as e:
        collect([tmp_path])
    assert str(run / "eval.json") in str(e.value)
    (run / "eval.json").write_text('{"eval/teacher_a/AP": NaN}')
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path)])
    assert exit_info.value.code == 2
    assert "is nan, not a finite number" in capsys.readouterr().err


def test_no_finished_runs_is_an_error(tmp_path, capsys):
    write_run(tmp_path, 0, 0, "sspcm", None)
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path)])
    assert exit_info.value.code == 2 and "no finished benchmark runs" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tmp_path / "missing")])
    assert "benchmark output directory not found" in capsys.readouterr().err


K = 17


def write_val(path: Path, images: int = 12) -> Path:
    """A COCO validation file: one person of 17 visible joints per image."""
    anns = []
    for i in range(images):
        xs, ys = 10.0 + np.arange(K) * 3.0 + i, 20.0 + np.arange(K) * 4.0
        kpts = np.stack([xs, ys, np.full(K, 2.0)], axis=1).ravel().tolist()
        anns.append(
            {"id": i + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0, "num_keypoints": K,
             "keypoints": kpts, "bbox": [5.0, 15.0, 60.0, 80.0], "area": 60.0 * 80.0}
        )  # fmt: skip
    path.write_text(
        json.dumps(
            {
                "images": [
                    {"id": i + 1, "file_name": f"{i}.jpg", "width": 100, "height": 100} for i in range(images)
                ],
                "annotations": anns,
                "categories": [
                    {"id": 1, "name": "person", "keypoints": [f"j{k}" for k in range(K)], "skeleton": []}
                ],
            }
        )
    )
    return path


def write_results(val: Path, path: Path, shift_px: float, seed: int) -> float:
    """Ground truth moved by a random shift of ``shift_px`` px per joint, as a results file; its AP."""
    rng = np.random.default_rng(seed)
    res = ground_truth_as_results(load_coco_annotations(val))
    for r in res:
        kp = np.asarray(r["keypoints"], dtype=np.float64).reshape(K, 3)
        kp[:, :2] += rng.normal(0.0, shift_px, size=(K, 2))
        r["keypoints"] = kp.ravel().tolist()
    path.write_text(json.dumps(res))
    return coco_keypoint_eval(load_coco_annotations(val), res)["AP"]


def write_scored_run(root: Path, val: Path, seed: int, method: str, shift_px: float, **extra_files) -> Path:
    """A finished run whose eval.json holds the AP of its results file (the reported network's)."""
    network = "teacher_a" if method == "dual" else "student"
    run = run_dir(argparse.Namespace(seed=seed, repeat=0, out_dir=str(root)), method)
    run.mkdir(parents=True, exist_ok=True)
    ap = write_results(val, run / f"results_{network}.json", shift_px, seed=100 * seed + len(method))
    write_run(root, seed, 0, method, ap, val_ann=val)
    for name, shift in extra_files.items():
        write_results(val, run / f"results_{network}_{name}.json", shift, seed=7)
    return run


def test_goals_are_checked_from_the_runs_files(tmp_path, capsys):
    val = write_val(tmp_path / "val.json")
    root = tmp_path / "bench"
    shifts = {"supervised": 4.0, "oracle": 0.5, "dual": 1.5, "sspcm": {0: 1.0, 1: 0.7}}
    for seed in (0, 1):
        for method, shift in shifts.items():
            shift = shift[seed] if isinstance(shift, dict) else shift
            # supervised at its first LR drop: as far off as at its end (plateaued), or much worse
            extra = {"at_lr_drop": {0: 4.0, 1: 12.0}[seed]} if method == "supervised" else {}
            run = write_scored_run(root, val, seed, method, shift, **extra)
            if method == "sspcm":  # seed 1: PCM below the mean of the current teachers
                quality = {"A_t": 0.30, "B_t": 0.31, "mean_AB": 0.33, "PCM": 0.34 if seed == 0 else 0.32}
                (run / QUALITY_FILE).write_text(json.dumps({**quality, "pcm_stats": {}}))
    runs, _, _ = collect([root])
    aps = {(r.seed, r.method): r.ap for r in runs}
    checked = {g["goal"].split(":")[0]: g for g in goals(runs, summarise(runs), draws=40)}
    assert len(checked) == 8
    repeats = checked["3 seeds x 3 repeats of supervised, Dual and SSPCM"]
    assert repeats["met"] is False and repeats["repeats_of_all_three"] == {0: 1, 1: 1}
    band = checked["supervised AP between 0.20 and 0.50 on every seed"]
    assert band["supervised"] == {0: aps[0, "supervised"], 1: aps[1, "supervised"]}
    assert band["met"] is all(0.2 <= aps[s, "supervised"] <= 0.5 for s in (0, 1))
    oracle = checked["oracle at least 1.5x supervised on every seed"]
    assert oracle["oracle_over_supervised"][1] == pytest.approx(aps[1, "oracle"] / aps[1, "supervised"])
    assert oracle["met"] is all(aps[s, "oracle"] >= 1.5 * aps[s, "supervised"] for s in (0, 1))
    # seed 1 gained far more than noise after its LR drop: not plateaued
    plateau = checked["supervised plateaued on every seed"]
    assert plateau["end_minus_at_lr_drop"][1]["ci95"][0] > 0 and plateau["met"] is False
    assert plateau["end_minus_at_lr_drop"][0]["ci95"][0] <= 0
    relative = checked["Dual - supervised at least +25 % of supervised (mean over every run)"]
    expected = sum(aps[s, "dual"] - aps[s, "supervised"] for s in (0, 1)) / sum(
        aps[s, "supervised"] for s in (0, 1)
    )
    assert relative["relative"] == pytest.approx(expected) and relative["met"] is (expected >= 0.25)
    intervals = checked["Dual - supervised"]["dual_minus_supervised"]
    assert intervals[0]["diff"] == pytest.approx(aps[0, "dual"] - aps[0, "supervised"])
    assert checked["Dual - supervised"]["met"] is all(intervals[s]["ci95"][0] > 0 for s in (0, 1))
    sspcm_dual = checked["SSPCM - Dual above 0 by at least 2 standard errors, pooled over the seeds"]
    diffs = [aps[s, "sspcm"] - aps[s, "dual"] for s in (0, 1)]
    se = abs(diffs[0] - diffs[1]) / 2  # two runs: sd / sqrt(2) = |d0 - d1| / 2
    assert sspcm_dual["mean"] == pytest.approx(sum(diffs) / 2) and sspcm_dual["se"] == pytest.approx(se)
    assert sspcm_dual["met"] is None and "not judged under 3 seeds" in sspcm_dual["measured"]  # two seeds
    pcm = checked[
        "PCM's label more accurate on the pool than A_t, than B_t and than mean(A_t, B_t) on every seed"
    ]
    assert pcm["met"] is False and "seed 1: PCM 0.3200" in pcm["measured"]
    # a missing quality file: not measured, and the file is named
    (root / "seed1" / "sspcm" / QUALITY_FILE).unlink()
    out = main([str(root), "--draws", "10", "--json"])
    # left/right inversions per method, from the same results files
    assert out["left_right"]["dual"]["runs"] == 2
    assert out["left_right"]["dual"]["AP"] == pytest.approx((aps[0, "dual"] + aps[1, "dual"]) / 2)
    assert out["left_right"]["oracle"]["AP_swaps_undone"] >= out["left_right"]["oracle"]["AP"]
    pcm = next(g for g in out["goals"] if g["goal"].startswith("PCM"))
    assert pcm["met"] is None and str(root / "seed1" / "sspcm" / QUALITY_FILE) in pcm["measured"]
    printed = capsys.readouterr().out
    assert "[not measured] PCM's label" in printed and "[     NOT met] 3 seeds x 3 repeats" in printed
    assert json.loads(printed.strip().splitlines()[-1])["goals"][0]["met"] is False
