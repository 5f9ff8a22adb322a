"""Stages 2-3 of the SSPCM step: who learns from whom, and hard views made through the matrices."""

from __future__ import annotations

import numpy as np
import torch

from pipeline.config import AugmentConfig
from pipeline.data.coco import load_coco_persons
from pipeline.data.skeletons import COCO17
from pipeline.data.topdown import UnlabeledDataset
from pipeline.geometry.heatmaps import HeatmapCodec
from pipeline.geometry.views import compose_affine, transform_points
from pipeline.method.pcm import PCMConfig
from pipeline.method.pseudo_labels import PseudoLabelConfig, PseudoLabeler
from pipeline.method.ssco import SSCOConfig

CODEC = HeatmapCodec(input_size=(64, 64), heatmap_size=(16, 16), sigma=1.5)


def labeler(labeler_kw: dict | None = None, **ssco_kw) -> PseudoLabeler:
    cfg = PseudoLabelConfig(
        input_size=CODEC.input_size,
        heatmap_size=CODEC.heatmap_size,
        flip_indices=COCO17.flip_indices,
        pcm=PCMConfig(),
        ssco=SSCOConfig(**ssco_kw),
        **(labeler_kw or {}),
    )
    return PseudoLabeler(cfg)


def unlabeled_batch(synthetic_data, n=6, seed=3):
    persons = load_coco_persons(synthetic_data["train_ann"], synthetic_data["train_images"], skeleton=COCO17)
    aug = AugmentConfig(easy_rotation_prob=1.0, hard_rotation_prob=1.0, flip_prob=0.5)
    ds = UnlabeledDataset(persons, CODEC, COCO17, augment=aug, seed=seed)
    items = [ds[i] for i in range(n)]
    batch = torch.utils.data.default_collate(items)
    return batch, [persons[i] for i in range(n)]


def easy_targets(batch, persons):
    """Ground-truth keypoints encoded in each easy view (channel order of that view)."""
    kin, vis = [], []
    for i, p in enumerate(persons):
        k = transform_points(p.kpts_img[:, :2].astype(np.float64), batch["matrix"][i].numpy())
        v = p.kpts_img[:, 2] > 0
        if batch["flipped"][i]:
            k, v = k[list(COCO17.flip_indices)], v[list(COCO17.flip_indices)]
        kin.append(k)
        vis.append(v)
    hm, w = CODEC.encode_batch(np.stack(kin), np.stack(vis))
    return torch.as_tensor(hm), torch.as_tensor(w), np.stack(kin)


def test_hard_view_target_is_the_easy_target_mapped_by_the_matrices(synthetic_data):
    batch, persons = unlabeled_batch(synthetic_data)
    assert batch["flipped"].any() and not batch["flipped"].all()
    hm, w, kin = easy_targets(batch, persons)
    out = labeler().hard_view(batch, batch["images"], hm, w, "student")
    dark = HeatmapCodec(CODEC.input_size, CODEC.heatmap_size, CODEC.sigma, decode_method="dark")
    kpts_hm, _ = dark.decode(out["targets"].numpy())
    affine = batch["hard_affines"][:, 2].numpy()
    expected_in = np.stack([transform_points(kin[i], affine[i]) for i in range(len(kin))])
    expected_hm = expected_in / np.array(CODEC.stride)
    easy_hm = kin / np.array(CODEC.stride)

    def away_from_border(p, margin=3.0):  # whole Gaussians only, in both views
        return ((p > margin) & (p < 15 - margin)).all(axis=-1)

    inside = (w.numpy() > 0) & away_from_border(expected_hm) & away_from_border(easy_hm)
    assert inside.sum() > 10
    err = np.linalg.norm(kpts_hm - expected_hm, axis=-1)[inside]
    assert np.median(err) < 0.1 and err.max() < 0.3, err
    # the hard view is, for every network, the easy view composed with its own affine
    m_hard = compose_affine(affine[0], batch["matrix"][0].numpy())
    assert not np.allclose(m_hard, batch["matrix"][0].numpy())


def test_hard_view_image_is_the_easy_image_warped_by_the_affine(synthetic_data):
    batch, _ = unlabeled_batch(synthetic_data, n=2)
    images = torch.zeros(2, 3, 64, 64)
    images[:, :, 30, 20] = 10.0  # a bright dot at x=20, y=30 of the easy view
    hm = torch.zeros(2, 17, 16, 16)
    out = labeler().hard_view(batch, images, hm, torch.zeros(2, 17), "teacher_a")
    for i in range(2):
        x, y = transform_points(np.array([20.0, 30.0]), batch["hard_affines"][i, 0].numpy())
        plane = out["images"][i, 0]
        r, c = divmod(int(plane.argmax()), plane.shape[1])
        assert abs(c - x) <= 1 and abs(r - y) <= 1


def gaussian_maps(centres_xy, n=2, k=17, size=16, peak=1.0):
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    maps = torch.zeros(n, k, size, size)
    for j, (x, y) in enumerate(centres_xy):
        maps[:, j] = peak * torch.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * 1.5**2))
    return maps


def identity_batch(n=2):
    eye = torch.eye(3, dtype=torch.float64)[:2]
    return {
        "images": torch.rand(n, 3, 64, 64),
        "matrix": eye.expand(n, 2, 3).clone(),
        "flipped": torch.zeros(n, dtype=torch.bool),
        "hard_affines": eye.expand(n, 3, 2, 3).clone(),
    }


