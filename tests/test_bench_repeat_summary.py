"""bench.repeat_summary: means and margins over the benchmark's repeats, read from run directories."""

import argparse
import json
import math
from pathlib import Path

import pytest

from bench.repeat_summary import collect, main, summarise
from bench.semi_supervised import run_dir
from pipeline.config import load_config, save_config

REPO = Path(__file__).resolve().parents[1]


def write_run(root: Path, seed: int, repeat: int, method: str, ap: float | None, steps_per_epoch: int = 30):
    """A benchmark run directory as bench.semi_supervised leaves it: config.yaml (+ eval.json once
    finished; ``ap=None`` for a run still training)."""
    run = run_dir(argparse.Namespace(seed=seed, repeat=repeat, out_dir=str(root)), method)
    data = f"/data/bench/seed{seed}_d0.5"
    cfg = load_config(
        REPO / "configs" / "synthetic_benchmark.yaml",
        [
            f"data.labeled_ann={data}/labeled/annotations.json",
            "data.num_labeled=300",
            f"method.name={'sspcm' if method.startswith('sspcm') else method}",
            "optim.epochs=15",
            f"optim.steps_per_epoch={steps_per_epoch}",
            f"train.seed={seed + 1000 * repeat}",
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
