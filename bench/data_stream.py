"""Images/s of unlabeled training batches: Ray Data stream vs the in-process DataLoader.

    python -m bench.data_stream [--steps 600] [--batch-size 32] [--input 96x128] [--json]

Generates a synthetic pool (cached under data/bench/data_stream, 320x256 images) and packs it
into Parquet, then drains the same epoch of unlabeled batches (easy view + three hard affines,
``UnlabeledDataset``) four ways: torch DataLoader in this process (``num_workers=0``, the
trainer's default) and with ``--loader-workers`` worker processes; the Ray Data stream
(``actors.data_stream.ray_data_batches``) reading the image folder and reading the Parquet pack.
Ray runs locally with as many CPUs as this machine. Rates are over the whole epoch, start-up
included: the stream starts its workers once per epoch (``first batch`` is that wait).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from pipeline.cli import setup_logging
from pipeline.config import AugmentConfig
from pipeline.data.pool_packs import pack_pool, read_pool_pack
from pipeline.data.skeletons import COCO17
from pipeline.data.synthetic.dataset import generate_dataset
from pipeline.data.topdown import UnlabeledDataset
from pipeline.data.wild_pool import load_pool
from pipeline.geometry.heatmaps import HeatmapCodec
from pipeline.trainer import epoch_batches

log = logging.getLogger("bench.data_stream")
REPO = Path(__file__).resolve().parents[1]


def parse_size(text: str) -> tuple[int, int]:
    w, h = (int(v) for v in text.lower().split("x"))
    return w, h


def drain(batches: Iterator[dict], batch_size: int) -> dict[str, float]:
    """Time an epoch of batches: images/s over the whole epoch, and the wait for the first batch."""
    t0 = time.perf_counter()
    t_first, n = 0.0, 0
    for b in batches:
        assert len(b["images"]) == batch_size
        n += 1
        t_first = t_first or time.perf_counter() - t0
    seconds = time.perf_counter() - t0
    return {"images_per_s": n * batch_size / seconds, "first_batch_s": t_first, "seconds": seconds}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--input", type=parse_size, default=(96, 128), help="crop WxH (96x128)")
    parser.add_argument("--images", type=int, default=120, help="synthetic pool images")
    parser.add_argument("--loader-workers", type=int, default=2, help="DataLoader worker processes")
    parser.add_argument("--ray-workers", type=int, default=2, help="Ray Data map workers")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    torch.set_num_threads(1)

    root = REPO / "data" / "bench" / "data_stream"
    if not (root / "pool" / "annotations.json").is_file():
        generate_dataset(root / "pool", seed=7, num_images=args.images, workers=2)
    pool = load_pool(image_dir=root / "pool" / "images", annotations_json=root / "pool" / "annotations.json")
    if not (root / "pack" / "pool.json").is_file():
        pack_pool(pool, root / "pool" / "images", root / "pack", rows_per_file=64)
    w, h = args.input
    codec = HeatmapCodec((w, h), (w // 4, h // 4), 2.0)

    def dataset(persons) -> UnlabeledDataset:
        ds = UnlabeledDataset(persons, codec, COCO17, augment=AugmentConfig(), seed=0)
        ds.set_epoch(0)
        return ds

    folder, packed = dataset(list(pool)), dataset(read_pool_pack(root / "pack"))
    order = epoch_batches(len(folder), args.batch_size, args.steps, seed=0, epoch=0, salt=1)

    def loader(workers: int) -> Callable[[], Iterator[dict]]:
        return lambda: iter(torch.utils.data.DataLoader(folder, batch_sampler=order, num_workers=workers))

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    from actors.data_stream import ray_data_batches

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:

        def stream(ds: UnlabeledDataset) -> Callable[[], Iterator[dict]]:
            return lambda: ray_data_batches("unlabeled", ds, order, num_workers=args.ray_workers)

        cases = {
            "torch_in_process": loader(0),
            f"torch_{args.loader_workers}_workers": loader(args.loader_workers),
            "ray_data_folder": stream(folder),
            "ray_data_parquet": stream(packed),
        }
        results = {name: drain(make(), args.batch_size) for name, make in cases.items()}
    finally:
        ray.shutdown()
    out = {
        "cpus": os.cpu_count(),
        "batch_size": args.batch_size,
        "steps": args.steps,
        "input_wh": [w, h],
        "pool_persons": len(pool),
        "results": results,
    }
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"{args.steps} unlabeled batches of {args.batch_size} at {w}x{h} (WxH), {os.cpu_count()} CPUs")
        for name, r in results.items():
            print(f"  {name:22s} {r['images_per_s']:7.1f} images/s  (first batch {r['first_batch_s']:.2f} s)")
    return out


if __name__ == "__main__":
    main()
