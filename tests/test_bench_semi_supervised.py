"""The synthetic benchmark end to end at toy size: burn-in, methods, JSON contract."""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bench.repeat_summary import main as repeat_summary
from bench.semi_supervised import QUALITY_FILE, main, run_dir, training_seed

REPO = Path(__file__).resolve().parents[1]


def test_quick_benchmark_prints_the_json_contract(tmp_path):
    cmd = [
        sys.executable, "-m", "bench.semi_supervised", "--quick", "--json", "--seed", "3",
        "--methods", "supervised,sspcm", "--out-dir", str(tmp_path), "--repeat", "2",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"burn_in", "supervised", "sspcm", "pseudo_labels"} <= set(table)
    run = table["run"]
    assert {k: run[k] for k in ("seed", "repeat", "train_seed", "steps")} == {
        "seed": 3, "repeat": 2, "train_seed": 2003, "steps": 4,
    }  # fmt: skip
    assert run["steps_per_epoch"] == 2 and run["pool_persons"] > 0
    assert "repeat 2, training seed 2003" in proc.stdout
    for method in ("supervised", "sspcm"):
        row = table[method]
        assert 0.0 <= row["AP"] <= 1.0 and row["network"] == "student"
        assert row["step_s"] > 0 and row["peak_rss_mb"] > 100
        # left/right inversions of the reported network on the validation set, from its results file
        lr = row["left_right"]
        assert lr["AP"] == pytest.approx(row["AP"]) and lr["AP_swaps_undone"] >= lr["AP"]
        assert lr["joints"] > 0 and 0.0 <= lr["swapped"] <= 1.0 - lr["correct"]
    quality = table["pseudo_labels"]
    assert {"A_t", "B_t", "PCM", "mean_AB", "pcm_stats", "by_pi", "by_joint", "by_pair"} <= set(quality)
    # every labelled pool joint is scored once: in one PI bin and under its joint type
    pool = json.loads((tmp_path / "quick_data" / "seed3_d0_mp1" / "pool" / "annotations.json").read_text())
    pool_joints = sum(a["num_keypoints"] for a in pool["annotations"] if a["image_id"] >= 100_000)
    assert sum(b["joints"] for b in quality["by_pi"]) == pool_joints > 0
    assert sum(r["joints"] for r in quality["by_joint"]) == pool_joints
    assert sum(b["fraction"] for b in quality["by_pi"]) == pytest.approx(1.0)
    # by PCM's chosen pair: where it kept (A_t, B_t) its label is exactly their mean
    current, previous = quality["by_pair"]
    assert current["joints"] + previous["joints"] == pool_joints
    assert current["PCM_similarity"] == pytest.approx(current["mean_AB_similarity"], abs=1e-12)
    assert previous["fraction"] == pytest.approx(1.0 - quality["pcm_stats"]["pair_0_fraction"], abs=0.05)
    for r in quality["by_joint"]:
        if r["joints"]:
            assert 0.0 <= r["PCM_swapped"] <= 1.0 - r["PCM_correct"]
    assert "swap" in proc.stdout and "with swaps undone" in proc.stdout
    # the margin's paired bootstrap compared the two methods' own results files
    margin = table["margins"]["sspcm-supervised"]
    assert set(table["margins"]) == {"sspcm-supervised", "supervised-at_lr_drop"} and margin["draws"] == 5
    # supervised is also scored at its first LR drop (has it plateaued?), from its own checkpoint
    assert (tmp_path / "seed3_r2" / "supervised" / "results_student_at_lr_drop.json").is_file()
    drop = table["margins"]["supervised-at_lr_drop"]
    assert drop["diff"] == pytest.approx(
        table["supervised"]["AP"] - table["supervised"]["AP_at_lr_drop"], abs=1e-9
    )
    assert margin["diff"] == pytest.approx(table["sspcm"]["AP"] - table["supervised"]["AP"], abs=1e-9)
    assert margin["ci95"][0] <= margin["ci95"][1]
    # repeat 2 trained into its own directory with its own training seed
    assert not (tmp_path / "seed3").exists()
    sspcm_run = yaml.safe_load((tmp_path / "seed3_r2" / "sspcm" / "config.yaml").read_text())
    sup_cfg = yaml.safe_load((tmp_path / "seed3_r2" / "supervised" / "config.yaml").read_text())["model"]
    assert sspcm_run["train"]["seed"] == 2003
    # the reported networks start from the same burn-in a; SSPCM's teachers from b and c
    sspcm_cfg = sspcm_run["model"]
    assert sspcm_cfg["student_init"] == sup_cfg["student_init"] and Path(sup_cfg["student_init"]).is_dir()
    starts = {role: Path(sspcm_cfg[f"{role}_init"]).name for role in ("student", "teacher_a", "teacher_b")}
    assert starts == {"student": "a", "teacher_a": "c", "teacher_b": "b"}
    assert set(table["burn_in"]) == {"AP_a", "AP_b", "AP_c", "wall_s"}
    # bench.repeat_summary reads the same APs back from the run directories
    summary = repeat_summary([str(tmp_path)])
    expected = {m: pytest.approx(table[m]["AP"]) for m in ("supervised", "sspcm")}
    assert summary["seeds"][3]["repeats"] == {2: expected}
    assert summary["setting"]["steps"] == 4 and summary["unfinished"] == []
    # and checks the goals from the runs' files: SSPCM's run kept its pseudo-label quality
    kept = json.loads((tmp_path / "seed3_r2" / "sspcm" / QUALITY_FILE).read_text())
    assert {k: kept[k] for k in ("A_t", "B_t", "mean_AB", "PCM")} == {
        k: pytest.approx(quality[k]) for k in ("A_t", "B_t", "mean_AB", "PCM")
    }
    goals = {g["goal"].split(":")[0]: g for g in summary["goals"]}
    pcm = goals[
        "PCM's label more accurate on the pool than A_t, than B_t and than mean(A_t, B_t) on every seed"
    ]
    assert pcm["pseudo_labels"] == {
        3: {k: pytest.approx(quality[k]) for k in ("A_t", "B_t", "mean_AB", "PCM")}
    }
    plateau = goals["supervised plateaued on every seed"]["end_minus_at_lr_drop"][3]
    assert plateau["diff"] == pytest.approx(drop["diff"], abs=1e-9)


