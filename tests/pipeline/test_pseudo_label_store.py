"""pipeline.store.pseudo_label_store: the same values through pyarrow, Ray Data and DuckDB; idempotent
and atomic writes (a writer killed mid-write); keypoint look-up; the heatmap encoding; errors
that name the file, the epoch and the field."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
import torch

from pipeline.geometry.heatmaps import HeatmapCodec, gaussian_blur
from pipeline.store.locations import split_location
from pipeline.store.pseudo_label_store import (
    HEATMAP_MAX_ERROR,
    SCHEMA_VERSION,
    PseudoLabelRows,
    PseudoLabelStore,
    StoreError,
    StoreFile,
    _file_order,
    decode_heatmaps,
    encode_heatmaps,
    heatmap_bytes,
    parse_file_name,
)

K, W, H = 17, 12, 16  # small heatmaps keep the tests fast; the size bound uses 64x48
REPO = Path(__file__).resolve().parents[2]
ARRAY_FIELDS = (
    "image_id",
    "bbox",
    "kpts_a",
    "kpts_b",
    "pi",
    "kpts_corrected",
    "weights",
    "matrix",
    "flipped",
)


def gaussian_maps(n: int, seed: int, size: tuple[int, int] = (W, H), noise: float = 0.0) -> np.ndarray:
    """(n, K, h, w) float32 PCM-like labels: mean of two nearby peaks (amplitude 0.3..1), plus a
    smooth noise floor of std ``noise``."""
    rng = np.random.default_rng(seed)
    w, h = size
    codec = HeatmapCodec((w * 4, h * 4), (w, h), 2.0)
    hm, _ = codec.encode_batch(rng.uniform(0, w * 4, (n, K, 2)), np.ones((n, K), bool))
    hm = np.asarray(hm, np.float32) * rng.uniform(0.3, 1.0, (n, K, 1, 1)).astype(np.float32)
    hm = (hm + np.roll(hm, 2, axis=-1)) / 2
    if noise:
        floor = gaussian_blur(torch.from_numpy(rng.normal(size=hm.shape).astype(np.float32)), 1.5).numpy()
        hm = hm + floor * np.float32(noise / floor.std())
    return hm


def make_rows(n: int, seed: int, first_index: int = 0, heatmaps: bool = True) -> PseudoLabelRows:
    rng = np.random.default_rng(seed)
    kp = lambda: rng.uniform(0, 100, (n, K, 3)).astype(np.float32)
    return PseudoLabelRows(
        image_id=rng.integers(0, 10**6, n).astype(np.int64),
        person_index=np.arange(first_index, first_index + n, dtype=np.int64),
        image_file=[f"img_{seed}_{i:04d}.jpg" for i in range(n)],
        bbox=rng.uniform(0, 50, (n, 4)).astype(np.float32),
        kpts_a=kp(),
        kpts_b=kp(),
        pi=rng.uniform(0, 0.3, (n, K)).astype(np.float32),
        kpts_corrected=kp(),
        weights=(rng.random((n, K)) > 0.3).astype(np.float32),
        heatmaps=gaussian_maps(n, seed) if heatmaps else None,
        matrix=rng.normal(size=(n, 2, 3)),
        flipped=rng.random(n) > 0.5,
    )


def concat(*batches: PseudoLabelRows) -> dict[str, np.ndarray]:
    return {f: np.concatenate([getattr(b, f) for b in batches]) for f in (*ARRAY_FIELDS, "person_index")}


def by_person(records: list[dict], epoch: int) -> dict[int, dict]:
    return {int(r["person_index"]): r for r in records if int(r["epoch"]) == epoch}


def check_records(records: dict[int, dict], expected: dict[str, np.ndarray], image_files: list[str]) -> None:
    """Rows read by another reader hold exactly the written values (flattened fixed-size lists)."""
    assert sorted(records) == sorted(expected["person_index"].tolist())
    for i, p in enumerate(expected["person_index"]):
        r = records[int(p)]
        assert r["image_file"] == image_files[i]
        assert int(r["image_id"]) == expected["image_id"][i]
        assert bool(r["flipped"]) == expected["flipped"][i]
        for f in ("bbox", "kpts_a", "kpts_b", "pi", "kpts_corrected", "weights"):
            np.testing.assert_array_equal(np.asarray(r[f], dtype=np.float32), expected[f][i].reshape(-1))
        np.testing.assert_array_equal(
            np.asarray(r["matrix"], dtype=np.float64), expected["matrix"][i].reshape(-1)
        )


def test_round_trip_is_identical_in_the_store_pyarrow_ray_data_and_duckdb(tmp_path, ray_session):
    root = tmp_path / "store"
    store = PseudoLabelStore(root, num_joints=K, heatmap_size=(W, H))
    a, b, c = make_rows(5, 0), make_rows(4, 1, first_index=5), make_rows(3, 2, first_index=2)
    assert store.write_batch(0, 0, a) == root / "epoch_0000" / "part-00000000.parquet"
    store.write_batch(0, 1, b)
    store.write_batch(3, 123, c)
    assert store.epochs() == [0, 3]
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) == [
        "_store.json",
        "epoch_0000",
        "epoch_0000/part-00000000.parquet",
        "epoch_0000/part-00000001.parquet",
        "epoch_0003",
        "epoch_0003/part-00000123.parquet",
    ]

    # the store itself
    back = store.read_rows(0)
    want = concat(a, b)
    for f in (*ARRAY_FIELDS, "person_index"):
        np.testing.assert_array_equal(getattr(back, f), want[f], err_msg=f)
    assert back.image_file == a.image_file + b.image_file
    assert np.abs(back.heatmaps - np.concatenate([a.heatmaps, b.heatmaps])).max() < 1 / 255
    assert back.heatmaps.shape == (9, K, H, W) and back.heatmaps.dtype == np.float32

    # three readers with no project code: same columns, rows and values
    columns = set(store.read_epoch(0).column_names)
    assert {"epoch", "key", "heatmap_codes"} <= columns
    tables = {"read_table": pq.read_table(root), "dataset": pads.dataset(root, format="parquet").to_table()}
    for name, t in tables.items():
        assert set(t.column_names) == columns, name  # no hive column added, none lost
        assert t.num_rows == 12, name
        records = t.to_pylist()
        check_records(by_person(records, 0), want, a.image_file + b.image_file)
        check_records(by_person(records, 3), concat(c), c.image_file)
    pyarrow_codes = {
        (r["epoch"], r["person_index"]): r["heatmap_codes"] for r in tables["dataset"].to_pylist()
    }

    ray_records = ray_session.data.read_parquet(str(root)).take_all()
    assert set(ray_records[0]) == columns and len(ray_records) == 12
    check_records(by_person(ray_records, 0), want, a.image_file + b.image_file)
    check_records(by_person(ray_records, 3), concat(c), c.image_file)
    assert all(r["heatmap_codes"] == pyarrow_codes[r["epoch"], r["person_index"]] for r in ray_records)

    con = duckdb.connect()
    rel = con.sql(f"select * from read_parquet('{root}/**/*.parquet')")
    assert set(rel.columns) == columns
    duck_records = [dict(zip(rel.columns, row)) for row in rel.fetchall()]
    assert len(duck_records) == 12
    check_records(by_person(duck_records, 0), want, a.image_file + b.image_file)
    check_records(by_person(duck_records, 3), concat(c), c.image_file)
    assert all(r["heatmap_codes"] == pyarrow_codes[r["epoch"], r["person_index"]] for r in duck_records)
    # the epoch column is usable as a filter in SQL without hive partitioning
    got = con.sql(f"select epoch, count(*) from read_parquet('{root}/**/*.parquet') group by 1 order by 1")
    assert got.fetchall() == [(0, 9), (3, 3)]

    # file metadata: schema version, joints, heatmap size
    meta = pq.read_schema(root / "epoch_0003" / "part-00000123.parquet").metadata
    assert meta[b"sspcm.schema_version"] == str(SCHEMA_VERSION).encode()
    assert meta[b"sspcm.num_joints"] == b"17" and json.loads(meta[b"sspcm.heatmap_size"]) == [W, H]

    # open() finds the same configuration
    again = PseudoLabelStore.open(root)
    assert (again.num_joints, again.heatmap_size) == (K, (W, H))


def test_rewriting_the_same_epoch_and_key_keeps_one_copy(tmp_path, ray_session):
    root = tmp_path / "store"
    store = PseudoLabelStore(root, num_joints=K)
    first, second = make_rows(4, 0, heatmaps=False), make_rows(4, 1, heatmaps=False)
    store.write_batch(2, 7, first)
    store.write_batch(2, 7, second)  # a replayed step (resume after a crash)
    assert [p.name for p in (root / "epoch_0002").iterdir()] == ["part-00000007.parquet"]
    np.testing.assert_array_equal(store.read_rows(2).kpts_a, second.kpts_a)
    assert store.read_epoch(2).num_rows == 4
    assert pads.dataset(root, format="parquet").count_rows() == 4
    assert duckdb.sql(f"select count(*) from read_parquet('{root}/**/*.parquet')").fetchall()[0][0] == 4
    assert ray_session.data.read_parquet(str(root)).count() == 4
    # a second writer object on the same root appends to the same store
    PseudoLabelStore(root, num_joints=K).write_batch(2, 8, make_rows(2, 3, first_index=50, heatmaps=False))
    assert store.read_epoch(2).num_rows == 6


def test_writers_have_their_own_files_and_a_restore_forgets_the_steps_it_reruns(tmp_path):
    """Two writers (data-parallel lanes) write one file each per step; ``forget_from(epoch,
    key)`` removes the steps >= key of that epoch and every later epoch, whichever wrote them."""
    root = tmp_path / "store"
    store = PseudoLabelStore(root, num_joints=K)
    for epoch, key in ((0, 0), (0, 1), (1, 2), (1, 3)):
        store.write_batch(epoch, key, make_rows(2, key, first_index=4 * key, heatmaps=False), writer=0)
        store.write_batch(epoch, key, make_rows(2, key, first_index=4 * key + 2, heatmaps=False), writer=1)
    store.write_batch(2, 4, make_rows(2, 9, first_index=40, heatmaps=False))  # one writer: plain name
    assert [p.name for p in store.files(1)] == [
        "part-00000002-w00.parquet", "part-00000002-w01.parquet",
        "part-00000003-w00.parquet", "part-00000003-w01.parquet",
    ]  # fmt: skip
    assert sorted(store.read_epoch(1)["person_index"].to_pylist()) == [8, 9, 10, 11, 12, 13, 14, 15]
    assert store.forget_from(1, 3) == 3  # both writers' step 3 and epoch 2
    assert store.epochs() == [0, 1]
    assert sorted(store.read_epoch(1)["person_index"].to_pylist()) == [8, 9, 10, 11]
    assert store.read_epoch(0).num_rows == 8  # earlier epochs untouched
    assert duckdb.sql(f"select count(*) from read_parquet('{root}/**/*.parquet')").fetchall()[0][0] == 12


def test_read_keypoints_in_the_asked_order_found_and_latest_key_wins(tmp_path):
    store = PseudoLabelStore(tmp_path / "store", num_joints=K)
    early = make_rows(4, 0, first_index=10, heatmaps=False)  # persons 10..13
    late = make_rows(2, 1, first_index=11, heatmaps=False)  # persons 11, 12 again, later key
    other = make_rows(3, 2, first_index=0, heatmaps=False)  # persons 0..2
    store.write_batch(1, 40, late)
    store.write_batch(1, 5, early)  # written after, but an earlier key: loses
    store.write_batch(1, 6, other)

    got = store.read_keypoints(1, np.array([12, 99, 0, 10, 11, 12]))
    np.testing.assert_array_equal(got["found"], [True, False, True, True, True, True])
    assert got["kpts_a"].shape == got["kpts_b"].shape == (6, K, 3)
    np.testing.assert_array_equal(got["kpts_a"][0], late.kpts_a[1])
    np.testing.assert_array_equal(got["kpts_b"][0], late.kpts_b[1])
    assert np.isnan(got["kpts_a"][1]).all() and np.isnan(got["kpts_b"][1]).all()
    np.testing.assert_array_equal(got["kpts_a"][2], other.kpts_a[0])
    np.testing.assert_array_equal(got["kpts_b"][3], early.kpts_b[0])
    np.testing.assert_array_equal(got["kpts_a"][4], late.kpts_a[0])
    np.testing.assert_array_equal(got["kpts_a"][5], got["kpts_a"][0])
    assert store.read_keypoints(1, np.array([], dtype=np.int64))["kpts_a"].shape == (0, K, 3)

    # read_rows applies the same rule, sorted by person
    rows = store.read_rows(1)
    np.testing.assert_array_equal(rows.person_index, [0, 1, 2, 10, 11, 12, 13])
    np.testing.assert_array_equal(rows.kpts_corrected[4:6], late.kpts_corrected)

    # the cached index follows new files, from this object or another writer
    store.write_batch(1, 50, make_rows(1, 3, first_index=99, heatmaps=False))
    assert store.read_keypoints(1, np.array([99]))["found"].all()
    PseudoLabelStore(tmp_path / "store", num_joints=K).write_batch(
        1, 51, make_rows(1, 4, first_index=98, heatmaps=False)
    )
    assert store.read_keypoints(1, np.array([98]))["found"].all()


def test_read_keypoints_is_cached_and_fast(tmp_path):
    store = PseudoLabelStore(tmp_path / "store", num_joints=K)
    for key in range(20):
        store.write_batch(0, key, make_rows(32, key, first_index=32 * key, heatmaps=False))
    store.read_keypoints(0, np.arange(32))  # builds the index
    asked = np.random.default_rng(0).integers(0, 640, 32)
    start = time.perf_counter()
    for _ in range(50):
        got = store.read_keypoints(0, asked)
    per_call = (time.perf_counter() - start) / 50
    assert got["found"].all()
    assert per_call < 0.01, f"read_keypoints took {per_call * 1000:.1f} ms per call"


def test_heatmap_encoding_error_and_size(tmp_path):
    # error < 1/255 on labels, noisy labels, negative values and flat maps
    for hm in (
        gaussian_maps(16, 0, (48, 64)),
        gaussian_maps(16, 1, (48, 64), noise=0.02),
        gaussian_maps(16, 2, (48, 64), noise=0.01) - 0.05,
        np.full((2, K, 64, 48), 0.25, np.float32),
    ):
        codes, offset, step = encode_heatmaps(hm)
        assert codes.dtype == np.uint8 and codes.shape == hm.shape
        assert offset.shape == step.shape == hm.shape[:2]
        err = np.abs(decode_heatmaps(codes, offset, step) - hm).max()
        assert err <= HEATMAP_MAX_ERROR + 1e-7 and err < 1 / 255
    # a background at 0 is exactly 0 after decoding (0 sits at the centre of a code's bin)
    labels = gaussian_maps(4, 3, (48, 64))
    decoded = decode_heatmaps(*encode_heatmaps(labels))
    assert (decoded[labels == 0] == 0).all()
    # a range wider than 254 steps degrades gracefully: error range / 508
    wide = np.linspace(-1.5, 1.5, 64 * 48, dtype=np.float32).reshape(1, 1, 64, 48)
    assert np.abs(decode_heatmaps(*encode_heatmaps(wide)) - wide).max() <= 3.0 / 508 + 1e-6

    # size: 17x64x48 Gaussian labels with a smooth noise floor, through the store's Parquet file
    n = 64
    for noise in (0.0, 0.002):
        rows = make_rows(n, 0, heatmaps=False)
        rows.heatmaps = gaussian_maps(n, 5, (48, 64), noise=noise)
        store = PseudoLabelStore(tmp_path / f"s{noise}", num_joints=K, heatmap_size=(48, 64))
        path = store.write_batch(0, 0, rows)
        per_person = heatmap_bytes(path) / n
        assert per_person <= 8 * 1024, f"noise {noise}: {per_person:.0f} bytes per person"
        back = store.read_rows(0).heatmaps
        assert np.abs(back - rows.heatmaps).max() < 1 / 255


def test_wrong_schema_version_names_the_file_and_field(tmp_path):
    root = tmp_path / "store"
    store = PseudoLabelStore(root, num_joints=K)
    store.write_batch(0, 0, make_rows(2, 0, heatmaps=False))
    path = store.write_batch(0, 1, make_rows(2, 1, first_index=2, heatmaps=False))
    table = pq.read_table(path)
    meta = dict(table.schema.metadata)
    pq.write_table(table.replace_schema_metadata({**meta, b"sspcm.schema_version": b"2"}), path)
    for read in (
        lambda: store.read_epoch(0),
        lambda: store.read_rows(0),
        lambda: store.read_keypoints(0, [0]),
    ):
        with pytest.raises(StoreError, match=r"part-00000001\.parquet.*sspcm\.schema_version.* 2"):
            read()

    (root / "_store.json").write_text(
        json.dumps({"schema_version": 7, "num_joints": K, "heatmap_size": None})
    )
    with pytest.raises(StoreError, match=r"_store\.json.*'schema_version' is 7"):
        PseudoLabelStore.open(root)
    with pytest.raises(StoreError, match=r"_store\.json.*'schema_version'"):
        PseudoLabelStore(root, num_joints=K)
    with pytest.raises(StoreError, match=r"not a pseudo-label store"):
        PseudoLabelStore.open(tmp_path / "absent")


def test_mismatched_store_and_bad_rows_are_named(tmp_path):
    root = tmp_path / "store"
    PseudoLabelStore(root, num_joints=K, heatmap_size=(W, H))
    with pytest.raises(StoreError, match=r"_store\.json.*'num_joints' is 17.*16"):
        PseudoLabelStore(root, num_joints=16, heatmap_size=(W, H))
    with pytest.raises(StoreError, match=r"'heatmap_size'"):
        PseudoLabelStore(root, num_joints=K, heatmap_size=(48, 64))
    store = PseudoLabelStore.open(root)
    rows = make_rows(3, 0)
    rows.pi = rows.pi[:, :5]
    with pytest.raises(StoreError, match=r"PseudoLabelRows\.pi: expected shape \(3, 17\)"):
        store.write_batch(0, 0, rows)
    rows = make_rows(3, 0)
    rows.heatmaps = rows.heatmaps[..., :4]
    with pytest.raises(StoreError, match=r"PseudoLabelRows\.heatmaps"):
        store.write_batch(0, 0, rows)
    with pytest.raises(StoreError, match=r"heatmaps given; the store has no heatmap_size"):
        PseudoLabelStore(tmp_path / "plain", num_joints=K).write_batch(0, 0, make_rows(2, 0))
    assert not (root / "epoch_0000").exists() or not list((root / "epoch_0000").iterdir())


def test_missing_partition_names_the_epoch(tmp_path):
    store = PseudoLabelStore(tmp_path / "store", num_joints=K)
    store.write_batch(0, 0, make_rows(2, 0, heatmaps=False))
    for read in (
        lambda: store.read_epoch(5),
        lambda: store.read_rows(5),
        lambda: store.read_keypoints(5, np.array([0])),
    ):
        with pytest.raises(StoreError, match=r"epoch 5 \(epoch_0005\) is missing; epochs present: \[0\]"):
            read()


def test_summary_counts_rows_kept_joints_and_pi_per_joint(tmp_path):
    store = PseudoLabelStore(tmp_path / "store", num_joints=K)
    a, b = make_rows(6, 0, heatmaps=False), make_rows(4, 1, heatmaps=False)
    b.pi[0, 3] = np.nan  # e.g. a joint with no prediction: not counted in the histogram
    store.write_batch(0, 0, a)
    store.write_batch(2, 0, b)
    s = store.summary()
    assert s["rows"] == 10 and s["epochs"] == [0, 2] and s["rows_per_epoch"] == {0: 6, 2: 4}
    weights = np.concatenate([a.weights, b.weights])
    assert s["kept_joint_fraction"] == pytest.approx((weights > 0).mean())
    np.testing.assert_allclose(s["kept_fraction_per_joint"], (weights > 0).mean(0))
    hist = np.asarray(s["pi_histogram"])
    assert hist.shape == (K, 10) and len(s["pi_bin_edges"]) == 11
    expected = np.full(K, 10)
    expected[3] = 9
    np.testing.assert_array_equal(hist.sum(1), expected)
    empty = PseudoLabelStore(tmp_path / "empty", num_joints=K).summary()
    assert empty["rows"] == 0 and empty["epochs"] == []


WRITER = """
import io, sys, time
sys.path.insert(0, {repo!r})
sys.path.insert(0, {tests!r})
import pyarrow.parquet as pq
from test_pseudo_label_store import make_rows
from pipeline.store.pseudo_label_store import PseudoLabelStore

