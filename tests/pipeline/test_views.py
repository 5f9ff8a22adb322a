"""pipeline.geometry.views: affine conventions, crops, augmentation sampling and heatmap warping."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.data.skeletons import COCO17
from pipeline.geometry.heatmaps import HeatmapCodec
from pipeline.geometry.views import (
    EASY_VIEW,
    HARD_VIEW,
    AugmentRanges,
    ViewParams,
    box_to_center_size,
    compose_affine,
    flip_keypoints_channels,
    get_affine_matrix,
    invert_affine,
    make_view,
    sample_hard_affine,
    sample_view_params,
    swap_flip_channels,
    transform_points,
    warp_batch,
    warp_heatmaps,
)

torch.set_num_threads(1)

IN_SIZE = (192, 256)
HM_SIZE = (48, 64)
FLIP = COCO17.flip_indices


def test_box_to_center_size_enlarges_to_aspect_then_pads() -> None:
    # Tall box: width grows to 0.75 * 80 = 60, then x1.25.
    center, size = box_to_center_size([10, 20, 30, 80], aspect_ratio=192 / 256)
    np.testing.assert_allclose(center, [25.0, 60.0])
    np.testing.assert_allclose(size, [75.0, 100.0])
    # Wide box: height grows to 100 / 0.75.
    center, size = box_to_center_size([0, 0, 100, 50], aspect_ratio=0.75, padding=1.0)
    np.testing.assert_allclose(center, [50.0, 25.0])
    np.testing.assert_allclose(size, [100.0, 400.0 / 3.0])
    assert center.dtype == np.float64 and size.dtype == np.float64
    with pytest.raises(ValueError, match="non-positive"):
        box_to_center_size([0, 0, 0, 10], 0.75)


def test_affine_known_points_by_hand() -> None:
    # Region 96x128 around (100, 50) onto 192x256: scale 2, centre -> (95.5, 127.5).
    m = get_affine_matrix((100, 50), (96, 128), 0.0, IN_SIZE)
    np.testing.assert_allclose(transform_points(np.array([100.0, 50.0]), m), [95.5, 127.5])
    np.testing.assert_allclose(transform_points(np.array([110.0, 60.0]), m), [115.5, 147.5])
    # Region edges land on the outer pixel edges of the crop.
    edges = np.array([[100 - 48, 50 - 64], [100 + 48, 50 + 64]], dtype=np.float64)
    np.testing.assert_allclose(transform_points(edges, m), [[-0.5, -0.5], [191.5, 255.5]])
    # 90 degrees counter-clockwise: the offset (+10, +10) becomes (+10, -10) before scaling.
    m90 = get_affine_matrix((100, 50), (96, 128), 90.0, IN_SIZE)
    np.testing.assert_allclose(transform_points(np.array([110.0, 60.0]), m90), [115.5, 107.5], atol=1e-9)
    # A point right of the centre appears above it.
    np.testing.assert_allclose(transform_points(np.array([110.0, 50.0]), m90), [95.5, 107.5], atol=1e-9)
    # Flip mirrors the crop: x_in -> 191 - x_in.
    mf = get_affine_matrix((100, 50), (96, 128), 0.0, IN_SIZE, flip=True)
    np.testing.assert_allclose(transform_points(np.array([110.0, 60.0]), mf), [75.5, 147.5])
    assert m.shape == (2, 3) and m.dtype == np.float64


def test_view_params_scale_zooms_out() -> None:
    p = ViewParams(center=(100.0, 50.0), size=(48.0, 64.0), scale=2.0)
    m = p.matrix(IN_SIZE)
    np.testing.assert_allclose(m, get_affine_matrix((100, 50), (96, 128), 0.0, IN_SIZE))


def test_invert_and_compose() -> None:
    m = get_affine_matrix((40.0, 70.0), (80.0, 90.0), 33.0, IN_SIZE, flip=True)
    identity = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    np.testing.assert_allclose(compose_affine(invert_affine(m), m), identity, atol=1e-12)
    np.testing.assert_allclose(compose_affine(m, invert_affine(m)), identity, atol=1e-12)
    m2 = get_affine_matrix((95.5, 127.5), (150.0, 200.0), -20.0, IN_SIZE)
    pts = np.random.default_rng(0).uniform(0, 200, (5, 2))
    np.testing.assert_allclose(
        transform_points(pts, compose_affine(m2, m)), transform_points(transform_points(pts, m), m2)
    )
    mt = torch.from_numpy(m)
    torch.testing.assert_close(
        compose_affine(invert_affine(mt), mt), torch.from_numpy(identity), atol=1e-12, rtol=0
    )


def test_transform_points_batched_and_torch() -> None:
    ms = np.stack([get_affine_matrix((50, 50), (60, 80), r, IN_SIZE) for r in (0.0, 45.0, -70.0)])
    pts = np.random.default_rng(1).uniform(0, 100, (3, 4, 2)).astype(np.float32)
    out = transform_points(pts, ms)
    assert out.shape == (3, 4, 2) and out.dtype == np.float32
    for i in range(3):
        np.testing.assert_allclose(out[i], transform_points(pts[i], ms[i]), rtol=1e-6)
    out_t = transform_points(torch.from_numpy(pts), ms)
    assert isinstance(out_t, torch.Tensor)
    np.testing.assert_allclose(out_t.numpy(), out, rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="batch dims"):
        transform_points(pts[:2], ms)


def _dot_centroid(crop: np.ndarray) -> np.ndarray:
    weights = crop[..., 0].astype(np.float64)
    ys, xs = np.nonzero(weights)
    v = weights[ys, xs]
    return np.array([(xs * v).sum() / v.sum(), (ys * v).sum() / v.sum()])


@pytest.mark.parametrize(("rotation", "flip"), [(0.0, False), (30.0, False), (-50.0, True)])
def test_make_view_puts_a_dot_where_transform_points_says(rotation: float, flip: bool) -> None:
    image = np.zeros((200, 300, 3), np.uint8)
    dot = np.array([120.0, 70.0])
    image[70, 120] = 255
    params = ViewParams(center=(100.25, 80.25), size=(96.0, 128.0), rotation_deg=rotation, flip=flip)
    view = make_view(image, params, IN_SIZE)
    assert view.image.shape == (256, 192, 3) and view.image.dtype == np.uint8
    assert view.flipped is flip
    expected = transform_points(dot, view.matrix)
    np.testing.assert_allclose(_dot_centroid(view.image), expected, atol=0.1)
    if rotation == 0.0:
        # Scale 2 with the dot landing on a pixel centre: the brightest pixel is exactly there.
        assert np.allclose(expected, np.round(expected))
        assert view.image[int(expected[1]), int(expected[0]), 0] == 255


def test_sample_view_params_follows_the_paper_ranges() -> None:
    rng = np.random.default_rng(0)
    easy = [sample_view_params(rng, (10.0, 20.0), (30.0, 40.0), EASY_VIEW) for _ in range(4000)]
    rot = np.array([p.rotation_deg for p in easy])
    scale = np.array([p.scale for p in easy])
    flip = np.array([p.flip for p in easy])
    assert np.abs(rot).max() <= 60.0 and np.abs(rot).max() > 55.0
    assert abs((rot != 0).mean() - 0.6) < 0.03
    assert abs(rot[rot != 0].std() - 30.0) < 3.0
    assert scale.min() == 0.75 and scale.max() == 1.25 and abs(scale.mean() - 1.0) < 0.02
    assert abs(flip.mean() - 0.5) < 0.03
    assert easy[0].center == (10.0, 20.0) and easy[0].size == (30.0, 40.0)
    hard = [sample_view_params(rng, (0.0, 0.0), (1.0, 1.0), HARD_VIEW) for _ in range(4000)]
    assert not any(p.flip for p in hard)
    assert abs(np.mean([p.rotation_deg != 0 for p in hard]) - 0.8) < 0.03
    # Same seed, same views.
    a = sample_view_params(np.random.default_rng(5), (0, 0), (1, 1))
    assert a == sample_view_params(np.random.default_rng(5), (0, 0), (1, 1))


def test_sample_hard_affine_is_about_the_crop_centre() -> None:
    m = sample_hard_affine(np.random.default_rng(3), IN_SIZE)
    np.testing.assert_allclose(transform_points(np.array([95.5, 127.5]), m), [95.5, 127.5], atol=1e-9)
    with pytest.raises(ValueError, match="flip_prob"):
        sample_hard_affine(np.random.default_rng(3), IN_SIZE, AugmentRanges(flip_prob=0.5))


def test_flip_channels_swap_left_and_right() -> None:
    kpts = np.arange(17 * 3, dtype=np.float32).reshape(17, 3)
    out = flip_keypoints_channels(kpts, FLIP)
    np.testing.assert_array_equal(out[0], kpts[0])  # nose
    np.testing.assert_array_equal(out[1], kpts[2])  # left_eye <- right_eye
    np.testing.assert_array_equal(out[16], kpts[15])  # right_ankle <- left_ankle
    hm = torch.arange(2 * 17, dtype=torch.float32).reshape(2, 17, 1, 1).expand(2, 17, 3, 2)
    swapped = swap_flip_channels(hm, FLIP)
    assert swapped[1, 5, 0, 0].item() == hm[1, 6, 0, 0].item()
    torch.testing.assert_close(swap_flip_channels(swapped, FLIP), hm)


def test_warp_batch_identity_and_shift() -> None:
    maps = np.random.default_rng(0).random((2, 3, 10, 12)).astype(np.float32)
    eye = np.tile(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), (2, 1, 1))
    np.testing.assert_allclose(warp_batch(maps, eye, (12, 10)), maps, atol=1e-5)
    shift = eye.copy()
    shift[:, 0, 2] = 2.0  # src x -> dst x + 2
    out = warp_batch(torch.from_numpy(maps), shift, (12, 10))
    torch.testing.assert_close(out[..., 2:], torch.from_numpy(maps[..., :-2]), atol=1e-5, rtol=0)
    assert float(out[..., :2].abs().max()) == 0.0


def _random_view(rng: np.random.Generator, flip: bool) -> ViewParams:
    return ViewParams(
        center=(150.0 + rng.uniform(-10, 10), 200.0 + rng.uniform(-10, 10)),
        size=(150.0, 200.0),
        rotation_deg=float(rng.uniform(-60, 60)),
        scale=float(rng.uniform(0.8, 1.2)),
        flip=flip,
    )


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_warp_heatmaps_moves_keypoints_between_views(kind: str) -> None:
    rng = np.random.default_rng(7)
    codec = HeatmapCodec(IN_SIZE, HM_SIZE, sigma=2.0, decode_method="dark")
    flips = [(False, True), (True, False), (True, True), (False, False)]
    n = len(flips)
    kpts_img = rng.uniform([110, 150], [190, 250], (n, 17, 2))
    src = [_random_view(rng, f) for f, _ in flips]
    dst = [_random_view(rng, f) for _, f in flips]
    m_src = np.stack([p.matrix(IN_SIZE) for p in src])
    m_dst = np.stack([p.matrix(IN_SIZE) for p in dst])
    src_flipped = np.array([f for f, _ in flips])
    dst_flipped = np.array([f for _, f in flips])

    def in_view(m: np.ndarray, flipped: np.ndarray) -> np.ndarray:
        kin = transform_points(kpts_img, m)  # (n, 17, 2), joints in skeleton order
        return np.where(flipped[:, None, None], flip_keypoints_channels(kin, FLIP), kin)

    heatmaps, weight = codec.encode_batch(in_view(m_src, src_flipped), np.ones((n, 17), bool))
    assert weight.all()
    if kind == "torch":
        heatmaps = torch.from_numpy(heatmaps)
    warped = warp_heatmaps(heatmaps, m_src, m_dst, src_flipped, dst_flipped, IN_SIZE, HM_SIZE, FLIP)
    assert type(warped) is type(heatmaps) and tuple(warped.shape) == (n, 17, 64, 48)
    decoded, _ = codec.decode(warped)
    decoded = np.asarray(decoded)
    expected_hm = in_view(m_dst, dst_flipped) / 4.0
    err = np.linalg.norm(decoded - expected_hm, axis=-1)
    # Compare joints whose blobs are whole in both views (3 sigma + 1 px from the border).
    whole = _inside(in_view(m_src, src_flipped) / 4.0, 7.0) & _inside(expected_hm, 7.0)
    assert whole.mean() > 0.8
    assert err[whole].max() < 0.3, err[whole].max()


def _inside(kpts_hm: np.ndarray, margin: float) -> np.ndarray:
    upper = np.array([HM_SIZE[0] - 1 - margin, HM_SIZE[1] - 1 - margin])
    return np.all((kpts_hm >= margin) & (kpts_hm <= upper), axis=-1)


def test_warp_heatmaps_swaps_flip_channels() -> None:
    """Same region, only the flip differs: left_eye's blob moves to right_eye's channel, mirrored."""
    codec = HeatmapCodec(IN_SIZE, HM_SIZE, decode_method="dark")
    kpts_in = np.zeros((1, 17, 2))
    kpts_in[0, 1] = (40.0, 100.0)  # left_eye, input px -> heatmap (10, 25)
    visible = np.zeros((1, 17), bool)
    visible[0, 1] = True
    hm, _ = codec.encode_batch(kpts_in, visible)
    plain = get_affine_matrix((0, 0), (192, 256), 0.0, IN_SIZE)[None]
    flipped = get_affine_matrix((0, 0), (192, 256), 0.0, IN_SIZE, flip=True)[None]
    out = warp_heatmaps(hm, plain, flipped, np.array([False]), np.array([True]), IN_SIZE, HM_SIZE, FLIP)
    peaks = out.reshape(17, -1).max(axis=1)
    assert peaks[2] > 0.9 and np.delete(peaks, 2).max() == 0.0
    # x_in -> 191 - x_in = 151, i.e. x_hm = 37.75; y unchanged.
    decoded, _ = codec.decode(out)
    np.testing.assert_allclose(decoded[0, 2], [37.75, 25.0], atol=0.05)
    back = warp_heatmaps(out, flipped, plain, np.array([True]), np.array([False]), IN_SIZE, HM_SIZE, FLIP)
    # Mirroring in heatmap space is x_hm -> 47.75 - x_hm (not an integer mirror): bilinear, not exact.
    assert back[0, 1].max() > 0.9 and np.delete(back[0], 1, axis=0).max() == 0.0
    np.testing.assert_allclose(codec.decode(back)[0][0, 1], [10.0, 25.0], atol=0.05)
