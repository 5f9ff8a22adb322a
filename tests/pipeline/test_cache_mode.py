"""``cache`` mode: last epoch's teacher keypoints come from the store and are rendered in the
current easy view through the view matrices; every SSPCM step writes its labels to the store."""

from __future__ import annotations

import json

import numpy as np
import torch

from jobs.train import main as train_main
from pipeline.data.skeletons import COCO17
from pipeline.geometry.heatmaps import get_max_preds
from pipeline.geometry.views import transform_points
from pipeline.method.pcm import PCMConfig
from pipeline.method.pseudo_labels import PseudoLabelConfig, PseudoLabeler
from pipeline.store.pseudo_label_store import PseudoLabelRows, PseudoLabelStore
from tests.helpers import tiny_overrides
from tests.pipeline.test_pseudo_labels import CODEC, easy_targets, unlabeled_batch


def store_labeler(tmp_path) -> PseudoLabeler:
    cfg = PseudoLabelConfig(
        input_size=CODEC.input_size,
        heatmap_size=CODEC.heatmap_size,
        flip_indices=COCO17.flip_indices,
        pcm=PCMConfig(),
        sigma=CODEC.sigma,
        store_dir=str(tmp_path / "store"),
    )
    return PseudoLabeler(cfg)


def test_keypoints_in_image_undo_view_and_flip(synthetic_data, tmp_path):
    batch, persons = unlabeled_batch(synthetic_data)
    assert batch["flipped"].any() and not batch["flipped"].all()
    hm, w, _ = easy_targets(batch, persons)
    kpts = store_labeler(tmp_path).keypoints_in_image(hm, batch)  # (N,K,3), skeleton order
    stride = CODEC.input_size[0] / CODEC.heatmap_size[0]
    for i, p in enumerate(persons):
        # joints inside the crop come back to their image position (quarter-offset decoding)
        inside = np.asarray(w[i] > 0)
        if batch["flipped"][i]:
            inside = inside[list(COCO17.flip_indices)]
        err = np.linalg.norm(kpts[i, inside, :2] - p.kpts_img[inside, :2], axis=-1)
        scale = stride / abs(np.linalg.det(batch["matrix"][i].numpy()[:, :2])) ** 0.5
        assert err.max() < 0.6 * scale, (i, err.max(), scale)


def test_previous_from_store_renders_last_epoch_in_the_current_view(synthetic_data, tmp_path):
    batch, persons = unlabeled_batch(synthetic_data)
    pl = store_labeler(tmp_path)
    assert pl.previous_from_store(batch, epoch=0) == (None, None)  # first epoch: no previous pair
    n, k = len(persons), COCO17.num_joints
    truth = np.stack([p.kpts_img[:, :2] for p in persons]).astype(np.float32)
    kpts_a = np.concatenate([truth, np.full((n, k, 1), 0.8, np.float32)], -1)
    kpts_b = kpts_a.copy()
    kpts_b[..., 0] += 3.0  # B was 3 image px to the right
    rows = PseudoLabelRows(
        image_id=np.asarray(batch["image_id"], dtype=np.int64)[:-1],
        person_index=np.asarray(batch["index"], dtype=np.int64)[:-1],
        image_file=["x.jpg"] * (n - 1),
        bbox=np.zeros((n - 1, 4), np.float32),
        kpts_a=kpts_a[:-1],
        kpts_b=kpts_b[:-1],
        pi=np.zeros((n - 1, k), np.float32),
        kpts_corrected=kpts_a[:-1],
        weights=np.ones((n - 1, k), np.float32),
    )
    pl.store.write_batch(0, 7, rows)  # the last person of the batch was not seen last epoch
    prev_a, prev_b = pl.previous_from_store(batch, epoch=1)
    assert prev_a.shape == (n, k, *CODEC.heatmap_size[::-1])
    assert torch.isnan(prev_a[-1]).all() and not torch.isnan(prev_a[:-1]).any()
    coords, peaks = get_max_preds(prev_a[:-1])
    stride = CODEC.input_size[0] / CODEC.heatmap_size[0]
    for i in range(n - 1):
        m = batch["matrix"][i].numpy()
        expected = transform_points(truth[i].astype(np.float64), m) / stride
        if batch["flipped"][i]:
            expected = expected[list(COCO17.flip_indices)]
        inside = ((expected >= 0) & (expected <= np.array(CODEC.heatmap_size) - 1)).all(-1)
        got = np.asarray(coords)[i]
        assert np.abs(got[inside] - expected[inside]).max() <= 0.75
        np.testing.assert_allclose(np.asarray(peaks)[i][inside].ravel(), 0.8, atol=0.15)
    # the NaN person falls back to the current teachers inside sspcm_targets
    hm, w, _ = easy_targets(batch, persons)
    *_, stats = pl.sspcm_targets(hm, hm, prev_a, prev_b, batch, step=3, epoch=1)
    assert 0.0 <= stats["kept_fraction"] <= 1.0
    assert set(pl.store.epochs()) == {0, 1}


def test_sspcm_cache_mode_trains_and_fills_the_store(synthetic_data, tmp_path):
    out = tmp_path / "run"
    overrides = tiny_overrides(synthetic_data, out, "sspcm")
    overrides += [
        "method.previous_teachers=cache",
        f"data.unlabeled_ann={synthetic_data['train_ann']}",
        f"data.unlabeled_images={synthetic_data['train_images']}",
        "data.pool_includes_labeled=false",
        "optim.steps_per_epoch=3",
        "optim.epochs=2",
    ]
    train_main([f"--{o}" for o in overrides] + ["--log-level=WARNING"])
    store = PseudoLabelStore.open(out / "pseudo_labels")
    assert store.epochs() == [0, 1]
    for epoch in (0, 1):
        table = store.read_epoch(epoch)
        keys = list(zip(table["person_index"].to_pylist(), table["epoch"].to_pylist()))
        assert table.num_rows == 3 * 4 and len(set(keys)) == len(keys)  # 3 steps x 4 persons, no duplicate
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    pairs = [x for x in lines if "pcm/pair_0_fraction" in x and x["epoch"] == 1]
    assert pairs, "PCM statistics are logged in the second epoch"
