"""Flip test: average of the image's heatmaps and the mirrored image's, flipped back and re-paired."""

import torch
import torch.nn.functional as F

from pipeline.data.skeletons import COCO17
from pipeline.evaluation.metrics import flip_test_heatmaps


def test_mirror_equivariant_predictor_is_unchanged_without_shift():
    kernel = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]).view(1, 1, 3, 3)

    def predict(images):  # symmetric blur of the grey image, same map for every joint
        grey = images.mean(dim=1, keepdim=True)
        return F.conv2d(grey, kernel, padding=1).repeat(1, 17, 1, 1)

    images = torch.rand(2, 3, 16, 12)
    torch.testing.assert_close(
        flip_test_heatmaps(predict, images, COCO17.flip_indices, False), predict(images)
    )


def test_fixed_predictor_hand_computed():
    h, w = 4, 6
    left_eye, right_eye = COCO17.index("left_eye"), COCO17.index("right_eye")

    def predict(images):  # always a peak for the left eye at row 2, column 1
        out = torch.zeros(images.shape[0], 17, h, w)
        out[:, left_eye, 2, 1] = 1.0
        return out

    hm = flip_test_heatmaps(predict, torch.zeros(1, 3, 16, 24), COCO17.flip_indices, shift_heatmap=True)
    expected = torch.zeros(1, 17, h, w)
    expected[0, left_eye, 2, 1] = 0.5
    # mirrored: column w-1-1 = 4, becomes the right eye, then shifted one column right -> 5
    expected[0, right_eye, 2, 5] = 0.5
    torch.testing.assert_close(hm, expected)
