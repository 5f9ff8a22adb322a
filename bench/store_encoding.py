"""Bytes per person and decode error of the pseudo-label store's heatmap encoding.

    python -m bench.store_encoding [--persons 256] [--checkpoint RUN_OR_PT --ann ANN --images DIR]

Always measures Gaussian-like PCM labels (the mean of two nearby peaks of varying amplitude)
at 17x64x48; with ``--checkpoint`` also the heatmaps a trained network predicts on real crops
(resized to 64x48 through a 256x192 input), which carry a noise floor that compresses less.
Prints a table; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

import numpy as np
import torch

from jobs.cli import setup_logging
from pipeline.heatmaps import HeatmapCodec
from pipeline.pseudo_label_store import (
    PseudoLabelRows,
    PseudoLabelStore,
    decode_heatmaps,
    encode_heatmaps,
    heatmap_bytes,
)

log = logging.getLogger("bench.store_encoding")
K, W, H = 17, 48, 64


def gaussian_labels(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    codec = HeatmapCodec((W * 4, H * 4), (W, H), 2.0)
    hm, _ = codec.encode_batch(rng.uniform(0, W * 4, (n, K, 2)), np.ones((n, K), bool))
    hm = np.asarray(hm, np.float32) * rng.uniform(0.3, 1.0, (n, K, 1, 1)).astype(np.float32)
    return (hm + np.roll(hm, 2, axis=-1)) / 2


def network_heatmaps(checkpoint: str, ann: str, images: str, n: int) -> np.ndarray:
    from pipeline.checkpoints import load_network_file, resolve_network_checkpoint
    from pipeline.datasets import load_coco_persons
    from pipeline.models import build_model
    from pipeline.skeletons import get_skeleton
    from pipeline.topdown_data import EvalDataset

    state = load_network_file(resolve_network_checkpoint(checkpoint))
    model = build_model(state["spec"]["model_name"], K)
    model.load_state_dict(state["model"])
    model.eval()
    skeleton = get_skeleton("coco17")
    persons = load_coco_persons(ann, images, skeleton=skeleton)[:n]
    ds = EvalDataset(persons, HeatmapCodec((W * 4, H * 4), (W, H), 2.0), skeleton)
    with torch.no_grad():
        x = torch.stack([ds[i]["images"] for i in range(len(ds))])
        return model(x).numpy()


def measure(hm: np.ndarray) -> dict:
    n = len(hm)
    codes, lo, hi = encode_heatmaps(hm)
    err = float(np.abs(decode_heatmaps(codes, lo, hi) - hm).max())
    zeros = np.zeros((n, K, 3), np.float32)
    rows = PseudoLabelRows(
        image_id=np.arange(n), person_index=np.arange(n), image_file=[""] * n,
        bbox=np.zeros((n, 4), np.float32), kpts_a=zeros, kpts_b=zeros, pi=np.zeros((n, K), np.float32),
        kpts_corrected=zeros, weights=np.ones((n, K), np.float32), heatmaps=hm,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        path = PseudoLabelStore(tmp, num_joints=K, heatmap_size=(W, H)).write_batch(0, 0, rows)
        hm_bytes = heatmap_bytes(path)
        file_bytes = Path(path).stat().st_size
    return {
        "heatmap_bytes_per_person": hm_bytes / n,
        "row_bytes_per_person": file_bytes / n,
        "raw_float32_bytes_per_person": K * W * H * 4,
        "max_abs_error": err,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--persons", type=int, default=256)
    parser.add_argument("--checkpoint")
    parser.add_argument("--ann")
    parser.add_argument("--images")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    table = {"gaussian_labels": measure(gaussian_labels(args.persons))}
    if args.checkpoint:
        maps = network_heatmaps(args.checkpoint, args.ann, args.images, args.persons)
        table["network_predictions"] = measure(maps)
    print(f"{'maps (17x64x48)':<22}{'heatmap B/person':>18}{'row B/person':>14}{'max abs err':>13}")
    for name, m in table.items():
        print(
            f"{name:<22}{m['heatmap_bytes_per_person']:>18.0f}{m['row_bytes_per_person']:>14.0f}"
            f"{m['max_abs_error']:>13.5f}"
        )
    print(json.dumps(table))
    return table


if __name__ == "__main__":
    main()
