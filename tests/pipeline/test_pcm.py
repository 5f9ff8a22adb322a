import math

import pytest
import torch

from pipeline.method.pcm import PCMConfig, argmax_xy, correct_pseudo_labels, pcm_statistics

torch.set_num_threads(1)

H, W = 64, 48
DIAG = math.sqrt(H * H + W * W)  # 80


def gaussian(x: float, y: float, peak: float = 1.0, sigma: float = 2.0, dtype=torch.float32) -> torch.Tensor:
    """(H, W) Gaussian with its maximum `peak` at column x, row y."""
    ys = torch.arange(H, dtype=torch.float64)[:, None]
    xs = torch.arange(W, dtype=torch.float64)[None, :]
    return (peak * torch.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2))).to(dtype)


def stack(*maps: torch.Tensor) -> torch.Tensor:
    """K (H, W) maps -> (1, K, H, W)."""
    return torch.stack(maps)[None]


def test_argmax_xy_is_column_then_row():
    hm = stack(gaussian(x=7, y=30))
    assert argmax_xy(hm).tolist() == [[[7.0, 30.0]]]


def test_previous_a_agrees_with_current_b_so_pair_1_is_chosen():
    a_t = stack(gaussian(10, 10))
    b_t = stack(gaussian(13, 14))  # 5 px from A_t
    a_prev = stack(gaussian(13, 14, peak=0.9))  # agrees with B_t
    b_prev = stack(gaussian(30, 50))  # far from everything
    out = correct_pseudo_labels(a_t, b_t, a_prev, b_prev)
    assert out.pair_index.tolist() == [[1]]
    torch.testing.assert_close(out.heatmaps, (a_prev + b_t) / 2)
    torch.testing.assert_close(out.pi, torch.tensor([[0.0]]))
    torch.testing.assert_close(out.pi_current, torch.tensor([[5.0 / DIAG]]))
    assert out.weights.tolist() == [[1.0]]


def test_pi_values_of_every_pair_are_hand_computed():
    a_t, b_t = stack(gaussian(0, 0)), stack(gaussian(3, 4))  # 5 px
    a_prev, b_prev = stack(gaussian(9, 12)), stack(gaussian(3, 12))  # 10, 9 and 6 px
    out = correct_pseudo_labels(a_t, b_t, a_prev, b_prev)
    # pairs: 0 = (A_t, B_t) 5; 1 = (A_prev, B_t) 10; 2 = (A_t, B_prev) sqrt(9+144); 3 = (A_prev, B_prev) 6
    assert out.pair_index.item() == 0
    torch.testing.assert_close(out.pi.item(), 5 / DIAG)
    b_t_far = stack(gaussian(40, 60))  # now the previous pair (6 px) is the most consistent
    out = correct_pseudo_labels(a_t, b_t_far, a_prev, b_prev)
    assert out.pair_index.item() == 3
    torch.testing.assert_close(out.pi.item(), 6 / DIAG)
    torch.testing.assert_close(out.pi_current.item(), math.hypot(40, 60) / DIAG)
    torch.testing.assert_close(out.heatmaps, (a_prev + b_prev) / 2)


@pytest.mark.parametrize(("peak", "kept"), [(0.08, 0.0), (0.2, 1.0)])
def test_score_mask_uses_mean_peak_of_current_teachers(peak, kept):
    a_t = stack(gaussian(10, 10, peak=peak))
    b_t = stack(gaussian(10, 10, peak=peak))
    strong_prev = stack(gaussian(10, 10, peak=1.0))  # previous teachers do not rescue the joint
    out = correct_pseudo_labels(a_t, b_t, strong_prev, strong_prev, PCMConfig(score_thr=0.1))
    assert out.weights.tolist() == [[kept]]


def test_score_mask_averages_the_two_peaks():
    a_t = stack(gaussian(10, 10, peak=0.15), gaussian(10, 10, peak=0.15))
    b_t = stack(gaussian(10, 10, peak=0.04), gaussian(10, 10, peak=0.06))  # means 0.095, 0.105
    out = correct_pseudo_labels(a_t, b_t)
    assert out.weights.tolist() == [[0.0, 1.0]]