store = PseudoLabelStore({root!r}, num_joints={k}, heatmap_size=({w}, {h}))
for key in range(3):
    store.write_batch(0, key, make_rows(64, key, first_index=64 * key))
real_write = pq.write_table

def write_half_then_hang(table, where, **kwargs):
    buf = io.BytesIO()
    real_write(table, buf, **kwargs)
    where.write(buf.getvalue()[: len(buf.getvalue()) // 2])
    where.flush()
    print("MID-WRITE", flush=True)
    time.sleep(120)

pq.write_table = write_half_then_hang  # the 4th batch stops half-written, then the writer is killed
store.write_batch(0, 3, make_rows(64, 3, first_index=192))
"""


def test_writer_killed_mid_write_leaves_only_whole_batches(tmp_path, ray_session):
    root = tmp_path / "store"
    script = WRITER.format(repo=str(REPO), tests=str(Path(__file__).parent), root=str(root), k=K, w=W, h=H)
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)], stdout=subprocess.PIPE, text=True
    )
    try:
        line = proc.stdout.readline()  # blocks until the 4th batch is half on disk
        assert line.strip() == "MID-WRITE", f"writer exited early (rc {proc.poll()})"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

    epoch_dir = root / "epoch_0000"
    partial = [p for p in epoch_dir.iterdir() if not p.name.startswith("part-")]
    assert len(partial) == 1 and partial[0].name.startswith(".part-00000003.") and partial[0].suffix == ".tmp"
    assert partial[0].stat().st_size > 0
    with pytest.raises(Exception):  # noqa: B017 - it really is a torn Parquet file
        pq.read_table(partial[0])

    store = PseudoLabelStore.open(root)
    assert [p.name for p in store.files(0)] == [f"part-{k:08d}.parquet" for k in range(3)]
    for path in store.files(0):  # every visible file is whole
        assert pq.read_table(path).num_rows == 64
    assert store.read_epoch(0).num_rows == 192
    np.testing.assert_array_equal(store.read_rows(0).person_index, np.arange(192))
    assert store.read_keypoints(0, np.array([191, 192]))["found"].tolist() == [True, False]
    # no reader lists the temporary file
    assert pads.dataset(root, format="parquet").count_rows() == 192
    assert pq.read_table(root).num_rows == 192
    assert duckdb.sql(f"select count(*) from read_parquet('{root}/**/*.parquet')").fetchall()[0][0] == 192
    assert ray_session.data.read_parquet(str(root)).count() == 192
    # the step is replayed after the crash: the batch lands whole, the store reads on
    store.write_batch(0, 3, make_rows(64, 3, first_index=192))
    assert store.read_epoch(0).num_rows == 256


# ---- compaction --------------------------------------------------------------------------------


def write_steps(
    store: PseudoLabelStore, epoch: int, keys, writers=(None,), n: int = 3, seed: int = 0
) -> None:
    """``n`` persons per (key, writer), each person once per epoch (its pool position)."""
    for key in keys:
        for lane, writer in enumerate(writers):
            first = (key * len(writers) + lane) * n
            rows = make_rows(
                n, seed + 100 * key + lane, first_index=first, heatmaps=store.heatmap_size is not None
            )
            store.write_batch(epoch, key, rows, writer=writer)


def reads(store: PseudoLabelStore, epoch: int) -> dict:
    """What every reader of the store returns for ``epoch``."""
    table = store.read_epoch(epoch)
    persons = np.sort(table["person_index"].to_numpy())
    summary = store.summary()
    del summary["root"]
    return {
        "table": table,
        "rows": store.read_rows(epoch),
        "keypoints": store.read_keypoints(epoch, np.append(persons[::-1], 10**6)),
        "summary": summary,
    }


def assert_same_reads(got: dict, want: dict) -> None:
    assert got["table"].equals(want["table"])  # same rows, same order
    assert got["table"].schema.metadata == want["table"].schema.metadata
    for f in (*ARRAY_FIELDS, "person_index", "heatmaps", "image_file"):
        np.testing.assert_array_equal(getattr(got["rows"], f), getattr(want["rows"], f), err_msg=f)
    for name in ("kpts_a", "kpts_b", "found"):
        np.testing.assert_array_equal(got["keypoints"][name], want["keypoints"][name], err_msg=name)
    assert got["summary"] == want["summary"]


def names(store: PseudoLabelStore, epoch: int) -> list[str]:
    return [split_location(p)[1] for p in store.files(epoch)]


def listed(directory: Path) -> list[str]:
    """Every entry of a directory, hidden ones included."""
    return sorted(p.name for p in directory.iterdir())


def test_compaction_merges_each_writers_steps_into_one_file_and_reads_the_same(tmp_path):
    root = tmp_path / "store"
    store = PseudoLabelStore(root, num_joints=K, heatmap_size=(W, H))
    write_steps(store, 0, range(6), writers=(0, 1))
    write_steps(store, 1, range(6, 9), writers=(0, 1))
    step_meta = pq.read_schema(store.files(0)[0]).metadata
    before = reads(store, 0)  # also builds the keypoint cache of epoch 0
    before_1 = reads(store, 1)

    written = store.compact(0)
    compacted = ["part-00000000-00000005-w00.parquet", "part-00000000-00000005-w01.parquet"]
    assert [p.name for p in written] == compacted
    assert listed(root / "epoch_0000") == compacted  # the step files are gone, no temporary file
    assert names(store, 0) == compacted
    assert_same_reads(reads(store, 0), before)
    assert store._index[0][0] == tuple(compacted)  # the keypoint cache follows the new files
    for path in written:
        meta = pq.read_schema(path).metadata
        assert {k: v for k, v in meta.items() if k.startswith(b"sspcm.")} == {
            k: v for k, v in step_meta.items() if k.startswith(b"sspcm.")
        }
        assert pq.read_metadata(path).num_rows == 6 * 3
    # readers with no project code see each row once
    assert pads.dataset(root / "epoch_0000", format="parquet").count_rows() == 36
    sql = f"select count(*), count(distinct person_index) from read_parquet('{root}/epoch_0000/*.parquet')"
    assert duckdb.sql(sql).fetchall() == [(36, 36)]

    assert store.compact(0) == []  # nothing left to merge
    assert listed(root / "epoch_0000") == compacted
    assert_same_reads(reads(store, 1), before_1)  # another epoch is untouched
    assert len(listed(root / "epoch_0001")) == 6

    # one writer at a time (each lane compacts its own)
    assert [p.name for p in store.compact(1, writer=1)] == ["part-00000006-00000008-w01.parquet"]
    assert names(store, 1) == [
        "part-00000006-w00.parquet", "part-00000006-00000008-w01.parquet",
        "part-00000007-w00.parquet", "part-00000008-w00.parquet",
    ]  # fmt: skip
    assert_same_reads(reads(store, 1), before_1)
    assert store.writers(1) == [0, 1]
    assert store.compact(5) == []  # an epoch without files


def test_rows_per_file_caps_compacted_files_and_steps_are_not_split(tmp_path):
    root = tmp_path / "store"
    store = PseudoLabelStore(root, num_joints=K)
    write_steps(store, 0, range(10))  # one writer: plain names, 3 rows per step
    store.write_batch(0, 4, make_rows(8, 44, first_index=100, heatmaps=False))  # a step of 8 rows
    before = reads(store, 0)

    written = store.compact(0, rows_per_file=7)
    assert [p.name for p in written] == [
        "part-00000000-00000001.parquet", "part-00000002-00000003.parquet",
        "part-00000004-00000004.parquet", "part-00000005-00000006.parquet",
        "part-00000007-00000008.parquet", "part-00000009-00000009.parquet",
    ]  # fmt: skip
    assert [pq.read_metadata(p).num_rows for p in written] == [6, 6, 8, 6, 6, 3]  # 8: one step
    assert listed(root / "epoch_0000") == [p.name for p in written]
    assert_same_reads(reads(store, 0), before)

    # a larger cap merges the compacted files, a smaller one keeps them
    assert store.compact(0, rows_per_file=4) == []
    written = store.compact(0, rows_per_file=20)
    assert [p.name for p in written] == ["part-00000000-00000004.parquet", "part-00000005-00000009.parquet"]
    assert listed(root / "epoch_0000") == [p.name for p in written]
    assert_same_reads(reads(store, 0), before)
    assert [p.name for p in store.compact(0)] == ["part-00000000-00000009.parquet"]
    assert_same_reads(reads(store, 0), before)
    with pytest.raises(StoreError, match="rows_per_file must be >= 0"):
        store.compact(0, rows_per_file=-1)


def test_an_interrupted_compaction_reads_the_same_and_running_it_again_finishes(tmp_path):
    """The states a crash can leave: compacted files renamed in and all, some or none of the files
    they replace still there; readers return every row once, and ``compact`` deletes the rest."""
    root = tmp_path / "store"
    store = PseudoLabelStore(root, num_joints=K, heatmap_size=(W, H))
    epoch_dir = root / "epoch_0000"
    saved = tmp_path / "saved"
    write_steps(store, 0, range(6), writers=(0, 1))
    shutil.copytree(epoch_dir, saved / "steps")
    before = reads(store, 0)
    compacted = [p.name for p in store.compact(0)]

    for restored in (6 * 2, 3):  # every step file (renamed in, nothing deleted), or a few
        for path in sorted((saved / "steps").iterdir())[:restored]:
            shutil.copy(path, epoch_dir)
        assert len(listed(epoch_dir)) == 2 + restored
        assert names(store, 0) == compacted
        assert_same_reads(reads(store, 0), before)
        assert store.compact(0) == []
        assert listed(epoch_dir) == compacted

    # a second compaction of the epoch (after a resume relabelled its last steps) interrupted:
    # the new file covers the old one's keys, which readers skip
    store.forget_from(0, 4)
    write_steps(store, 0, range(4, 6), writers=(0, 1), seed=7)
    shutil.copytree(epoch_dir, saved / "relabelled")
    again = reads(store, 0)
    compacted = [p.name for p in store.compact(0)]
    assert compacted == ["part-00000000-00000005-w00.parquet", "part-00000000-00000005-w01.parquet"]
    for path in (saved / "relabelled").iterdir():
        shutil.copy(path, epoch_dir)
    assert len(listed(epoch_dir)) == 2 + 2 + 4
    assert names(store, 0) == compacted
    assert_same_reads(reads(store, 0), again)
    assert store.compact(0) == [] and listed(epoch_dir) == compacted

    # capped files merged under a larger cap, the old ones still there
    for path in epoch_dir.iterdir():
        path.unlink()
    for path in (saved / "steps").iterdir():
        shutil.copy(path, epoch_dir)
    small = [p.name for p in store.compact(0, rows_per_file=6)]
    assert len(small) == 6
    shutil.copytree(epoch_dir, saved / "small")
    large = [p.name for p in store.compact(0, rows_per_file=12)]
    assert large == ["part-00000000-00000003-w00.parquet", "part-00000000-00000003-w01.parquet"]
    after = names(store, 0)
    assert after == [
        "part-00000000-00000003-w00.parquet", "part-00000000-00000003-w01.parquet",
        "part-00000004-00000005-w00.parquet", "part-00000004-00000005-w01.parquet",
    ]  # fmt: skip
    for path in (saved / "small").iterdir():
        shutil.copy(path, epoch_dir)
    assert len(listed(epoch_dir)) == 4 + 4
    assert names(store, 0) == after
    assert_same_reads(reads(store, 0), before)
    assert store.compact(0, rows_per_file=12) == [] and listed(epoch_dir) == after


def test_forget_from_cuts_compacted_files_and_a_replayed_step_is_read_once(tmp_path):
    """A resume on a compacted epoch: ``forget_from`` rewrites the compacted files without the
    steps to run again; the replayed steps then read as in a store never compacted."""
    store = PseudoLabelStore(tmp_path / "store", num_joints=K, heatmap_size=(W, H))
    plain = PseudoLabelStore(tmp_path / "plain", num_joints=K, heatmap_size=(W, H))  # never compacted
    for s in (store, plain):
        write_steps(s, 0, range(6), writers=(0, 1))
        write_steps(s, 1, range(6, 10), writers=(0, 1))
    store.compact(0)
    store.compact(1)
    # a step written again without forget_from: the compacted file holds its key, no row twice
    store.write_batch(1, 9, make_rows(3, 99, first_index=(9 * 2) * 3))
    assert_same_reads(reads(store, 1), reads(plain, 1))

    assert store.forget_from(1, 8) == 3  # both writers' compacted files cut, the step file deleted
    assert plain.forget_from(1, 8) == 4  # steps 8 and 9 of both writers
    assert names(store, 1) == ["part-00000006-00000007-w00.parquet", "part-00000006-00000007-w01.parquet"]
    assert listed(tmp_path / "store" / "epoch_0001") == names(store, 1)
    assert_same_reads(reads(store, 1), reads(plain, 1))
    assert pq.read_schema(store.files(1)[0]).metadata[b"sspcm.num_joints"] == b"17"

    for s in (store, plain):  # the replayed steps label differently
        write_steps(s, 1, range(8, 10), writers=(0, 1), seed=5)
    assert_same_reads(reads(store, 1), reads(plain, 1))
    persons = store.read_epoch(1)["person_index"].to_pylist()
    assert len(persons) == len(set(persons)) == 4 * 2 * 3
    assert [p.name for p in store.compact(1)] == [
        "part-00000006-00000009-w00.parquet", "part-00000006-00000009-w01.parquet",
    ]  # fmt: skip
    assert_same_reads(reads(store, 1), reads(plain, 1))

    # a resume at the epoch's first key drops its compacted files whole, and later epochs
    assert store.forget_from(0, 0) == 4
    assert store.epochs() == []


def test_an_interrupted_forget_from_never_reads_a_row_twice_and_running_it_again_finishes(tmp_path):
    root = tmp_path / "store"
    store = PseudoLabelStore(root, num_joints=K)
    write_steps(store, 0, range(6), writers=(0, 1))
    store.compact(0)
    before = reads(store, 0)
    shutil.copytree(root / "epoch_0000", tmp_path / "compacted")
    store.forget_from(0, 3)
    cut = reads(store, 0)
    assert cut["table"].num_rows == 3 * 2 * 3
    for path in (tmp_path / "compacted").iterdir():  # the cut files are in, the old ones not deleted
        shutil.copy(path, root / "epoch_0000")
    assert_same_reads(reads(store, 0), before)  # the old files are read, the cut ones skipped
    store.forget_from(0, 3)
    assert_same_reads(reads(store, 0), cut)
    assert listed(root / "epoch_0000") == [
        "part-00000000-00000002-w00.parquet", "part-00000000-00000002-w01.parquet",
    ]  # fmt: skip


def test_a_store_at_a_uri_writes_compacts_forgets_and_reads_as_a_local_one(tmp_path):
    """``file://`` (a local disk through pyarrow: temporary file + rename) and ``mock://`` (an
    in-memory pyarrow filesystem standing in for an object store: one write per file) give the
    reads of a store at a local path; ``jobs.inspect_store`` opens the URI."""
    from jobs.inspect_store import main as inspect_main

    local = PseudoLabelStore(tmp_path / "local", num_joints=K, heatmap_size=(W, H))
    uri = (tmp_path / "uri").as_uri()
    for root in (uri, "mock:///store"):
        store = PseudoLabelStore(root, num_joints=K, heatmap_size=(W, H))
        assert store.root == root
        for s in (store, local):
            for e in (0, 1):
                if e in s.epochs():
                    s.forget_from(e, 0)
            write_steps(s, 0, range(5), writers=(0, 1))
            write_steps(s, 1, range(5, 8))
        path = store.file_for(0, 4, writer=1)
        assert path == f"{root.rstrip('/')}/epoch_0000/part-00000004-w01.parquet"
        assert store.epochs() == [0, 1] and store.files(1)[0] == f"{root}/epoch_0001/part-00000005.parquet"
        assert_same_reads(reads(store, 0), reads(local, 0))

        assert [split_location(p)[1] for p in store.compact(0)] == [
            "part-00000000-00000004-w00.parquet", "part-00000000-00000004-w01.parquet",
        ]  # fmt: skip
        store.compact(1, rows_per_file=6)
        assert names(store, 1) == ["part-00000005-00000006.parquet", "part-00000007-00000007.parquet"]
        assert_same_reads(reads(store, 0), reads(local, 0))
        assert_same_reads(reads(store, 1), reads(local, 1))
        # cut: 2 compacted files of epoch 0 and epoch 1's 2; deleted: 6 step files and epoch 1's 3
        assert store.forget_from(0, 2) == 4 and local.forget_from(0, 2) == 9
        write_steps(store, 0, range(2, 5), writers=(0, 1), seed=3)
        write_steps(local, 0, range(2, 5), writers=(0, 1), seed=3)
        assert_same_reads(reads(store, 0), reads(local, 0))
        if root == uri:  # (every mock:// URI opens a new, empty filesystem)
            assert heatmap_bytes(store.files(0)[0]) > 0
        fs, fs_root = store.fs, store.fs_root
        hidden = [
            i.base_name for i in fs.get_file_info(pafs.FileSelector(fs_root, recursive=True))
            if i.base_name.startswith(".")
        ]  # fmt: skip
        assert hidden == []

    # the file:// store is a local directory: the same files, opened by path or by URI
    assert listed(tmp_path / "uri" / "epoch_0000") == [
        "part-00000000-00000001-w00.parquet", "part-00000000-00000001-w01.parquet",
        "part-00000002-w00.parquet", "part-00000002-w01.parquet", "part-00000003-w00.parquet",
        "part-00000003-w01.parquet", "part-00000004-w00.parquet", "part-00000004-w01.parquet",
    ]  # fmt: skip
    by_path = PseudoLabelStore.open(tmp_path / "uri")
    by_uri = PseudoLabelStore.open(uri)
    assert_same_reads(reads(by_uri, 0), reads(by_path, 0))
    summary = inspect_main([uri])
    assert summary == by_uri.summary() and summary["root"] == uri
    assert {k: v for k, v in summary.items() if k != "root"} == reads(local, 0)["summary"]
    with pytest.raises(StoreError, match="not a pseudo-label store"):
        PseudoLabelStore.open((tmp_path / "absent").as_uri())


def test_file_names_of_steps_and_compacted_files():
    assert parse_file_name("part-00000123.parquet") == StoreFile(
        "part-00000123.parquet", 123, 123, 0, False, False
    )
    assert parse_file_name("part-00000123-w01.parquet").writer == 1
    got = parse_file_name("part-00000100-00000199-w02.parquet")
    assert (got.first, got.last, got.writer, got.compacted, got.suffixed) == (100, 199, 2, True, True)
    got = parse_file_name("part-00000100-00000199.parquet")
    assert (got.first, got.last, got.writer, got.compacted, got.suffixed) == (100, 199, 0, True, False)
    for other in (
        ".part-00000001.parquet.x1y2.tmp",
        "part-x.parquet",
        "part-00000009-00000001.parquet",
        "a.parquet",
    ):
        assert parse_file_name(other) is None
    assert _file_order("s3://b/p/epoch_0000/part-00000100-00000199-w02.parquet?region=x") == (100, 2, 199)