def test_repeats_have_their_own_directory_and_training_seed(tmp_path):
    args = argparse.Namespace(seed=4, repeat=0, out_dir=str(tmp_path))
    assert training_seed(args) == 4 and run_dir(args, "dual") == tmp_path / "seed4" / "dual"
    args.repeat = 3
    assert training_seed(args) == 3004 and run_dir(args, "dual") == tmp_path / "seed4_r3" / "dual"


def test_negative_repeat_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--repeat", "-1", "--quick", "--out-dir", str(tmp_path)])
    assert "--repeat must be >= 0" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # refused before any data or run was written


def test_a_burn_in_made_another_way_gets_its_own_cache(tmp_path):
    """The burn-in cache is keyed by its recipe: other labeled count, LR or non-method ``--set``
    overrides -> another folder, the default one left as it was; the same recipe, or another
    ``method.*`` override only -> reused; a folder whose recorded recipe differs -> trained again."""
    base = ["--quick", "--methods", "supervised", "--no-pseudo-label-quality", "--out-dir", str(tmp_path)]
    main(base)
    (folder,) = (tmp_path / "quick_data").glob("seed0_*/burn_in_*")
    assert folder.name == "burn_in_4_bs4_l20_lr0.002"
    recipe = json.loads((folder / "a" / "burn_in.json").read_text())
    assert recipe["labeled"] == 20 and recipe["set"] == []
    first = (folder / "a" / "eval.json").stat().st_mtime_ns

    main([*base, "--set", "train.log_every=7"])
    other = sorted(set(folder.parent.glob("burn_in_*")) - {folder})
    assert [o.name[: len(folder.name) + 4] for o in other] == [folder.name + "_set"]
    assert json.loads((other[0] / "a" / "burn_in.json").read_text())["set"] == ["train.log_every=7"]
    assert (folder / "a" / "eval.json").stat().st_mtime_ns == first  # the default cache is kept
    second = (other[0] / "a" / "eval.json").stat().st_mtime_ns

    main([*base, "--set", "train.log_every=7"])
    assert (other[0] / "a" / "eval.json").stat().st_mtime_ns == second  # reused

    # a method ablation does not reach the (supervised) burn-in: reused
    main([*base, "--set", "train.log_every=7", "--set", "method.dual_score_mask=true"])
    assert (other[0] / "a" / "eval.json").stat().st_mtime_ns == second
    assert len(list(folder.parent.glob("burn_in_*"))) == 2

    # a folder whose recorded recipe is not this one's (here: made under another config file,
    # which flipped its views) is trained again
    marker = folder / "a" / "burn_in.json"
    recorded = json.loads(marker.read_text())
    assert recorded["config"]["augment"]["flip_prob"] == 0.0  # the benchmark config's
    recorded["config"]["augment"]["flip_prob"] = 0.5
    marker.write_text(json.dumps(recorded))
    main(base)
    assert (folder / "a" / "eval.json").stat().st_mtime_ns != first
    assert json.loads(marker.read_text())["config"]["augment"]["flip_prob"] == 0.0


def test_data_folder_names_every_generator_setting_that_differs():
    from bench.semi_supervised import data_tag

    base = {"seed": 2, "difficulty": 0.0, "max_people": 1, "left_shade": 0.6}
    assert data_tag(argparse.Namespace(**base)) == "seed2_d0_mp1"
    assert data_tag(argparse.Namespace(**{**base, "left_shade": 0.3})) == "seed2_d0_mp1_ls0.3"
    assert data_tag(argparse.Namespace(**{**base, "max_people": 3, "difficulty": 0.5})) == "seed2_d0.5"
