"""Images/s of packing a pool into Parquet (``pipeline.data.pool_packs.pack_pool``) by worker count.

    python -m bench.pack_pool [--images 2000] [--unique 500] [--image-size 320x256]
        [--rows-per-file 100] [--workers 1,2] [--repeats 1] [--out DIR]

Generates ``--unique`` synthetic images (``pipeline.data.synthetic``, cached under
data/bench/pack_pool/) and lists them as a pool of ``--images`` image files (file k a hard link
to distinct image ``k % unique``, its boxes copied, ids 1..images): rendering is far slower than
packing, so a large pool is made from a few hundred renders. Then packs that pool ``--repeats``
times per worker count into fresh directories (under ``--out``, default a temporary folder) and
checks that every pack equals the first (same files, byte for byte). Each time covers the whole
``pack_pool`` call: worker start-up (forked from a forkserver that imports the packing module
once per process), reading, decoding (a full decode per image, to check it and record its size),
writing (and fsyncing) ``images-*.parquet``, ``persons.parquet`` and ``pool.json``. The images
are read from the page cache (hard links to a few hundred files). Logs one line per pack; the last
stdout line is one JSON object: ``results[workers]`` = ``{"seconds", "images_per_s",
"speedup", "all_seconds"}``, the best of ``--repeats`` packs (worker counts interleaved), the
speed-up over the first worker count.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from pipeline.cli import setup_logging
from pipeline.data.pool_packs import pack_pool
from pipeline.data.synthetic.dataset import generate_dataset
from pipeline.data.wild_pool import load_pool
from pipeline.store.atomic_files import write_json_atomic

log = logging.getLogger("bench.pack_pool")
REPO = Path(__file__).resolve().parents[1]


def parse_size(text: str) -> tuple[int, int]:
    """``"320x256"`` -> (320, 256) = (W, H)."""
    w, h = (int(v) for v in text.lower().split("x"))
    return w, h


def replicate(src: Path, dst: Path, num_images: int) -> None:
    """A COCO set of ``num_images`` image files at ``dst`` made of the images of ``src``: image
    ``k`` (id ``k + 1``) is a hard link (a copy where links fail) to ``src``'s image
    ``k % len(src images)``, with that image's annotations (boxes in image space, unchanged)."""
    coco = json.loads((src / "annotations.json").read_text())
    by_image: dict[int, list[dict]] = {}
    for ann in coco["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    (dst / "images").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for k in range(num_images):
        base = coco["images"][k % len(coco["images"])]
        name = f"{k + 1:012d}.jpg"
        target = dst / "images" / name
        target.unlink(missing_ok=True)
        try:
            os.link(src / "images" / base["file_name"], target)
        except OSError:
            shutil.copyfile(src / "images" / base["file_name"], target)
        images.append({**base, "id": k + 1, "file_name": name})
        for ann in by_image.get(base["id"], []):
            annotations.append({**ann, "id": len(annotations) + 1, "image_id": k + 1})
    out = {**coco, "images": images, "annotations": annotations}
    write_json_atomic(dst / "annotations.json", out)
    log.info("pool of %d image files from %d distinct images at %s", num_images, len(coco["images"]), dst)


def same_pack(a: Path, b: Path) -> bool:
    """True when the two pack directories hold the same files with the same bytes."""
    names = sorted(p.name for p in a.iterdir())
    if names != sorted(p.name for p in b.iterdir()):
        return False
    return all((a / n).read_bytes() == (b / n).read_bytes() for n in names)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=2000, help="pool image files")
    parser.add_argument("--unique", type=int, default=500, help="distinct synthetic images rendered")
    parser.add_argument("--image-size", type=parse_size, default=(320, 256), help="WxH (320x256)")
    parser.add_argument("--rows-per-file", type=int, default=100, help="images per pack file")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--repeats", type=int, default=1, help="packs per worker count (best kept)")
    parser.add_argument("--out", help="folder for the packs (default: a temporary folder, removed)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    counts = [int(v) for v in args.workers.split(",")]
    w, h = args.image_size

    cache = REPO / "data" / "bench" / "pack_pool"
    unique = cache / f"unique{args.unique}_{w}x{h}"
    if not (unique / "annotations.json").is_file():
        t0 = time.perf_counter()
        cpus = os.cpu_count() or 1
        generate_dataset(unique, seed=11, num_images=args.unique, image_size=(w, h), workers=cpus)
        log.info("generated %d images in %.1f s", args.unique, time.perf_counter() - t0)
    root = cache / f"pool{args.images}_of_{args.unique}_{w}x{h}"
    if not (root / "annotations.json").is_file():
        replicate(unique, root, args.images)
    pool = load_pool(image_dir=root / "images", annotations_json=root / "annotations.json")

    seconds: dict[int, list[float]] = {n: [] for n in counts}
    with tempfile.TemporaryDirectory(dir=args.out) as tmp:
        first: Path | None = None
        for rep in range(args.repeats):  # worker counts interleaved: load drifts hit them alike
            for workers in counts:
                out = Path(tmp) / f"workers_{workers}_{rep}"
                t0 = time.perf_counter()
                manifest = pack_pool(
                    pool, root / "images", out, rows_per_file=args.rows_per_file, workers=workers
                )
                seconds[workers].append(time.perf_counter() - t0)
                log.info(
                    "%d worker(s): %d images in %.1f s, %.0f images/s",
                    workers,
                    manifest["num_images"],
                    seconds[workers][-1],
                    manifest["num_images"] / seconds[workers][-1],
                )
                if first is None:
                    first = out
                elif not same_pack(first, out):
                    raise SystemExit(f"the pack of {workers} workers differs from the first one")
                else:
                    shutil.rmtree(out)
    best = {n: min(times) for n, times in seconds.items()}
    results = {
        str(n): {
            "seconds": round(best[n], 2),
            "images_per_s": round(pool.num_images / best[n], 1),
            "speedup": round(best[counts[0]] / best[n], 3),
            "all_seconds": [round(t, 2) for t in seconds[n]],
        }
        for n in counts
    }
    for n, r in results.items():
        log.info(
            "%s worker(s): best %.1f s, %.0f images/s, x%.2f",
            n,
            r["seconds"],
            r["images_per_s"],
            r["speedup"],
        )
    out = {
        "cpus": os.cpu_count(),
        "images": pool.num_images,
        "distinct_images": args.unique,
        "persons": len(pool),
        "image_size_wh": [w, h],
        "rows_per_file": args.rows_per_file,
        "repeats": args.repeats,
        "results": results,
    }
    print(json.dumps(out), flush=True)
    return out


if __name__ == "__main__":
    main()
