"""Shared fixtures: a small synthetic COCO-format data set and the real samples in ../shared."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pipeline.data.synthetic.dataset import generate_dataset

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


RAY_OBJECT_STORE_BYTES = 160 * 1024**2  # small on purpose: streaming tests must not fit in it


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray instance for the whole test session (2 CPUs, a capped object store)."""
    import os

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    if not ray.is_initialized():
        ray.init(
            num_cpus=2,
            object_store_memory=RAY_OBJECT_STORE_BYTES,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    yield ray
    ray.shutdown()
