"""The pool packed into Parquet: round trip, the same samples as the image folder, bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from jobs.pack_pool import main as pack_main
from pipeline.config import AugmentConfig, ConfigError, load_config
from pipeline.data.coco import load_coco_persons
from pipeline.data.images import ImageError, load_image
from pipeline.data.pool_packs import (
    MANIFEST,
    PackedPerson,
    PackError,
    PackReader,
    pack_pool,
    read_pool_pack,
    with_pack_images,
)
from pipeline.data.skeletons import COCO17
from pipeline.data.topdown import UnlabeledDataset
from pipeline.data.wild_pool import load_pool
from pipeline.geometry.heatmaps import HeatmapCodec

CODEC = HeatmapCodec(input_size=(64, 64), heatmap_size=(16, 16), sigma=1.5)


@pytest.fixture(scope="module")
def pool(synthetic_data):
    return load_pool(image_dir=synthetic_data["train_images"], annotations_json=synthetic_data["train_ann"])


def test_pack_and_read_round_trip(synthetic_data, pool, tmp_path):
    manifest = pack_pool(pool, synthetic_data["train_images"], tmp_path / "pack", rows_per_file=7)
    n_images = pool.num_images
    assert manifest["num_persons"] == len(pool) and manifest["num_images"] == n_images
    assert len(manifest["files"]) == -(-n_images // 7)  # several files
    packed = read_pool_pack(tmp_path / "pack")
    assert len(packed) == len(pool)
    np.testing.assert_array_equal(packed.image_ids, pool.image_ids)
    np.testing.assert_array_equal(packed.boxes, pool.boxes)  # same boxes, same order
    np.testing.assert_array_equal(packed.box_ids, pool.box_ids)
    np.testing.assert_array_equal(packed.scores, pool.scores)
    reader = PackReader(max_open=2)  # fewer than the files: reopens them
    for i in range(len(pool)):
        p, q = pool[i], packed[i]
        assert isinstance(q, PackedPerson)
        assert q.image_path == p.image_path.rsplit("/", 1)[1]
        raw = reader.read_bytes(q.pack_file, q.row)
        with open(p.image_path, "rb") as f:
            assert raw == f.read()  # the file's bytes, unchanged
        np.testing.assert_array_equal(reader.load(q), load_image(p.image_path))
    # the image rows carry id, name and size; one image per row group
    table = pq.read_table(tmp_path / "pack" / manifest["files"][0], columns=["image_id", "width", "height"])
    assert table["width"].to_pylist()[0] == 256 and table["height"].to_pylist()[0] == 192
    assert pq.ParquetFile(tmp_path / "pack" / manifest["files"][0]).metadata.num_row_groups == 7


def test_packed_dataset_items_equal_the_folder_items(synthetic_data, pool, tmp_path):
    """Same items from the pack as from the folder, also for a pool mixing packed persons and
    labeled image files (``pool_includes_labeled``)."""
    pack_pool(pool, synthetic_data["train_images"], tmp_path / "pack")
    labeled = load_coco_persons(synthetic_data["train_ann"], synthetic_data["train_images"], skeleton=COCO17)
    folder_persons = list(pool) + labeled[:6]
    packed_persons = list(read_pool_pack(tmp_path / "pack")) + labeled[:6]
    aug = AugmentConfig()
    folder = UnlabeledDataset(folder_persons, CODEC, COCO17, augment=aug, seed=3)
    packed = with_pack_images(UnlabeledDataset(packed_persons, CODEC, COCO17, augment=aug, seed=3))
    for ds in (folder, packed):
        ds.set_epoch(2)
    for i in [*range(0, len(pool), 3), *range(len(pool), len(folder))]:
        a, b = folder[i], packed[i]
        assert a.keys() == b.keys()
        for k in a:
            if isinstance(a[k], torch.Tensor):
                assert a[k].dtype == b[k].dtype
                torch.testing.assert_close(b[k], a[k], rtol=0, atol=0)
            else:
                assert a[k] == b[k], k


def test_a_missing_or_truncated_image_is_named(synthetic_data, pool, tmp_path):
    images = tmp_path / "images"
    shutil.copytree(synthetic_data["train_images"], images)
    moved = load_pool(image_dir=images, annotations_json=synthetic_data["train_ann"])
    victim = moved[len(moved) // 2].image_path
    with open(victim, "rb") as f:
        data = f.read()
    with open(victim, "wb") as f:
        f.write(data[:-500])
    with pytest.raises(ImageError, match=victim.rsplit("/", 1)[1]):
        pack_pool(moved, images, tmp_path / "pack")
    assert not (tmp_path / "pack" / MANIFEST).exists()  # no complete pack
    with pytest.raises(PackError, match=MANIFEST):
        read_pool_pack(tmp_path / "pack")
    (images / victim.rsplit("/", 1)[1]).unlink()
    with pytest.raises(ImageError, match=f"{victim}: image file not found"):
        pack_pool(moved, images, tmp_path / "pack")


def test_pack_pool_command(synthetic_data, tmp_path, caplog):
    out = tmp_path / "pack"
    args = ["--images", str(synthetic_data["train_images"]), "--ann", str(synthetic_data["train_ann"])]
    manifest = pack_main([*args, "--out", str(out), "--rows-per-file", "16", "--log-level", "ERROR"])
    assert json.loads((out / MANIFEST).read_text()) == manifest
    assert len(read_pool_pack(out)) == manifest["num_persons"] > 0
    missing = tmp_path / "missing.json"
    coco = json.loads(synthetic_data["train_ann"].read_text())
    coco["images"][0]["file_name"] = "nowhere.jpg"
    missing.write_text(json.dumps(coco))
    with pytest.raises(SystemExit) as exit_info:
        pack_main(["--images", args[1], "--ann", str(missing), "--out", str(tmp_path / "bad")])
    assert exit_info.value.code == 1
    assert "nowhere.jpg" in caplog.text


def test_a_packed_pool_needs_the_ray_data_stream():
    base = ["data.unlabeled_parquet=/some/pack"]
    cfg = load_config(None, [*base, "data.loader=ray_data", "resources.runtime=ray"])
    assert cfg.data.unlabeled_parquet == "/some/pack"
    with pytest.raises(ConfigError, match="data.loader=ray_data"):
        load_config(None, [*base, "resources.runtime=ray"])
    with pytest.raises(ConfigError, match="resources.runtime=ray"):
        load_config(None, [*base, "data.loader=ray_data"])
    with pytest.raises(ConfigError, match="give one"):
        load_config(None, [*base, "data.loader=ray_data", "resources.runtime=ray", "data.unlabeled_ann=x"])
