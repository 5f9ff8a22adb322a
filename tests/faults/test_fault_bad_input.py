"""Bad input: one clear error naming the file (and record or field), and nothing already written lost.

Complements tests/jobs/test_bad_input.py (missing / truncated labeled images, a bad annotation
record) and tests/pipeline/test_config.py (bad overrides): here a corrupt Parquet part of the
pseudo-label store and of a pool pack, a truncated image of the unlabeled pool during SSPCM
training, a checkpoint directory without its completion marker, and a config file with a field
of the wrong type or an unknown field.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from actors.data_stream import ray_data_batches
from jobs.evaluate import main as evaluate_main
from jobs.inspect_store import main as inspect_main
from jobs.train import main as train_main
from pipeline.config import AugmentConfig
from pipeline.data.image_checks import BadImageError
from pipeline.data.images import ImageError
from pipeline.data.pool_packs import PackError, pack_pool, read_pool_pack, with_pack_images
from pipeline.data.skeletons import COCO17
from pipeline.data.topdown import UnlabeledDataset
from pipeline.data.wild_pool import load_pool
from pipeline.geometry.heatmaps import HeatmapCodec
from pipeline.store.checkpoints import IncompleteCheckpointError, list_checkpoints, load_trainer_state
from pipeline.store.pseudo_label_store import PseudoLabelStore, StoreError
from pipeline.trainer import epoch_batches
from tests.faults.fault_helpers import STEPS, recomputed_steps, run_overrides
from tests.helpers import tiny_overrides


def truncate_to_half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def contents(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative name -> bytes)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---- the pseudo-label store ----------------------------------------------------------------
def test_a_truncated_store_part_is_named_and_the_rest_still_reads(reference, tmp_path, capsys):
    root = tmp_path / "pseudo_labels"
    shutil.copytree(reference["dir"] / "pseudo_labels", root)
    victim = root / "epoch_0001" / f"part-{STEPS:08d}-{2 * STEPS - 1:08d}.parquet"
    truncate_to_half(victim)
    before = contents(root)
    store = PseudoLabelStore.open(root)
    match = rf"{victim}: not a readable Parquet file"
    with pytest.raises(StoreError, match=match):
        store.read_epoch(1)
    with pytest.raises(StoreError, match=match):  # cache mode's previous-epoch read
        store.read_keypoints(1, np.arange(4))
    with pytest.raises(StoreError, match=match):  # what a resumed run does first (it would cut it)
        store.forget_from(1, STEPS + 1)
    assert store.read_epoch(0).num_rows == STEPS * 4  # the other epoch reads as before
    with pytest.raises(SystemExit) as e:
        inspect_main([str(root), "--log-level=ERROR"])
    assert e.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and victim.name in err[0], err
    assert contents(root) == before  # nothing deleted or rewritten


# ---- a pool pack ---------------------------------------------------------------------------
def test_a_truncated_pool_pack_file_is_named_and_the_other_files_still_read(synthetic_data, tmp_path):
    pool = load_pool(image_dir=synthetic_data["train_images"], annotations_json=synthetic_data["train_ann"])
    pack = tmp_path / "pack"
    manifest = pack_pool(pool, synthetic_data["train_images"], pack, rows_per_file=16)
    assert len(manifest["files"]) == 3
    victim = pack / "images-00001.parquet"
    truncate_to_half(victim)
    before = contents(pack)
    packed = read_pool_pack(pack)  # the persons are in persons.parquet: still read
    codec = HeatmapCodec(input_size=(64, 64), heatmap_size=(16, 16), sigma=1.5)
    dataset = with_pack_images(UnlabeledDataset(packed, codec, COCO17, augment=AugmentConfig(), seed=0))
    in_victim = [i for i in range(len(packed)) if packed[i].pack_file == str(victim)]
    elsewhere = [i for i in range(len(packed)) if packed[i].pack_file != str(victim)]
    assert in_victim and elsewhere
    person = packed[in_victim[0]]
    with pytest.raises(PackError) as e:
        dataset[in_victim[0]]  # what a Ray Data worker does for the person
    msg = str(e.value)
    assert str(victim) in msg and f"row {person.row}" in msg and person.image_path in msg, msg
    for i in elsewhere:  # the other files' images read as before
        assert dataset[i]["images"].shape == (3, 64, 64)
    truncate_to_half(pack / "persons.parquet")
    with pytest.raises(PackError, match=r"persons\.parquet: not a readable Parquet file"):
        read_pool_pack(pack)
    assert {k: v for k, v in contents(pack).items() if k != "persons.parquet"} == {
        k: v for k, v in before.items() if k != "persons.parquet"
    }


# ---- a truncated image of the unlabeled pool, during SSPCM training ---------------------------
def test_a_truncated_pool_image_stops_training_by_name_or_is_skipped_and_counted(
    synthetic_data, tmp_path, caplog
):
    shutil.copytree(synthetic_data["train_images"], tmp_path / "pool" / "images")
    ann = tmp_path / "pool" / "annotations.json"
    shutil.copy(synthetic_data["train_ann"], ann)
    images = tmp_path / "pool" / "images"
    pool_args = [
        f"--data.unlabeled_ann={ann}",
        f"--data.unlabeled_images={images}",
        "--data.pool_includes_labeled=false",
    ]
    # the victim: an image first drawn in epoch 1 (so epoch 0 finishes and is checkpointed)
    pool = load_pool(image_dir=images, annotations_json=ann, min_keypoints=1)
    epoch0 = {pool[i].image_id for b in epoch_batches(len(pool), 4, STEPS, 0, 0, 1) for i in b}
    epoch1 = [pool[i] for b in epoch_batches(len(pool), 4, STEPS, 0, 1, 1) for i in b]
    victim = Path(next(p.image_path for p in epoch1 if p.image_id not in epoch0))
    original = victim.read_bytes()
    victim.write_bytes(original[: len(original) // 2])

    def train(out, *extra):
        args = [f"--{o}" for o in run_overrides(synthetic_data, out)]
        return train_main(["--log-level=WARNING", *args, *pool_args, *extra])

    out = tmp_path / "run"
    with pytest.raises((ImageError, BadImageError), match=rf"{victim}: truncated JPEG"):
        train(out)
    # what it wrote before is there: epoch 0's checkpoints and its compacted pseudo labels
    done = [p.name for p in list_checkpoints(out)]
    assert done[:3] == ["step_00000000", "step_00000002", f"step_{STEPS:08d}"], done
    assert load_trainer_state(list_checkpoints(out)[-1])["epoch"] >= 1
    assert PseudoLabelStore.open(out / "pseudo_labels").read_epoch(0).num_rows == STEPS * 4
    # the file repaired, --resume finishes the run from there
    victim.write_bytes(original)
    train(out, "--resume")
    assert recomputed_steps(out) <= 2
    victim.write_bytes(original[: len(original) // 2])

    # with data.skip_bad_images: the image's persons are left out, counted, and the run finishes
    caplog.clear()
    results = train(tmp_path / "skip", "--data.skip_bad_images=true")
    assert "eval/student/AP" in results
    assert any(f"{ann}: skipped 1 unreadable image" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("source", ["image files", "pool pack"])
def test_bad_input_in_a_ray_data_worker_is_raised_as_itself(ray_session, synthetic_data, tmp_path, source):
    """``data.loader=ray_data``: a worker's ImageError / PackError reaches the trainer as itself
    (not as Ray Data's "UDF failed to process a data block"), naming the file."""
    shutil.copytree(synthetic_data["train_images"], tmp_path / "images")
    pool = load_pool(image_dir=tmp_path / "images", annotations_json=synthetic_data["train_ann"])
    if source == "image files":
        victim = Path(pool[2].image_path)
        error, message = ImageError, rf"^{victim}: truncated JPEG"
    else:
        pack_pool(pool, tmp_path / "images", tmp_path / "pack", rows_per_file=16)
        pool = read_pool_pack(tmp_path / "pack")
        victim = Path(pool[2].pack_file)
        error, message = PackError, rf"^{victim}: not a readable pool-pack Parquet file"
    truncate_to_half(victim)
    codec = HeatmapCodec(input_size=(64, 64), heatmap_size=(16, 16), sigma=1.5)
    dataset = UnlabeledDataset(pool, codec, COCO17, augment=AugmentConfig(), seed=0)
    dataset.set_epoch(0)
    stream = ray_data_batches("unlabeled", dataset, [[0, 1], [2, 3]], num_workers=1)
    with pytest.raises(error, match=message) as e:
        list(stream)
    assert not isinstance(e.value, ray_session.exceptions.RayError)


# ---- a checkpoint directory without _COMPLETE ------------------------------------------------
def test_a_checkpoint_without_its_marker_is_neither_resumed_from_nor_evaluated(synthetic_data, tmp_path):
    run = tmp_path / "run"
    base = ["--log-level=WARNING", *[f"--{o}" for o in tiny_overrides(synthetic_data, run)]]
    train_main(base)  # supervised, 2 epochs of 2 steps: checkpoints at steps 0, 2, 4
    root = run / "checkpoints"
    # a pruning stopped after unlisting step 4; a save of step 6 killed before its rename
    (root / "step_00000004" / "_COMPLETE").unlink()
    (root / "step_00000004" / "trainer_state.json").unlink()
    shutil.copytree(root / "step_00000002", root / "step_00000006.tmp")
    (root / "step_00000006.tmp" / "_COMPLETE").unlink()
    kept = contents(root / "step_00000002")
    assert [p.name for p in list_checkpoints(run)] == ["step_00000000", "step_00000002"]
    val = ["--ann", str(synthetic_data["val_ann"]), "--images", str(synthetic_data["val_images"])]
    for partial in ("step_00000004", "step_00000006.tmp"):
        with pytest.raises(IncompleteCheckpointError) as e:
            evaluate_main(["--checkpoint", str(root / partial), *val, "--log-level=ERROR"])
        msg = str(e.value)
        assert str(root / partial) in msg and "_COMPLETE" in msg and "step_00000002" in msg, msg
    # the run directory stands for its latest complete checkpoint
    assert "AP" in evaluate_main(["--checkpoint", str(run), *val, "--log-level=ERROR"])
    # --resume continues from step 2 and writes step 4 again, complete
    train_main([*base, "--resume"])
    assert [p.name for p in list_checkpoints(run)] == ["step_00000000", "step_00000002", "step_00000004"]
    assert load_trainer_state(root / "step_00000004")["global_step"] == 4
    assert contents(root / "step_00000002") == kept  # nothing written before was touched
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [x["step"] for x in lines if "student/loss" in x]
    assert steps == [1, 2, 3, 4, 3, 4]  # steps 3 and 4 ran again, from step 2


# ---- config files ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, field, why",
    [
        ("optim:\n  epochs: ten\n", "optim.epochs", "expected an integer, got 'ten'"),
        ("codec:\n  input_size: [64, sixty]\n", "codec.input_size[1]", "expected an integer"),
        ("train:\n  checkpoint_every_step: 2\n", "train.checkpoint_every_step", "unknown field"),
    ],
)
def test_a_bad_config_file_is_one_error_naming_the_file_and_the_field(tmp_path, capsys, text, field, why):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    run = tmp_path / "run"  # an earlier run's directory: left as it is
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1}\n')
    with pytest.raises(SystemExit) as e:
        train_main(["--config", str(config), f"--train.out_dir={run}"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"error: {config}") and field in err[0] and why in err[0], err
    assert contents(run) == {"metrics.jsonl": b'{"step": 1}\n'}
