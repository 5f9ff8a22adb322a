"""Pool packs at scale: parallel packing writes the same pack, packs by URI, the pool stays columns."""

from __future__ import annotations

import dataclasses
import json
import logging
import pickle
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from jobs.pack_pool import main as pack_main
from pipeline.data import pool_packs
from pipeline.data.coco import load_coco_persons
from pipeline.data.images import ImageError, load_image
from pipeline.data.pool_packs import (
    MANIFEST,
    PERSONS_FILE,
    ChainedPersons,
    PackedPerson,
    PackError,
    PackReader,
    pack_pool,
    read_pool_pack,
)
from pipeline.data.skeletons import COCO17
from pipeline.data.wild_pool import load_pool
from pipeline.store import locations


@pytest.fixture(scope="module")
def pool(synthetic_data):
    return load_pool(image_dir=synthetic_data["train_images"], annotations_json=synthetic_data["train_ann"])


def pack_args(synthetic_data) -> list[str]:
    return ["--images", str(synthetic_data["train_images"]), "--ann", str(synthetic_data["train_ann"])]


def test_two_workers_write_the_same_pack_as_one(synthetic_data, tmp_path, capsys):
    summaries = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        argv = [*pack_args(synthetic_data), "--out", str(out), "--rows-per-file", "7"]
        pack_main([*argv, "--workers", str(workers), "--log-level", "ERROR"])
        summaries[workers] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    one, two = tmp_path / "w1", tmp_path / "w2"
    assert summaries[2]["workers"] == 2 and summaries[1]["images_per_s"] > 0 < summaries[2]["seconds"]
    manifest = json.loads((one / MANIFEST).read_text())
    assert json.loads((two / MANIFEST).read_text()) == manifest
    assert {k: summaries[2][k] for k in manifest} == manifest
    assert len(manifest["files"]) == -(-manifest["num_images"] // 7) > 2  # several files per worker
    assert sorted(p.name for p in one.iterdir()) == sorted(p.name for p in two.iterdir())
    assert pq.read_table(two / PERSONS_FILE).equals(pq.read_table(one / PERSONS_FILE))
    for name in manifest["files"]:
        a, b = pq.read_table(one / name), pq.read_table(two / name)
        assert b.equals(a), name  # same rows, same image bytes, same order
        assert (two / name).read_bytes() == (one / name).read_bytes()
        assert pq.ParquetFile(two / name).metadata.num_row_groups == a.num_rows


def test_a_bad_image_stops_a_parallel_pack_with_one_error(synthetic_data, pool, tmp_path, caplog):
    images = tmp_path / "images"
    shutil.copytree(synthetic_data["train_images"], images)
    moved = load_pool(image_dir=images, annotations_json=synthetic_data["train_ann"])
    victim = moved[len(moved) - 1].image_path  # in the last file: other files are done first
    data = open(victim, "rb").read()
    with open(victim, "wb") as f:
        f.write(data[:-500])
    out = tmp_path / "pack"
    with pytest.raises(ImageError, match=victim.rsplit("/", 1)[1]):
        pack_pool(moved, images, out, rows_per_file=5, workers=2)
    assert not (out / MANIFEST).exists()  # no complete pack
    with pytest.raises(PackError, match=MANIFEST):
        read_pool_pack(out)
    caplog.clear()
    argv = ["--images", str(images), "--ann", str(synthetic_data["train_ann"]), "--out", str(out)]
    with pytest.raises(SystemExit) as exit_info:
        pack_main([*argv, "--rows-per-file", "5", "--workers", "2"])
    assert exit_info.value.code == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and victim in errors[0], errors
    assert not (out / MANIFEST).exists()


def test_pack_and_read_through_a_file_uri(synthetic_data, pool, tmp_path, capsys):
    uri = (tmp_path / "uri pack").as_uri()  # file:///.../uri%20pack
    manifest = pack_pool(pool, synthetic_data["train_images"], uri, rows_per_file=9, workers=2)
    assert (tmp_path / "uri pack" / MANIFEST).is_file()
    assert not [p for p in (tmp_path / "uri pack").iterdir() if p.name.startswith(".")]  # no temp left
    packed = read_pool_pack(uri)
    assert packed.root == uri and len(packed) == len(pool) == manifest["num_persons"]
    np.testing.assert_array_equal(packed.image_ids, pool.image_ids)
    np.testing.assert_array_equal(packed.boxes, pool.boxes)
    reader = PackReader(max_open=2)
    for i in range(0, len(pool), 5):
        q = packed[i]
        assert q.pack_file.startswith(uri + "/images-")
        np.testing.assert_array_equal(reader.load(q), load_image(pool[i].image_path))
    # the job takes a URI too
    out = (tmp_path / "job pack").as_uri()
    pack_main([*pack_args(synthetic_data), "--out", out, "--workers", "2", "--log-level", "ERROR"])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["out"] == out
    assert len(read_pool_pack(out)) == len(pool)


def test_a_packed_pool_pickles_as_its_location(synthetic_data, pool, tmp_path):
    out = tmp_path / "pack"
    pack_pool(pool, synthetic_data["train_images"], out, rows_per_file=8)
    packed = read_pool_pack(out)
    assert not hasattr(packed, "persons") and isinstance(packed.boxes, np.ndarray)  # columns only
    wire = pickle.dumps(packed)
    columns_bytes = packed.boxes.nbytes + packed.image_ids.nbytes + packed.file_names.nbytes
    assert len(wire) < 1000 < columns_bytes, (len(wire), columns_bytes)
    back = pickle.loads(wire)
    assert back.root == packed.root and len(back) == len(packed)
    for name in ("image_ids", "box_ids", "boxes", "scores", "files", "rows"):
        np.testing.assert_array_equal(getattr(back, name), getattr(packed, name))
    a, b = packed[3], back[3]
    assert (b.image_path, b.pack_file, b.row, b.box_id) == (a.image_path, a.pack_file, a.row, a.box_id)
    # a pack rewritten in between is refused, not silently mixed
    pack_pool(list(pool)[:10], synthetic_data["train_images"], out, rows_per_file=8)
    with pytest.raises(PackError, match="changed"):
        pickle.loads(wire)


def test_chained_persons_read_a_pack_and_a_list_as_one(synthetic_data, pool, tmp_path):
    pack_pool(pool, synthetic_data["train_images"], tmp_path / "pack")
    packed = read_pool_pack(tmp_path / "pack")
    labeled = load_coco_persons(synthetic_data["train_ann"], synthetic_data["train_images"], skeleton=COCO17)
    chained = ChainedPersons(packed, labeled[:5])
    n = len(packed)
    assert len(chained) == n + 5 and bool(chained)
    assert isinstance(chained[0], PackedPerson) and isinstance(chained[n - 1], PackedPerson)
    assert chained[n] is labeled[0] and chained[-1] is labeled[4]
    assert [p.image_id for p in chained[n - 2 : n + 2]] == [
        *packed.image_ids[-2:].tolist(),
        labeled[0].image_id,
        labeled[1].image_id,
    ]
    assert len(list(chained)) == len(chained)
    with pytest.raises(IndexError):
        chained[n + 5]
    back = pickle.loads(pickle.dumps(chained))
    assert len(back) == len(chained) and back[n].ann_id == labeled[0].ann_id
    assert back[1].image_path == chained[1].image_path


def test_the_object_store_path_uploads_whole_files(synthetic_data, pool, tmp_path, monkeypatch):
    """A pack on a filesystem without renames (an object store: each file one upload), played on
    the local disk: the pack reads back the same, and a bad image leaves no ``pool.json``."""
    real_of = pool_packs.PackDir.of
    monkeypatch.setattr(pool_packs.PackDir, "of", lambda loc: dataclasses.replace(real_of(loc), local=None))

    def no_rename(*args, **kwargs):
        raise AssertionError("atomic_write (temp + rename) used on an object store")

    monkeypatch.setattr(locations, "atomic_write", no_rename)  # where every whole-file write goes
    uri = (tmp_path / "bucket").as_uri()
    pack_pool(pool, synthetic_data["train_images"], uri, rows_per_file=9)  # in this process
    packed = read_pool_pack(uri)
    np.testing.assert_array_equal(packed.boxes, pool.boxes)
    reader = PackReader()
    np.testing.assert_array_equal(reader.load(packed[-1]), load_image(pool[len(pool) - 1].image_path))

    images = tmp_path / "images"
    shutil.copytree(synthetic_data["train_images"], images)
    moved = load_pool(image_dir=images, annotations_json=synthetic_data["train_ann"])
    Path(moved[0].image_path).write_bytes(b"not an image")
    with pytest.raises(ImageError, match=Path(moved[0].image_path).name):
        pack_pool(moved, images, uri, rows_per_file=9)
    assert not (tmp_path / "bucket" / MANIFEST).exists()


def test_pack_a_plain_folder_with_detections(tmp_path):
    """No annotations file: every image under the folder, boxes from a detection file."""
    import json

    import cv2
    import numpy as np

    from jobs.pack_pool import main as pack_main
    from pipeline.data.pool_packs import read_pool_pack

    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for name in ("a.jpg", "sub/b.png"):
        cv2.imwrite(str(folder / name), np.full((40, 30, 3), 128, np.uint8))
    dets = [
        {"file_name": "sub/b.png", "category_id": 1, "bbox": [1, 2, 10, 20], "score": 0.9},
        {"file_name": "a.jpg", "category_id": 1, "bbox": [3, 4, 10, 20], "score": 0.2},
    ]
    (tmp_path / "d.json").write_text(json.dumps(dets))
    pack_main(["--images", str(folder), "--boxes", str(tmp_path / "d.json"), "--out", str(tmp_path / "pack"),
               "--min-box-score", "0.5", "--log-level=WARNING"])  # fmt: skip
    pack = read_pool_pack(tmp_path / "pack")
    assert len(pack) == 1 and pack[0].image_path.endswith("sub/b.png")