def test_pi_threshold_drops_far_apart_joint():
    a_t = stack(gaussian(10, 10), gaussian(10, 10))
    b_t = stack(gaussian(12, 10), gaussian(10, 50))  # PI 2/80 = 0.025 and 40/80 = 0.5
    out = correct_pseudo_labels(a_t, b_t, cfg=PCMConfig(pi_thr=0.1))
    assert out.weights.tolist() == [[1.0, 0.0]]
    assert correct_pseudo_labels(a_t, b_t).weights.tolist() == [[1.0, 1.0]]  # off by default
    # the threshold applies to the CHOSEN pair: an agreeing previous pair rescues joint 1
    prev = stack(gaussian(10, 10), gaussian(10, 50))
    out = correct_pseudo_labels(a_t, b_t, prev, prev, PCMConfig(pi_thr=0.1))
    assert out.pair_index.tolist() == [[2, 1]]  # joint 0: (A_t, B_prev) agree exactly
    assert out.weights.tolist() == [[1.0, 1.0]]


def test_first_epoch_uses_current_pair_only():
    a_t = stack(gaussian(10, 10), gaussian(5, 40))
    b_t = stack(gaussian(20, 30), gaussian(5, 41))
    out = correct_pseudo_labels(a_t, b_t)
    assert out.pair_index.tolist() == [[0, 0]]
    torch.testing.assert_close(out.heatmaps, (a_t + b_t) / 2)
    torch.testing.assert_close(out.pi, out.pi_current)


def test_ties_prefer_the_current_pair():
    a_t, b_t = stack(gaussian(10, 10)), stack(gaussian(13, 14))  # pair 0: 5 px
    a_prev = stack(gaussian(16, 18, peak=0.5))  # pair 1 (A_prev, B_t): 5 px
    b_prev = stack(gaussian(10, 15, peak=0.5))  # pair 2 (A_t, B_prev): 5 px; pair 3: sqrt(45) px
    out = correct_pseudo_labels(a_t, b_t, a_prev, b_prev)
    assert out.pair_index.item() == 0
    torch.testing.assert_close(out.heatmaps, (a_t + b_t) / 2)
    out = correct_pseudo_labels(a_t, b_t, a_prev, a_prev)  # pair 3 (0 px) is strictly better
    assert out.pair_index.item() == 3
    same = stack(gaussian(20, 20))
    out = correct_pseudo_labels(same, same, same, same)  # four-way tie
    assert out.pair_index.item() == 0


def _loop_reference(a, b, ap, bp):
    """Slow per-(image, joint) PCM written directly from the definition."""
    n, k = a.shape[:2]
    label = torch.empty_like(a)
    choice = torch.empty(n, k, dtype=torch.int64)
    for i in range(n):
        for j in range(k):
            pairs = [(a[i, j], b[i, j]), (ap[i, j], b[i, j]), (a[i, j], bp[i, j]), (ap[i, j], bp[i, j])]
            dists = []
            for first, second in pairs:
                f = divmod(int(first.argmax()), W)
                s = divmod(int(second.argmax()), W)
                dists.append(math.hypot(f[0] - s[0], f[1] - s[1]))
            best = dists.index(min(dists))
            choice[i, j] = best
            label[i, j] = (pairs[best][0] + pairs[best][1]) / 2
    return label, choice


def test_batch_with_mixed_choices_matches_a_per_joint_loop():
    g = torch.Generator().manual_seed(3)
    n, k = 5, 17

    # integer peak positions on a coarse grid so that exact ties occur as well
    def random_maps():
        xs = torch.randint(0, 6, (n, k), generator=g) * 8
        ys = torch.randint(0, 8, (n, k), generator=g) * 8
        return torch.stack(
            [torch.stack([gaussian(int(xs[i, j]), int(ys[i, j])) for j in range(k)]) for i in range(n)]
        )

    a, b, ap, bp = (random_maps() for _ in range(4))
    out = correct_pseudo_labels(a, b, ap, bp)
    label, choice = _loop_reference(a, b, ap, bp)
    assert torch.equal(out.pair_index, choice)
    assert set(choice.unique().tolist()) == {0, 1, 2, 3}  # the batch really mixes choices
    torch.testing.assert_close(out.heatmaps, label)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float64])
def test_other_dtypes(dtype):
    a_t = stack(gaussian(10, 10, dtype=dtype))
    b_t = stack(gaussian(13, 14, dtype=dtype))
    a_prev = stack(gaussian(13, 14, peak=0.5, dtype=dtype))
    out = correct_pseudo_labels(a_t, b_t, a_prev, a_prev)
    assert out.heatmaps.dtype == dtype and out.weights.dtype == dtype and out.pi.dtype == dtype
    assert out.pair_index.tolist() == [[1]]
    torch.testing.assert_close(out.heatmaps, (a_prev + b_t) / 2)
    torch.testing.assert_close(out.pi_current, torch.tensor([[5 / DIAG]], dtype=dtype))


