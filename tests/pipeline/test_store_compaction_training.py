"""The trainer compacts the pseudo-label store when an epoch closes: a real SSPCM run of one epoch
of 30 steps leaves one store file, which reads as the 30 step files it replaced."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from jobs.inspect_store import main as inspect_main
from jobs.train import main as train_main
from pipeline.config import Config, ConfigError, load_config
from pipeline.method.pseudo_labels import PseudoLabeler
from pipeline.store.pseudo_label_store import PseudoLabelStore
from tests.helpers import tiny_overrides

STEPS = 30


def test_an_epoch_of_sspcm_ends_with_one_store_file_that_reads_as_its_steps(
    synthetic_data, tmp_path, monkeypatch
):
    out = tmp_path / "run"
    copies: list[Path] = []
    close_epoch = PseudoLabeler.close_epoch

    def copy_then_close(self: PseudoLabeler, epoch: int) -> int:
        """The store as the epoch left it (step files), then the trainer's compaction."""
        copies.append(tmp_path / f"steps_{epoch}")
        shutil.copytree(self.cfg.store_dir, copies[-1])
        return close_epoch(self, epoch)

    monkeypatch.setattr(PseudoLabeler, "close_epoch", copy_then_close)
    overrides = tiny_overrides(synthetic_data, out, "sspcm")
    overrides += [
        f"data.unlabeled_ann={synthetic_data['train_ann']}",
        f"data.unlabeled_images={synthetic_data['train_images']}",
        "codec.input_size=[32,32]",
        "codec.heatmap_size=[8,8]",
        "codec.sigma=1.0",
        "optim.batch_size=2",
        "optim.unlabeled_batch_size=2",
        f"optim.steps_per_epoch={STEPS}",
        "optim.epochs=1",
        "train.log_every=10",
    ]
    start = time.perf_counter()
    train_main([f"--{o}" for o in overrides] + ["--log-level=WARNING"])
    seconds = time.perf_counter() - start

    assert copies == [tmp_path / "steps_0"]  # closed once, at the end of epoch 0
    root = out / "pseudo_labels"
    steps = sorted(p.name for p in (copies[0] / "epoch_0000").iterdir())
    assert steps == [f"part-{k:08d}.parquet" for k in range(STEPS)]
    writers = 1
    assert sorted(p.name for p in (root / "epoch_0000").iterdir()) == ["part-00000000-00000029.parquet"]
    assert len(list((root / "epoch_0000").iterdir())) <= writers

    summary = inspect_main([str(root)])
    uncompacted = inspect_main([str(copies[0])])
    assert summary["rows"] == STEPS * 2
    assert {k: v for k, v in summary.items() if k != "root"} == {
        k: v for k, v in uncompacted.items() if k != "root"
    }
    got, want = PseudoLabelStore.open(root).read_rows(0), PseudoLabelStore.open(copies[0]).read_rows(0)
    for field in ("person_index", "kpts_a", "kpts_b", "kpts_corrected", "pi", "weights", "heatmaps"):
        np.testing.assert_array_equal(getattr(got, field), getattr(want, field), err_msg=field)
    assert seconds < 120, f"the run took {seconds:.0f} s"


def test_store_rows_per_file_is_checked():
    assert Config().method.store_rows_per_file == 0
    with pytest.raises(ConfigError, match=r"method\.store_rows_per_file must be >= 0.*-1"):
        load_config(None, ["method.store_rows_per_file=-1"])
