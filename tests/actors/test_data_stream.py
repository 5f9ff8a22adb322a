"""Ray Data batch streams: the same batches as the local loader, and a pool larger than the
object store streams through it."""

from __future__ import annotations

import numpy as np
import torch

from actors.data_stream import ray_data_batches
from pipeline.config import AugmentConfig
from pipeline.datasets import load_coco_persons
from pipeline.heatmaps import HeatmapCodec
from pipeline.skeletons import COCO17
from pipeline.topdown_data import LabeledDataset, UnlabeledDataset
from pipeline.trainer import epoch_batches
from tests.conftest import RAY_OBJECT_STORE_BYTES

CODEC = HeatmapCodec(input_size=(64, 64), heatmap_size=(16, 16), sigma=1.5)


def datasets(synthetic_data, codec=CODEC):
    persons = load_coco_persons(synthetic_data["train_ann"], synthetic_data["train_images"], skeleton=COCO17)
    aug = AugmentConfig()
    lab = LabeledDataset(persons, codec, COCO17, augment=aug, seed=5)
    unl = UnlabeledDataset(persons, codec, COCO17, augment=aug, seed=5)
    for ds in (lab, unl):
        ds.set_epoch(3)
    return lab, unl


def test_ray_data_batches_equal_the_local_loader(ray_session, synthetic_data):
    for ds in datasets(synthetic_data):
        order = epoch_batches(len(ds), 4, 5, seed=5, epoch=3, salt=1)
        local = list(torch.utils.data.DataLoader(ds, batch_sampler=order))
        streamed = list(ray_data_batches("x", ds, order))
        assert len(streamed) == len(local) == 5
        for a, b in zip(local, streamed):
            assert a.keys() == b.keys()
            for k in a:
                if isinstance(a[k], torch.Tensor):
                    assert a[k].dtype == b[k].dtype, k
                    torch.testing.assert_close(b[k], a[k], rtol=0, atol=0)
                else:
                    assert list(a[k]) == list(b[k]), k


def test_a_pool_larger_than_the_object_store_streams(ray_session, synthetic_data):
    _, unl = datasets(synthetic_data, HeatmapCodec((128, 128), (32, 32), 2.0))
    batch, steps = 32, 40
    order = epoch_batches(len(unl), batch, steps, seed=0, epoch=0, salt=1)
    per_batch = 32 * 3 * 128 * 128 * 4  # the images alone, bytes
    assert per_batch * steps > 1.2 * RAY_OBJECT_STORE_BYTES  # the whole epoch would not fit
    seen = 0
    for b in ray_data_batches("unlabeled", unl, order, prefetch_batches=2):
        assert b["images"].shape == (batch, 3, 128, 128)
        seen += 1
    assert seen == steps
    np.testing.assert_array_equal(b["index"].numpy(), order[-1])
