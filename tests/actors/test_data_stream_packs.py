"""A pool pack read through a ``file://`` URI, chained with the labeled set, streams the same
batches as the in-process loader over the image files."""

from __future__ import annotations

import torch

from actors.data_stream import load_stream_run_data, ray_data_batches
from pipeline.config import load_config
from pipeline.data.coco import load_coco_persons
from pipeline.data.pool_packs import ChainedPersons, PackedPool, pack_pool
from pipeline.data.skeletons import COCO17
from pipeline.data.topdown import UnlabeledDataset
from pipeline.data.wild_pool import load_pool
from pipeline.trainer import epoch_batches
from tests.actors.test_data_stream import assert_same_batches, make
from tests.helpers import tiny_overrides


def test_a_uri_pack_plus_the_labeled_set_streams_the_local_batches(ray_session, synthetic_data, tmp_path):
    images = synthetic_data["train_images"]
    pool = load_pool(image_dir=images, annotations_json=synthetic_data["train_ann"])
    uri = (tmp_path / "pack").as_uri()
    pack_pool(pool, images, uri, rows_per_file=8)
    cfg = load_config(
        None,
        [
            *tiny_overrides(synthetic_data, tmp_path / "run", "sspcm"),
            f"data.unlabeled_parquet={uri}",
            "data.loader=ray_data",
            "resources.runtime=ray",
        ],
    )
    unlabeled = load_stream_run_data(cfg).unlabeled
    assert isinstance(unlabeled, ChainedPersons) and isinstance(unlabeled.parts[0], PackedPool)
    labeled = load_coco_persons(synthetic_data["train_ann"], images, skeleton=COCO17)
    assert len(unlabeled) == len(pool) + len(labeled)
    streamed_ds = make(UnlabeledDataset, unlabeled)
    local_ds = make(UnlabeledDataset, list(pool) + labeled)  # the image files
    order = epoch_batches(len(local_ds), 4, 8, seed=5, epoch=3, salt=1)
    assert any(i >= len(pool) for b in order for i in b)  # some labeled persons are streamed
    local = list(torch.utils.data.DataLoader(local_ds, batch_sampler=order))
    assert_same_batches(local, list(ray_data_batches("unlabeled", streamed_ds, order)))
