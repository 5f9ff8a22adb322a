"""Top-down samples for training and evaluation: crops, views, targets.

Every random choice of a sample is drawn from ``np.random.default_rng([seed, epoch, index, salt])``,
so a sample is the same whichever process builds it and whenever (resume, Ray workers).
"""

from __future__ import annotations

import logging
import os
from typing import Protocol

import numpy as np
import torch

from pipeline.config import AugmentConfig
from pipeline.data.images import load_image, to_tensor
from pipeline.data.skeletons import Skeleton
from pipeline.geometry.heatmaps import HeatmapCodec
from pipeline.geometry.views import (
    AugmentRanges,
    ViewParams,
    box_to_center_size,
    make_view,
    sample_hard_affine,
    sample_view_params,
    transform_points,
)

log = logging.getLogger(__name__)

NUM_HARD_VIEWS = 3  # one hard affine per network role (teacher_a, teacher_b, student)


class PersonLike(Protocol):
    image_id: int
    image_path: str
    bbox_xywh: np.ndarray


def box_view(image: np.ndarray, bbox_xywh, input_size: tuple[int, int], padding: float = 1.25):
    """The un-augmented view of a person: ``image`` (H, W, 3) uint8 image space cropped to its
    (x, y, w, h) box, widened to the input's aspect ratio and padded, as a ``View`` of
    ``input_size`` (W, H) (the evaluation view, and the easy view PCM's teachers see)."""
    w, h = input_size
    center, size = box_to_center_size(np.asarray(bbox_xywh, dtype=np.float64), w / h, padding)
    return make_view(image, ViewParams(center=center, size=size), input_size)


class _TopDownBase(torch.utils.data.Dataset):
    def __init__(
        self,
        persons: list,
        codec: HeatmapCodec,
        skeleton: Skeleton,
        *,
        augment: AugmentConfig | None,
        seed: int = 0,
        padding: float = 1.25,
    ):
        self.persons = persons
        self.codec = codec
        self.skeleton = skeleton
        self.augment = augment
        self.seed = seed
        self.padding = padding
        self.epoch = 0
        self.flip_indices = np.asarray(skeleton.flip_indices)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.persons)

    def _rng(self, index: int, salt: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, index, salt])

    def _load_image(self, person) -> np.ndarray:
        """The person's image, (H, W, 3) uint8 RGB image space (a subclass may read it elsewhere)."""
        return load_image(person.image_path)

    def _easy_view(self, index: int):
        p = self.persons[index]
        image = self._load_image(p)
        if self.augment is None:
            return p, box_view(image, p.bbox_xywh, self.codec.input_size, self.padding)
        w, h = self.codec.input_size
        center, size = box_to_center_size(np.asarray(p.bbox_xywh, dtype=np.float64), w / h, self.padding)
        params = sample_view_params(
            self._rng(index, 0), center, size, AugmentRanges.from_config(self.augment)
        )
        return p, make_view(image, params, self.codec.input_size)


class LabeledDataset(_TopDownBase):
    """Labeled persons in an (easy-)augmented view with Gaussian targets.

    Item: ``images`` (3,H,W) float32 normalised; ``targets`` (K,h,w); ``target_weights`` (K,);
    ``matrix`` (2,3) float64 image->input; ``flipped``; ``image_id``; ``index``.
    """

    def __getitem__(self, index: int) -> dict:
        p, view = self._easy_view(index)
        kpts = np.asarray(p.kpts_img, dtype=np.float64)
        kpts_in = transform_points(kpts[:, :2], view.matrix)
        vis = kpts[:, 2] > 0
        if view.flipped:
            kpts_in, vis = kpts_in[self.flip_indices], vis[self.flip_indices]
        targets, weights = self.codec.encode(kpts_in, vis)
        return {
            "images": to_tensor(view.image)[0],
            "targets": torch.from_numpy(np.asarray(targets, dtype=np.float32)),
            "target_weights": torch.from_numpy(np.asarray(weights, dtype=np.float32)),
            "matrix": torch.from_numpy(view.matrix),
            "flipped": bool(view.flipped),
            "image_id": int(p.image_id),
            "index": index,
        }


class UnlabeledDataset(_TopDownBase):
    """Unlabeled persons: the easy view for the teachers plus one hard affine per role.

    Item: ``images`` (3,H,W) easy view; ``matrix`` (2,3) image->easy input; ``flipped``;
    ``hard_affines`` (3,2,3) float64 easy input -> hard input, one per role; ``image_id``;
    ``bbox`` (4,) xywh image space; ``image_file`` file name; ``index`` (position in the pool).
    """

    def __getitem__(self, index: int) -> dict:
        p, view = self._easy_view(index)
        if self.augment is None:
            hard = np.tile(np.eye(3)[:2], (NUM_HARD_VIEWS, 1, 1))
        else:
            rng = self._rng(index, 1)
            ranges = AugmentRanges.from_config(self.augment, hard=True)
            hard = np.stack(
                [sample_hard_affine(rng, self.codec.input_size, ranges) for _ in range(NUM_HARD_VIEWS)]
            )
        return {
            "images": to_tensor(view.image)[0],
            "matrix": torch.from_numpy(view.matrix),
            "flipped": bool(view.flipped),
            "hard_affines": torch.from_numpy(hard),
            "image_id": int(p.image_id),
            "bbox": torch.from_numpy(np.asarray(p.bbox_xywh, dtype=np.float64)),
            "image_file": os.path.basename(str(p.image_path)),
            "index": index,
        }


class EvalDataset(_TopDownBase):
    """Persons in their un-augmented ground-truth-box view, for inference.

    Item: ``images`` (3,H,W); ``matrix`` (2,3) image->input; ``image_id``; ``score`` box score;
    ``area``; ``index``.
    """

    def __init__(self, persons: list, codec: HeatmapCodec, skeleton: Skeleton, padding: float = 1.25):
        super().__init__(persons, codec, skeleton, augment=None, seed=0, padding=padding)

    def __getitem__(self, index: int) -> dict:
        p, view = self._easy_view(index)
        return {
            "images": to_tensor(view.image)[0],
            "matrix": torch.from_numpy(view.matrix),
            "image_id": int(p.image_id),
            "score": float(getattr(p, "score", 1.0)),
            "index": index,
        }
