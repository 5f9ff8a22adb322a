import pytest
import torch

from pipeline.method.ssco import SSCOConfig, cut_occlude, joint_cutout

torch.set_num_threads(1)

H, W = 256, 192
OFF = -1.0e4  # how pipeline.method.pseudo_labels marks masked joints
COLOUR = torch.tensor([5.0, -5.0, 7.0])
# one pair, one real joint, fixed half-size 5, no jitter: fully predictable
EXACT = SSCOConfig(num_pairs=1, half_size_range=(5, 6), jitter_sigma=0.0, num_joints_real=1)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_images(n: int, seed: int = 1, h: int = H, w: int = W) -> torch.Tensor:
    return torch.rand(n, 3, h, w, generator=gen(seed))


def kpts(*xy: tuple[float, float]) -> torch.Tensor:
    """One (x, y) keypoint per image -> (N, 1, 2)."""
    return torch.tensor(xy, dtype=torch.float32)[:, None, :]


def block_has_colour(image: torch.Tensor, row: int, col: int, half: int = 5) -> bool:
    """True if the (2*half+1)^2 block centred at (row, col) of a (3, H, W) image is COLOUR."""
    block = image[:, row - half : row + half + 1, col - half : col + half + 1]
    return bool((block == COLOUR[:, None, None]).all())


def transposed_reference_cut_occlude(images, kpts_in, generator, cfg):
    """Emulates the reference bug: rows indexed by x and columns by y (source and destination)."""
    return cut_occlude(images, kpts_in.flip(-1), generator, cfg)


def partner_with_colour_patch() -> tuple[torch.Tensor, torch.Tensor]:
    """Image 0 has its joint at (x=100, y=20); image 1 has a colour patch at its joint (30, 50)."""
    images = random_images(2)
    images[1, :, 50 - 5 : 50 + 6, 30 - 5 : 30 + 6] = COLOUR[:, None, None]
    return images, kpts((100, 20), (30, 50))


def test_patch_lands_at_row_y_and_column_x_not_transposed():
    images, k = partner_with_colour_patch()
    out, info = cut_occlude(images, k, gen(), EXACT)
    assert info.partner.tolist() == [1, 0]
    assert block_has_colour(out[0], row=20, col=100)
    assert not block_has_colour(out[0], row=100, col=20)
    # the same check fails on the reference's transposed indexing
    bad, _ = transposed_reference_cut_occlude(images, k, gen(), EXACT)
    assert not block_has_colour(bad[0], row=20, col=100)


def test_zero_jitter_copies_the_exact_block_and_nothing_else():
    images = random_images(2)
    k = kpts((100, 20), (30, 50))
    out, info = cut_occlude(images, k, gen(), EXACT)
    expected = images.clone()
    expected[0, :, 15:26, 95:106] = images[1, :, 45:56, 25:36]
    expected[1, :, 45:56, 25:36] = images[0, :, 15:26, 95:106]
    assert torch.equal(out, expected)
    assert info.src_boxes[0, 0].tolist() == [25, 45, 36, 56]
    assert info.dst_boxes[0, 0].tolist() == [95, 15, 106, 26]
    assert info.pasted.all()
    assert torch.equal(images, random_images(2))  # the input is not modified


def test_source_patch_near_the_border_is_clipped_not_zero_filled():
    images = random_images(2)
    k = kpts((100, 20), (2, 3))  # partner joint 2 px from the left, 3 px from the top
    out, info = cut_occlude(images, k, gen(), EXACT)
    assert info.src_boxes[0, 0].tolist() == [0, 0, 8, 9]
    assert info.dst_boxes[0, 0].tolist() == [98, 17, 106, 26]
    assert torch.equal(out[0, :, 17:26, 98:106], images[1, :, 0:9, 0:8])
    # the part of the patch that does not exist in the partner leaves this image as it was
    assert torch.equal(out[0, :, 15:17, :], images[0, :, 15:17, :])
    assert torch.equal(out[0, :, :, 95:98], images[0, :, :, 95:98])


def test_destination_near_the_border_is_clipped_consistently():
    images = random_images(2)
    k = kpts((190, 254), (50, 50))  # 1 px from the right and bottom edges
    out, info = cut_occlude(images, k, gen(), EXACT)
    assert info.dst_boxes[0, 0].tolist() == [185, 249, 192, 256]
    assert info.src_boxes[0, 0].tolist() == [45, 45, 52, 52]
    assert torch.equal(out[0, :, 249:, 185:], images[1, :, 45:52, 45:52])
    assert torch.equal(out[0, :, :249], images[0, :, :249])