def test_who_learns_from_whom_in_the_first_epoch():
    hm_a = gaussian_maps([(4, 4)] * 17)
    hm_b = gaussian_maps([(10, 9)] * 17)
    hm_b[:, 16] *= 0.05  # joint 16: mean peak (1 + 0.05)/2 > 0.1 -> kept; joint 15 dropped below
    hm_a[:, 15] *= 0.05
    hm_b[:, 15] *= 0.05
    hard_a, hard_b, hard_c, stats = labeler(num_pairs=1).sspcm_targets(
        hm_a, hm_b, None, None, identity_batch(), step=0
    )
    torch.testing.assert_close(hard_a["targets"], hm_b, atol=1e-5, rtol=0)  # A learns from B_t
    torch.testing.assert_close(hard_b["targets"], hm_a, atol=1e-5, rtol=0)  # B learns from A_t
    torch.testing.assert_close(hard_c["targets"], (hm_a + hm_b) / 2, atol=1e-5, rtol=0)  # C: PCM, pair 0
    for hard in (hard_a, hard_b, hard_c):
        assert hard["target_weights"][:, 15].eq(0).all() and hard["target_weights"][:, 16].eq(1).all()
    assert stats["pair_0_fraction"] == 1.0


def test_previous_epoch_pair_is_used_when_more_consistent():
    hm_a = gaussian_maps([(4, 4)] * 17)
    hm_b = gaussian_maps([(12, 12)] * 17)
    hm_a_prev = gaussian_maps([(12, 11)] * 17)  # (A_{t-1}, B_t) nearly agree
    hm_b_prev = gaussian_maps([(1, 14)] * 17)
    _, _, hard_c, stats = labeler().sspcm_targets(hm_a, hm_b, hm_a_prev, hm_b_prev, identity_batch(), step=0)
    torch.testing.assert_close(hard_c["targets"], (hm_a_prev + hm_b) / 2, atol=1e-5, rtol=0)
    assert stats["pair_1_fraction"] == 1.0


def test_cut_occlude_is_deterministic_per_step_and_differs_by_role():
    hm_a = gaussian_maps([(3 + j % 10, 3 + j // 2) for j in range(17)], n=4)
    hm_b = gaussian_maps([(4 + j % 10, 3 + j // 2) for j in range(17)], n=4)
    batch = identity_batch(4)
    pl = labeler()
    first = pl.sspcm_targets(hm_a, hm_b, None, None, batch, step=5)
    again = pl.sspcm_targets(hm_a, hm_b, None, None, batch, step=5)
    other = pl.sspcm_targets(hm_a, hm_b, None, None, batch, step=6)
    for r in range(3):
        torch.testing.assert_close(first[r]["images"], again[r]["images"])
        assert ((first[r]["images"] - batch["images"]).abs() > 1e-4).any()  # something was pasted
    assert not torch.equal(first[0]["images"], other[0]["images"])
    assert not torch.equal(first[0]["images"], first[2]["images"])


def test_dual_targets_cross_and_cutout():
    hm_a = gaussian_maps([(4, 4)] * 17)
    hm_b = gaussian_maps([(10, 9)] * 17)
    batch = identity_batch()
    hard_a, hard_b, stats = labeler().dual_targets(hm_a, hm_b, batch, step=0)
    torch.testing.assert_close(hard_a["targets"], hm_b, atol=1e-5, rtol=0)
    torch.testing.assert_close(hard_b["targets"], hm_a, atol=1e-5, rtol=0)
    changed = ((hard_a["images"] - batch["images"]).abs() > 1e-4).any(dim=1)
    assert changed.any()
    # Joint Cutout erases around B's keypoints (input px 40, 36), never the far corner
    assert changed[:, 36, 40].all() and not changed[:, 0:5, 0:5].any()
    assert stats["kept_fraction"] == 1.0


def faint_teachers(n=2):
    """Teacher maps whose every peak (0.05) fails PCM's score mask (mean peak <= 0.1)."""
    return gaussian_maps([(10, 9)] * 17, n=n, peak=0.05), gaussian_maps([(10, 9)] * 17, n=n, peak=0.05)


def labeler_with(**kw) -> PseudoLabeler:
    return labeler(labeler_kw=kw)


def test_dual_weights_every_joint_like_the_reference():
    """Dual Network has no score mask: weight 1 on every joint, however faint the teachers."""
    hm_a, hm_b = faint_teachers()
    hard_a, hard_b, stats = labeler_with().dual_targets(hm_a, hm_b, identity_batch(), step=0)
    assert hard_a["target_weights"].eq(1).all() and hard_b["target_weights"].eq(1).all()
    assert stats["kept_fraction"] == 1.0 and stats["score_passed_fraction"] == 0.0
    masked_a, _, masked = labeler_with(dual_score_mask=True).dual_targets(
        hm_a, hm_b, identity_batch(), step=0
    )
    assert masked_a["target_weights"].eq(0).all() and masked["kept_fraction"] == 0.0


def test_occlusion_patches_centre_on_any_joint_by_default():
    """SSCO and Joint Cutout draw from every joint (reference), not only score-mask survivors."""
    hm_a, hm_b = faint_teachers(n=4)
    batch = identity_batch(4)
    for occlusion, expect_change in (("all", True), ("kept", False)):
        pl = labeler_with(occlusion_joints=occlusion)
        hard_a, _, _ = pl.dual_targets(hm_a, hm_b, batch, step=0)
        cutout = ((hard_a["images"] - batch["images"]).abs() > 1e-4).any()
        hard_a, _, hard_c, _ = pl.sspcm_targets(hm_a, hm_b, None, None, batch, step=0)
        pasted = [((h["images"] - batch["images"]).abs() > 1e-4).any() for h in (hard_a, hard_c)]
        assert bool(cutout) is expect_change and all(bool(p) is expect_change for p in pasted)
        assert hard_a["target_weights"].eq(0).all()  # the loss mask is SSPCM's either way
