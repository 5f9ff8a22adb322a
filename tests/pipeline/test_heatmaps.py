"""pipeline.geometry.heatmaps: Gaussian encoding, argmax/quarter and DARK decoding, back to image space."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pipeline.data.skeletons import COCO17
from pipeline.geometry.heatmaps import (
    HeatmapCodec,
    get_max_preds,
    heatmap_to_image,
    refine_dark,
    refine_quarter_offset,
)
from pipeline.geometry.views import get_affine_matrix

torch.set_num_threads(1)

IN_SIZE = (192, 256)
HM_SIZE = (48, 64)


def _random_subpixel_kpts_hm(rng: np.random.Generator, n: int, k: int, margin: float) -> np.ndarray:
    low = [margin, margin]
    high = [HM_SIZE[0] - 1 - margin, HM_SIZE[1] - 1 - margin]
    return rng.uniform(low, high, (n, k, 2))


def test_encode_peak_and_values_by_hand() -> None:
    codec = HeatmapCodec(IN_SIZE, HM_SIZE, sigma=2.0)
    kpts_in = np.array([[40.0, 100.0], [41.0, 100.0]])  # heatmap (10, 25) and (10.25, 25)
    hm, weight = codec.encode(kpts_in, np.array([True, True]))
    assert hm.shape == (2, 64, 48) and hm.dtype == np.float32
    np.testing.assert_array_equal(weight, [1.0, 1.0])
    assert hm[0, 25, 10] == pytest.approx(1.0)
    assert hm[0, 25, 11] == pytest.approx(math.exp(-1 / 8))
    assert hm[0, 27, 12] == pytest.approx(math.exp(-8 / 8))
    assert hm[0].max() == pytest.approx(1.0)
    # Sub-pixel centre: no grid point at the peak, value at (10, 25) is exp(-0.25^2 / 8).
    assert hm[1, 25, 10] == pytest.approx(math.exp(-(0.25**2) / 8))
    assert hm[1, 25, 11] == pytest.approx(math.exp(-(0.75**2) / 8))


def test_encode_weights_invisible_outside_and_nan() -> None:
    codec = HeatmapCodec(IN_SIZE, HM_SIZE, sigma=2.0)
    kpts_in = np.array(
        [
            [40.0, 100.0],  # visible, inside
            [40.0, 100.0],  # invisible
            [-7.0 * 4, 100.0],  # x_hm = -7: 3-sigma disc ends at -1, fully outside
            [-5.0 * 4, 100.0],  # x_hm = -5: tail reaches column 0
            [np.nan, np.nan],  # unlabeled joint marked visible by mistake
            [40.0, (63 + 6.5) * 4],  # y_hm = 69.5: fully below
        ]
    )
    hm, weight = codec.encode(kpts_in, np.array([True, False, True, True, True, True]))
    np.testing.assert_array_equal(weight, [1, 0, 0, 1, 0, 0])
    assert np.isfinite(hm).all()
    assert hm[[1, 2, 4, 5]].max() == 0.0
    assert hm[3, 25, 0] == pytest.approx(math.exp(-25 / 8))


def test_encode_batch_matches_single_and_torch() -> None:
    codec = HeatmapCodec(IN_SIZE, HM_SIZE, sigma=2.0)
    rng = np.random.default_rng(0)
    kpts_in = _random_subpixel_kpts_hm(rng, 3, 17, 2.0) * 4.0
    visible = rng.random((3, 17)) < 0.8
    hm, weight = codec.encode_batch(kpts_in, visible)
    assert hm.shape == (3, 17, 64, 48) and weight.shape == (3, 17)
    single_hm, single_w = codec.encode(kpts_in[1], visible[1])
    np.testing.assert_array_equal(hm[1], single_hm)
    np.testing.assert_array_equal(weight[1], single_w)
    hm_t, weight_t = codec.encode_batch(torch.from_numpy(kpts_in), torch.from_numpy(visible))
    assert isinstance(hm_t, torch.Tensor) and isinstance(weight_t, torch.Tensor)
    np.testing.assert_allclose(hm_t.numpy(), hm, atol=1e-6)
    with pytest.raises(ValueError, match="kpts_in"):
        codec.encode_batch(kpts_in, visible[:, :5])


def test_get_max_preds_by_hand() -> None:
    hm = np.zeros((1, 2, 5, 4), np.float32)
    hm[0, 0, 3, 1] = 0.7  # x=1, y=3
    hm[0, 1, 0, 2] = 0.2
    hm[0, 1, 4, 3] = 0.9  # x=3, y=4
    coords, maxvals = get_max_preds(hm)
    np.testing.assert_array_equal(coords, [[[1.0, 3.0], [3.0, 4.0]]])
    np.testing.assert_allclose(maxvals, [[0.7, 0.9]])
    coords_t, _ = get_max_preds(torch.from_numpy(hm))
    assert isinstance(coords_t, torch.Tensor)
    np.testing.assert_array_equal(coords_t.numpy(), coords)


def test_quarter_offset_by_hand() -> None:
    codec = HeatmapCodec(IN_SIZE, HM_SIZE, sigma=2.0, decode_method="argmax")
    # Heatmap (10.3, 25.0): argmax (10, 25), right neighbour higher, vertical tie -> (10.25, 25.0).
    # Heatmap (20.0, 40.6): argmax (20, 41), upper neighbour higher -> (20.0, 40.75).
    hm, _ = codec.encode_batch(np.array([[[41.2, 100.0], [80.0, 162.4]]]), np.ones((1, 2), bool))
    kpts, scores = codec.decode(hm)
    np.testing.assert_allclose(kpts, [[[10.25, 25.0], [20.0, 40.75]]], atol=1e-6)
    assert scores[0, 0] == pytest.approx(math.exp(-(0.3**2) / 8), rel=1e-5)
    # At the border only the inner axis is refined (no neighbour beyond column 0).
    edge = np.zeros((1, 1, 5, 5), np.float32)
    edge[0, 0, 2, 0], edge[0, 0, 2, 1], edge[0, 0, 3, 0] = 1.0, 0.5, 0.4
    refined = refine_quarter_offset(edge, np.array([[[0.0, 2.0]]]))
    np.testing.assert_allclose(refined, [[[0.0, 2.25]]])


def test_argmax_quarter_round_trip_error_is_at_most_a_quarter_pixel_per_axis() -> None:
    rng = np.random.default_rng(1)
    codec = HeatmapCodec(IN_SIZE, HM_SIZE, sigma=2.0, decode_method="argmax")
    true_hm = _random_subpixel_kpts_hm(rng, 20, 17, 4.0)
    hm, _ = codec.encode_batch(true_hm * 4.0, np.ones((20, 17), bool))
    kpts, _ = codec.decode(hm)
    err = np.abs(kpts - true_hm)
    assert err.max() < 0.26
    assert err.mean() < 0.15  # beats plain argmax (mean 0.25 per axis on uniform offsets)


@pytest.mark.parametrize("sigma", [2.0, 3.0])
def test_dark_round_trip_is_sub_tenth_pixel(sigma: float) -> None:
    rng = np.random.default_rng(2)
    codec = HeatmapCodec(IN_SIZE, HM_SIZE, sigma=sigma, decode_method="dark")
    true_hm = _random_subpixel_kpts_hm(rng, 20, 17, 3 * sigma + 1)
    hm, _ = codec.encode_batch(true_hm * 4.0, np.ones((20, 17), bool))
    kpts, scores = codec.decode(hm)
    assert kpts.shape == (20, 17, 2) and kpts.dtype == np.float32
    err = np.linalg.norm(kpts - true_hm, axis=-1)
    assert err.max() < 0.1, err.max()
    assert scores.min() > math.exp(-0.5 / (2 * sigma**2)) - 1e-6  # peak of a grid point within 0.5 px


def test_dark_torch_matches_numpy_and_keeps_flat_maps() -> None:
    rng = np.random.default_rng(3)
    codec = HeatmapCodec(IN_SIZE, HM_SIZE, decode_method="dark")
    hm, _ = codec.encode_batch(_random_subpixel_kpts_hm(rng, 2, 3, 8.0) * 4.0, np.ones((2, 3), bool))
    hm[1, 2] = 0.0  # an empty map: argmax (0, 0), no refinement, no NaN
    kpts, _ = codec.decode(hm)
    kpts_t, scores_t = codec.decode(torch.from_numpy(hm))
    assert isinstance(kpts_t, torch.Tensor) and isinstance(scores_t, torch.Tensor)
    np.testing.assert_allclose(kpts_t.numpy(), kpts, atol=1e-5)
    np.testing.assert_array_equal(kpts[1, 2], [0.0, 0.0])
    coords, _ = get_max_preds(hm)
    np.testing.assert_allclose(refine_dark(hm, coords, 2.0), kpts)


def test_heatmap_to_image_by_hand() -> None:
    # Region 48x64 image px around (100, 50): scale 4 into 192x256, 1 image px = 1 heatmap px.
    m = get_affine_matrix((100.0, 50.0), (48.0, 64.0), 0.0, IN_SIZE)[None]
    kpts_hm = np.array([[[23.875, 31.875], [24.875, 29.875]]])  # input (95.5, 127.5), (99.5, 119.5)
    out = heatmap_to_image(kpts_hm, m, IN_SIZE, HM_SIZE)
    np.testing.assert_allclose(out, [[[100.0, 50.0], [101.0, 48.0]]], atol=1e-5)
    out_t = heatmap_to_image(torch.from_numpy(kpts_hm).float(), torch.from_numpy(m), IN_SIZE, HM_SIZE)
    np.testing.assert_allclose(out_t.numpy(), out, atol=1e-4)


def test_heatmap_to_image_unflips_channels() -> None:
    mf = get_affine_matrix((100.0, 50.0), (48.0, 64.0), 0.0, IN_SIZE, flip=True)[None]
    kpts_img = np.zeros((1, 17, 2))
    kpts_img[0, 1] = (90.0, 40.0)  # left_eye
    kpts_img[0, 2] = (110.0, 41.0)  # right_eye
    # In the flipped view, channel 1 holds the right eye (conventions.md), at x_in = 191 - x_in.
    kpts_hm = np.zeros((1, 17, 2))
    kpts_hm[0, 1] = ((191 - (95.5 + 4 * 10)) / 4, (127.5 - 4 * 9) / 4)
    kpts_hm[0, 2] = ((191 - (95.5 - 4 * 10)) / 4, (127.5 - 4 * 10) / 4)
    out = heatmap_to_image(kpts_hm, mf, IN_SIZE, HM_SIZE, flipped=[True], flip_indices=COCO17.flip_indices)
    np.testing.assert_allclose(out[0, 1:3], kpts_img[0, 1:3], atol=1e-4)
    raw = heatmap_to_image(kpts_hm, mf, IN_SIZE, HM_SIZE)
    np.testing.assert_allclose(raw[0, 1], kpts_img[0, 2], atol=1e-4)


def test_codec_rejects_bad_config_and_input() -> None:
    with pytest.raises(ValueError, match="decode_method"):
        HeatmapCodec(decode_method="soft")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sigma"):
        HeatmapCodec(sigma=0.0)
    with pytest.raises(ValueError, match=r"\(N, K, h, w\)"):
        HeatmapCodec().decode(np.zeros((17, 64, 48), np.float32))