def test_no_graph_is_kept():
    a_t = stack(gaussian(10, 10)).requires_grad_()
    out = correct_pseudo_labels(a_t, stack(gaussian(11, 10)))
    assert not out.heatmaps.requires_grad


def test_input_errors():
    a = stack(gaussian(1, 1))
    with pytest.raises(ValueError, match="both"):
        correct_pseudo_labels(a, a, hm_a_prev=a)
    with pytest.raises(ValueError, match="shape"):
        correct_pseudo_labels(a, torch.zeros(1, 1, H, W + 1))
    with pytest.raises(ValueError, match="shape"):
        correct_pseudo_labels(a, a, a, torch.zeros(2, 1, H, W))
    with pytest.raises(ValueError, match=r"\(N, K, h, w\)"):
        correct_pseudo_labels(a[0], a[0])


def test_statistics():
    a_t = stack(gaussian(10, 10), gaussian(10, 10, peak=0.05), gaussian(0, 0), gaussian(20, 20))
    b_t = stack(gaussian(10, 10), gaussian(10, 10, peak=0.05), gaussian(0, 8), gaussian(20, 20))
    prev = stack(gaussian(10, 10), gaussian(10, 10), gaussian(0, 8), gaussian(20, 20))
    out = correct_pseudo_labels(a_t, b_t, prev, prev)  # joint 2: pair 1 (0 px) beats pair 0 (8 px)
    stats = pcm_statistics(out)
    assert stats["kept_fraction"] == pytest.approx(0.75)
    assert stats["pair_0_fraction"] == pytest.approx(0.75)
    assert stats["pair_1_fraction"] == pytest.approx(0.25)
    assert stats["pair_2_fraction"] == stats["pair_3_fraction"] == 0.0
    assert stats["mean_pi"] == pytest.approx(0.0)
    assert stats["mean_pi_current"] == pytest.approx(8 / DIAG / 4)


def test_gaussian_label_is_one_sharp_peak_at_the_mean_maps_peak():
    # The teachers disagree by 8 px (> 3 sigma): the paper's mean label has two peaks of about
    # height; the "gaussian" label is one peak, as high as the mean's maximum (0.45), at the higher
    # of the two (A_t's, 0.9 > 0.6).
    a_t, b_t = stack(gaussian(10, 20, peak=0.9)), stack(gaussian(10, 28, peak=0.6))
    mean = correct_pseudo_labels(a_t, b_t)
    sharp = correct_pseudo_labels(a_t, b_t, cfg=PCMConfig(label="gaussian", sigma=2.0))
    assert mean.heatmaps.max().item() == pytest.approx(0.45, abs=1e-3)
    # a peak of height 0.45 at (10, 20.25): the grid maximum sits a quarter pixel off it
    peak = mean.heatmaps.max().item()
    assert sharp.heatmaps.max().item() == pytest.approx(peak * math.exp(-(0.25**2) / 8), abs=1e-5)
    assert argmax_xy(sharp.heatmaps).tolist() == [[[10.0, 20.0]]]
    # Quarter offset towards the second teacher's side (row 21 > row 19 in the mean map):
    # the rendered map is symmetric about y = 20.25, so rows 20 and 20.5 +- d match.
    hm = sharp.heatmaps[0, 0]
    assert hm[20, 10].item() == pytest.approx(peak * math.exp(-(0.25**2) / 8), abs=1e-5)
    assert hm[21, 10].item() == pytest.approx(peak * math.exp(-(0.75**2) / 8), abs=1e-5)
    # Same choice, PI and mask as the paper's label; only the shape of the target differs.
    assert torch.equal(sharp.weights, mean.weights)
    assert torch.equal(sharp.pair_index, mean.pair_index)
    assert sharp.heatmaps.dtype == a_t.dtype


def test_gaussian_label_of_an_empty_map_is_zero_and_bad_label_names_are_refused():
    zeros = torch.zeros(1, 2, H, W)
    out = correct_pseudo_labels(zeros, zeros, cfg=PCMConfig(label="gaussian"))
    assert out.heatmaps.abs().max().item() == 0.0
    with pytest.raises(ValueError, match="label"):
        PCMConfig(label="blur")
