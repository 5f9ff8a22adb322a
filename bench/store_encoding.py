"""Bytes per person and decode error of the pseudo-label store's heatmap encoding (17x64x48).

    python -m bench.store_encoding [--persons 256] [--checkpoint RUN_OR_PT --ann ANN --images DIR]

Map families (heatmap space, 64x48, sigma 2):

- ``gaussian_labels``: PCM labels as written by training, the mean of two nearby teacher peaks
  of amplitude 0.3..1 (``HeatmapCodec.encode_batch``), exactly zero elsewhere;
- ``labels+noise S``: the same plus a smooth (blurred, sigma 1.5 px) noise floor of std S;
- ``network_like``: peaks widened by a sigma-1.5 blur (``pipeline.geometry.heatmaps.gaussian_blur``),
  shifted by up to -0.02 and carrying a smooth 0.002-std noise floor, as a trained network's;
- with ``--checkpoint``: what that network predicts on the annotated crops of ``--ann``.

Each is measured with the store's encoding (:func:`pipeline.store.pseudo_label_store.encode_heatmaps`:
uint8 codes, per-joint offset and a step that spends the whole error budget, zstd Parquet) and,
for comparison, per-joint min-max uint8 codes (step = range / 255). Prints a table; the last
line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from pipeline.cli import setup_logging
from pipeline.geometry.heatmaps import HeatmapCodec, gaussian_blur
from pipeline.store.pseudo_label_store import (
    ZSTD_LEVEL,
    PseudoLabelRows,
    PseudoLabelStore,
    decode_heatmaps,
    encode_heatmaps,
    heatmap_bytes,
)

log = logging.getLogger("bench.store_encoding")
K, W, H = 17, 48, 64


def gaussian_labels(n: int, seed: int = 0) -> np.ndarray:
    """(n, K, H, W) float32 PCM-like labels: mean of two peaks 2 px apart, amplitude 0.3..1."""
    rng = np.random.default_rng(seed)
    codec = HeatmapCodec((W * 4, H * 4), (W, H), 2.0)
    hm, _ = codec.encode_batch(rng.uniform(0, W * 4, (n, K, 2)), np.ones((n, K), bool))
    hm = np.asarray(hm, np.float32) * rng.uniform(0.3, 1.0, (n, K, 1, 1)).astype(np.float32)
    return (hm + np.roll(hm, 2, axis=-1)) / 2


def smooth_noise(shape: tuple[int, ...], std: float, seed: int = 1) -> np.ndarray:
    """Noise blurred with sigma 1.5 px and rescaled to ``std``: a network's smooth noise floor."""
    noise = torch.from_numpy(np.random.default_rng(seed).normal(size=shape).astype(np.float32))
    noise = gaussian_blur(noise, 1.5).numpy()
    return noise * np.float32(std / max(noise.std(), 1e-12))


def network_like(n: int, seed: int = 0) -> np.ndarray:
    """(n, K, H, W) maps shaped like a trained network's: wider peaks, an offset, a noise floor."""
    rng = np.random.default_rng(seed)
    hm = gaussian_blur(torch.from_numpy(gaussian_labels(n, seed)), 1.5).numpy()
    hm = hm - rng.uniform(0.0, 0.02, (n, K, 1, 1)).astype(np.float32)
    return hm + smooth_noise(hm.shape, 0.002, seed + 1)


def network_heatmaps(checkpoint: str, ann: str, images: str, n: int) -> np.ndarray:
    """(n, K, H, W) predictions of a checkpoint's network on the first ``n`` annotated persons."""
    from pipeline.data.coco import load_coco_persons
    from pipeline.data.skeletons import get_skeleton
    from pipeline.data.topdown import EvalDataset
    from pipeline.models import build_model
    from pipeline.store.checkpoints import load_network_file, resolve_network_checkpoint

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


def minmax_bytes(hm: np.ndarray) -> tuple[float, float]:
    """Bytes per person and max abs error of per-joint min-max uint8 codes, zstd Parquet."""
    lo, hi = hm.min(axis=(2, 3), keepdims=True), hm.max(axis=(2, 3), keepdims=True)
    span = np.where(hi > lo, hi - lo, 1.0)
    codes = np.rint((hm - lo) / span * 255).astype(np.uint8)
    err = float(np.abs(lo + codes / np.float32(255) * span - hm).max())
    table = pa.table({"heatmap_codes": pa.array([c.tobytes() for c in codes], type=pa.binary())})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "minmax.parquet"
        pq.write_table(table, path, compression="zstd", compression_level=ZSTD_LEVEL)
        size = pq.ParquetFile(path).metadata.row_group(0).column(0).total_compressed_size
    return (size + 2 * 4 * K * len(hm)) / len(hm), err  # + float32 lo, hi per joint


def measure(hm: np.ndarray) -> dict:
    """Bytes per person (heatmap columns; whole row) and max abs error of the store's encoding."""
    n = len(hm)
    codes, offset, step = encode_heatmaps(hm)
    err = float(np.abs(decode_heatmaps(codes, offset, step) - hm).max())
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
        back = PseudoLabelStore.open(tmp).read_rows(0).heatmaps
    minmax, minmax_err = minmax_bytes(hm)
    return {
        "heatmap_bytes_per_person": hm_bytes / n,
        "row_bytes_per_person": file_bytes / n,
        "max_abs_error": err,
        "max_abs_error_via_store": float(np.abs(back - hm).max()),
        "minmax_bytes_per_person": minmax,
        "minmax_max_abs_error": minmax_err,
        "raw_float32_bytes_per_person": K * W * H * 4,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--persons", type=int, default=256)
    parser.add_argument("--checkpoint", help="a network checkpoint (.pt) or a run directory")
    parser.add_argument("--ann", help="COCO keypoints JSON of the crops (with --checkpoint)")
    parser.add_argument("--images", help="image directory (with --checkpoint)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    labels = gaussian_labels(args.persons)
    maps = {"gaussian_labels": labels}
    for std in (0.001, 0.002, 0.004, 0.008):
        maps[f"labels+noise {std}"] = labels + smooth_noise(labels.shape, std)
    maps["network_like"] = network_like(args.persons)
    if args.checkpoint:
        maps["network_predictions"] = network_heatmaps(args.checkpoint, args.ann, args.images, args.persons)
    table = {}
    for name, hm in maps.items():
        table[name] = measure(hm)
        log.info("%s: %s", name, table[name])
    header = f"{'maps (17x64x48)':<24}{'store B/person':>16}{'max abs err':>13}{'min-max B/person':>18}"
    print(f"{header}{'err':>10}")
    for name, m in table.items():
        print(
            f"{name:<24}{m['heatmap_bytes_per_person']:>16.0f}{m['max_abs_error'] * 255:>9.3f}/255"
            f"{m['minmax_bytes_per_person']:>18.0f}{m['minmax_max_abs_error'] * 255:>6.3f}/255"
        )
    print(json.dumps(table))
    return table


if __name__ == "__main__":
    main()