def test_images_without_valid_joints_are_untouched():
    n, k = 6, 17
    images = random_images(n)
    pts = torch.rand(n, k, 2, generator=gen(2)) * torch.tensor([W - 1.0, H - 1.0])
    pts[2] = OFF
    pts[4, :, 0] = float("nan")
    cfg = SSCOConfig(num_pairs=3)
    out, info = cut_occlude(images, pts, gen(5), cfg)
    for bad in (2, 4):
        assert torch.equal(out[bad], images[bad])
        assert not info.pasted[bad].any()
        assert not info.pasted[info.partner == bad].any()  # nor are they used as a source
    good = [i for i in range(n) if i not in (2, 4) and int(info.partner[i]) not in (2, 4)]
    assert good and info.pasted[good].all()
    assert all(not torch.equal(out[i], images[i]) for i in good)


def test_same_generator_seed_gives_the_same_result():
    images = random_images(8)
    pts = torch.rand(8, 17, 2, generator=gen(3)) * torch.tensor([W - 1.0, H - 1.0])
    out1, info1 = cut_occlude(images, pts, gen(7))
    out2, info2 = cut_occlude(images, pts, gen(7))
    out3, _ = cut_occlude(images, pts, gen(8))
    assert torch.equal(out1, out2)
    assert torch.equal(info1.dst_boxes, info2.dst_boxes) and torch.equal(info1.partner, info2.partner)
    assert not torch.equal(out1, out3)


def test_partner_is_never_the_image_itself_and_only_real_joints_are_used():
    pts = torch.rand(8, 24, 2, generator=gen(3)) * torch.tensor([W - 1.0, H - 1.0])
    images = random_images(8)
    seen = set()
    for seed in range(20):
        _, info = cut_occlude(images, pts, gen(seed), SSCOConfig(num_joints_real=17))
        assert (info.partner != torch.arange(8)).all()
        assert info.joints.max() < 17
        seen.update(info.partner.tolist())
    assert seen == set(range(8))


def test_single_image_batch_is_unchanged():
    images = random_images(1)
    out, info = cut_occlude(images, kpts((100, 20)), gen(), EXACT)
    assert torch.equal(out, images) and not info.pasted.any()


def test_patch_size_scales_with_input_height():
    images = random_images(2, h=512, w=384)
    cfg = SSCOConfig(num_pairs=1, half_size_range=(10, 11), jitter_sigma=0.0, num_joints_real=1)
    _, info = cut_occlude(images, kpts((200, 40), (60, 100)), gen(), cfg)
    assert info.half_size.tolist() == [[20], [20]]
    assert info.dst_boxes[0, 0].tolist() == [180, 20, 221, 61]


def test_jitter_moves_patch_centres_by_about_sigma():
    n = 64
    images = random_images(n, h=H, w=W)
    pts = torch.full((n, 1, 2), 96.0)
    cfg = SSCOConfig(num_pairs=1, half_size_range=(5, 6), jitter_sigma=10.0, num_joints_real=1)
    _, info = cut_occlude(images, pts, gen(), cfg)
    centres = (info.dst_boxes[:, 0, :2] + info.dst_boxes[:, 0, 2:] - 1).double() / 2
    spread = (centres - 96.0).std()
    assert 7.0 < spread < 13.0


def test_wrong_shapes_raise():
    with pytest.raises(ValueError, match="images"):
        cut_occlude(torch.zeros(3, H, W), kpts((1, 1)), gen())
    with pytest.raises(ValueError, match="kpts_in"):
        cut_occlude(torch.zeros(2, 3, H, W), kpts((1, 1)), gen())
    with pytest.raises(ValueError, match="half_size_range"):
        SSCOConfig(half_size_range=(20, 10))


def test_joint_cutout_erases_the_square_around_the_joint():
    images = random_images(2) + 1.0  # strictly positive, so erased pixels are recognisable
    cfg = SSCOConfig(half_size_range=(5, 6), jitter_sigma=0.0, num_joints_real=1, cutout_joints=5)
    out, info = joint_cutout(images, kpts((100, 20), (0, 0)), gen(), cfg)
    expected = images.clone()
    expected[0, :, 15:26, 95:106] = 0.0
    expected[1, :, 0:6, 0:6] = 0.0  # clipped at the corner
    assert torch.equal(out, expected)
    assert info.boxes[0, 0].tolist() == [95, 15, 106, 26]
    assert info.erased.all() and info.joints.shape == (2, 5)


def test_joint_cutout_skips_off_image_joints_and_is_deterministic():
    images = random_images(4) + 1.0
    pts = torch.rand(4, 17, 2, generator=gen(4)) * torch.tensor([W - 1.0, H - 1.0])
    pts[1] = OFF
    out, info = joint_cutout(images, pts, gen(9))
    assert torch.equal(out[1], images[1]) and not info.erased[1].any()
    assert info.erased[[0, 2, 3]].all()
    for i in (0, 2, 3):
        erased = (out[i] == 0).all(dim=0)
        area = sum((b[2] - b[0]) * (b[3] - b[1]) for b in info.boxes[i].tolist())
        assert 0 < int(erased.sum()) <= area
    again, _ = joint_cutout(images, pts, gen(9))
    assert torch.equal(out, again)
