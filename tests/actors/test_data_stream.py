"""Ray Data batch streams: the same batches as the local loader (image folder or Parquet pack),
an epoch larger than the object store streams through it, and a Ray run trains on a pack."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from ray._private.internal_api import get_memory_info_reply, get_state_from_address

from actors.data_stream import load_stream_run_data, ray_data_batches
from actors.driver import train_ray
from pipeline.config import AugmentConfig, load_config
from pipeline.data.coco import load_coco_persons
from pipeline.data.pool_packs import PackedPerson, PackedPool, pack_pool, read_pool_pack
from pipeline.data.skeletons import COCO17
from pipeline.data.topdown import LabeledDataset, UnlabeledDataset
from pipeline.data.wild_pool import load_pool
from pipeline.geometry.heatmaps import HeatmapCodec
from pipeline.run_setup import load_run_data
from pipeline.store.pseudo_label_store import PseudoLabelStore
from pipeline.trainer import epoch_batches
from tests.conftest import RAY_OBJECT_STORE_BYTES
from tests.helpers import tiny_overrides

log = logging.getLogger(__name__)
CODEC = HeatmapCodec(input_size=(64, 64), heatmap_size=(16, 16), sigma=1.5)


@pytest.fixture(scope="module")
def pack(synthetic_data, tmp_path_factory):
    """The synthetic train set's pool packed into Parquet (a few images per file)."""
    out = tmp_path_factory.mktemp("pack")
    pool = load_pool(image_dir=synthetic_data["train_images"], annotations_json=synthetic_data["train_ann"])
    pack_pool(pool, synthetic_data["train_images"], out, rows_per_file=8)
    return {"dir": out, "folder_pool": pool}


def make(cls, persons, codec=CODEC):
    ds = cls(persons, codec, COCO17, augment=AugmentConfig(), seed=5)
    ds.set_epoch(3)
    return ds


def store_stats():
    """The object store's counters (bytes used now, bytes spilled so far, ...)."""
    return get_memory_info_reply(get_state_from_address()).store_stats


def assert_same_batches(local: list[dict], streamed: list[dict]) -> None:
    assert len(streamed) == len(local)
    for a, b in zip(local, streamed):
        assert a.keys() == b.keys()
        for k in a:
            if isinstance(a[k], torch.Tensor):
                assert a[k].dtype == b[k].dtype, k
                torch.testing.assert_close(b[k], a[k], rtol=0, atol=0)
            else:
                assert list(a[k]) == list(b[k]), k


def test_ray_data_batches_equal_the_local_loader(ray_session, synthetic_data, pack):
    persons = load_coco_persons(synthetic_data["train_ann"], synthetic_data["train_images"], skeleton=COCO17)
    folder_pool = list(pack["folder_pool"])
    packed_pool = read_pool_pack(pack["dir"])
    cases = [  # (dataset streamed by Ray Data, dataset of the local DataLoader)
        (make(LabeledDataset, persons), make(LabeledDataset, persons)),
        (make(UnlabeledDataset, folder_pool), make(UnlabeledDataset, folder_pool)),
        (make(UnlabeledDataset, packed_pool), make(UnlabeledDataset, folder_pool)),  # images from the pack
    ]
    for streamed_ds, local_ds in cases:
        order = epoch_batches(len(local_ds), 4, 5, seed=5, epoch=3, salt=1)
        local = list(torch.utils.data.DataLoader(local_ds, batch_sampler=order))
        streamed = list(ray_data_batches("x", streamed_ds, order))
        assert_same_batches(local, streamed)
        assert streamed[0]["matrix"].dtype == torch.float64 and streamed[0]["flipped"].dtype == torch.bool


def test_an_epoch_larger_than_the_object_store_streams(ray_session, pack):
    """The crops of one epoch (~290 MB) exceed the 160 MB object store: they stream through it
    without spilling. Sampled at every step, the bytes the store must keep (primary copies) stay
    near the stream's budget (``store_fraction`` 0.2 = 32 MB, plus blocks being built and
    prefetched). The bytes it holds, released objects not yet evicted included, are only logged:
    the store keeps those until it is full, by design."""
    codec = HeatmapCodec((128, 128), (32, 32), 2.0)
    unl = make(UnlabeledDataset, read_pool_pack(pack["dir"]), codec)
    batch, steps = 32, 48
    order = epoch_batches(len(unl), batch, steps, seed=0, epoch=0, salt=1)
    per_batch = batch * 3 * 128 * 128 * 4  # the images alone, bytes
    assert per_batch * steps > 1.5 * RAY_OBJECT_STORE_BYTES  # the whole epoch would not fit
    before = store_stats()
    seen, peak_needed, peak_used = 0, 0, 0
    for b in ray_data_batches("unlabeled", unl, order, prefetch_batches=2, store_fraction=0.2):
        assert b["images"].shape == (batch, 3, 128, 128)
        np.testing.assert_array_equal(b["index"].numpy(), order[seen])  # batch i is step i
        stats = store_stats()
        peak_needed = max(peak_needed, stats.object_store_bytes_primary_copy)
        peak_used = max(peak_used, stats.object_store_bytes_used)
        seen += 1
    after = store_stats()
    log.info(
        "streamed %d MB of crops; object store peak: %d MB needed, %d MB held",
        per_batch * steps >> 20,
        peak_needed >> 20,
        peak_used >> 20,
    )
    assert seen == steps
    assert after.spilled_bytes_total == before.spilled_bytes_total  # nothing spilled to disk
    assert after.object_store_bytes_fallback == 0  # nor allocated outside the store
    assert peak_needed < 0.5 * RAY_OBJECT_STORE_BYTES, peak_needed


def test_run_data_reads_the_pool_from_its_pack(synthetic_data, pack, tmp_path):
    base = [
        *tiny_overrides(synthetic_data, tmp_path / "run", "sspcm"),
        f"data.unlabeled_parquet={pack['dir']}",
        "data.loader=ray_data",
        "resources.runtime=ray",
    ]
    n_pack, n_labeled = len(pack["folder_pool"]), len(load_run_data(load_config(None, base[:-3])).labeled)
    only = load_stream_run_data(load_config(None, [*base, "data.pool_includes_labeled=false"]))
    assert isinstance(only.unlabeled, PackedPool) and len(only.unlabeled) == n_pack
    mixed = load_stream_run_data(load_config(None, base)).unlabeled
    assert len(mixed) == n_pack + n_labeled
    assert all(isinstance(p, PackedPerson) for p in mixed[:n_pack])
    assert not any(isinstance(p, PackedPerson) for p in mixed[n_pack:])


def test_a_ray_run_trains_on_a_packed_pool(ray_session, synthetic_data, pack, tmp_path):
    cfg = load_config(
        None,
        [
            *tiny_overrides(synthetic_data, tmp_path / "run", "sspcm"),
            "optim.epochs=1",
            "train.num_threads=1",
            f"data.unlabeled_parquet={pack['dir']}",
            "data.pool_includes_labeled=false",
            "data.loader=ray_data",
            "resources.runtime=ray",
        ],
    )
    results = train_ray(cfg)
    assert np.isfinite(results["eval/student/AP"])
    rows = PseudoLabelStore.open(tmp_path / "run" / "pseudo_labels").read_rows(0)
    packed = read_pool_pack(pack["dir"])
    names = {packed[i].image_path for i in range(len(packed))}
    assert len(rows.image_file) == 2 * 4 and set(rows.image_file) <= names  # pool persons from the pack
