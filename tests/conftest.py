"""Shared fixtures: a small synthetic COCO-format data set and the real samples in ../shared."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pipeline.synthetic import generate_dataset

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = REPO.parent / "shared" / "data" / "real"

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not REAL_DATA.is_dir():
        pytest.skip(f"real data samples not present at {REAL_DATA}")
    return REAL_DATA


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory) -> dict[str, Path]:
    """``train`` (40 images) and ``val`` (12 images) synthetic sets with disjoint image ids."""
    root = tmp_path_factory.mktemp("synthetic")
    generate_dataset(root / "train", seed=0, num_images=40, image_size=(256, 192))
    generate_dataset(root / "val", seed=1, num_images=12, start_id=100_000, image_size=(256, 192))
    return {
        "root": root,
        "train_ann": root / "train" / "annotations.json",
        "train_images": root / "train" / "images",
        "val_ann": root / "val" / "annotations.json",
        "val_images": root / "val" / "images",
    }
