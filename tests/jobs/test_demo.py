"""`python -m jobs.demo` end to end on a few images: untrained, supervised and SSPCM-over-Ray APs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from jobs.demo import main as demo_main
from pipeline.reporting.demo_figure import ap_curve


def test_demo_runs_sspcm_over_ray_next_to_supervised(tmp_path, ray_session, capsys):
    root = tmp_path / "synthetic"
    overrides = [
        f"--data.labeled_ann={root / 'train' / 'annotations.json'}",
        f"--data.labeled_images={root / 'train' / 'images'}",
        f"--data.val_ann={root / 'val' / 'annotations.json'}",
        f"--data.val_images={root / 'val' / 'images'}",
        "--data.num_labeled=6",
        "--codec.input_size=[64,64]",
        "--codec.heatmap_size=[16,16]",
        "--optim.batch_size=4",
        "--optim.unlabeled_batch_size=4",
        "--optim.epochs=2",
        "--optim.lr_steps=[1]",
        f"--train.out_dir={tmp_path / 'run'}",
        "--train.eval_every_epochs=1",
    ]
    args = ["--train-images", "8", "--val-images", "3", "--burn-in-steps", "2", "--bootstrap-draws", "5"]
    args.append("--log-level=WARNING")
    summary = demo_main([*args, *overrides])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == summary
    aps = [summary["untrained_AP"], summary["supervised"]["AP"], summary["sspcm"]["AP"]]
    aps += [summary["sspcm"]["ensemble_AP"], *(summary["burn_in"][f"AP_{n}"] for n in "abc")]
    assert all(0.0 <= ap <= 1.0 for ap in aps)
    # the margin is SSPCM's student minus the baseline, with a paired-bootstrap interval around it
    margin = summary["margin"]
    assert margin["diff"] == pytest.approx(summary["sspcm"]["AP"] - summary["supervised"]["AP"], abs=1e-9)
    assert margin["draws"] == 5 and margin["ci95"][0] <= margin["ci95"][1]
    assert 0.0 <= margin["p_sspcm_above"] <= 1.0
    # the picture: AP against step (an evaluation after each epoch) and PCM labels on pool persons
    png = Path(summary["figure"])
    assert png == tmp_path / "run" / "demo.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [step for step, _ in ap_curve(tmp_path / "run")] == [summary["steps"] // 2, summary["steps"]]
    # both students start from burn-in a; SSPCM's teachers A and B from burn-ins c and b
    model = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["model"]
    for name in ("a", "b", "c"):
        assert (tmp_path / f"run_burn_in_{name}" / "eval.json").is_file()
    starts = {role: Path(model[f"{role}_init"]).name for role in ("student", "teacher_a", "teacher_b")}
    assert starts == {"student": "run_burn_in_a", "teacher_a": "run_burn_in_c", "teacher_b": "run_burn_in_b"}
    assert str(tmp_path / "run_burn_in_a") in (tmp_path / "run_supervised" / "config.yaml").read_text()
    # the SSPCM run went through the Ray driver and wrote its checkpoints and pseudo labels
    run = tmp_path / "run"
    ckpt = sorted((run / "checkpoints").iterdir())[-1]
    assert {"teacher_a.pt", "teacher_b.pt", "student.pt"} <= {p.name for p in ckpt.iterdir()}
    assert list((run / "pseudo_labels").rglob("*.parquet"))
    assert (tmp_path / "run_supervised" / "eval.json").is_file()
    # the baseline trained in its own process, one thread, beside SSPCM
    sup_cfg = yaml.safe_load((tmp_path / "run_supervised" / "config.yaml").read_text())
    assert sup_cfg["train"]["num_threads"] == 1 and summary["supervised"]["wall_s"] > 0
