"""Pack an unlabeled pool (images + person boxes) into Parquet for streaming.

    python -m jobs.pack_pool --images DIR [--ann ANN.json] [--boxes DET.json] --out OUT
        [--rows-per-file 1000] [--min-box-score 0] [--workers 1]

The pool is read as training reads it (``pipeline.data.wild_pool.load_pool``): the images of
``ANN.json`` with its non-crowd person boxes, or, with ``--boxes``, with the person detections
of a COCO-results file; without ``--ann``, every JPEG/PNG under DIR (recursively) with the
detections of ``--boxes`` (each naming its image by ``file_name``). Writes
``OUT/images-*.parquet`` (encoded image bytes, one row per image; ``--workers`` processes write
whole files in parallel, the same files for any number), then ``OUT/persons.parquet`` (one row
per box) and ``OUT/pool.json`` last (layout in ``pipeline/data/pool_packs.py``). ``OUT`` is a
local directory or a pyarrow filesystem URI (``file:///abs/dir``, ``s3://bucket/prefix``,
``gs://bucket/prefix``). Train on it with ``--data.unlabeled_parquet=OUT``
(``--data.loader=ray_data --resources.runtime=ray``).

The last stdout line is one JSON object: the manifest (``pool.json``) plus ``out``,
``workers``, ``seconds`` and ``images_per_s``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

from pipeline.cli import setup_logging
from pipeline.data.coco import AnnotationError
from pipeline.data.images import ImageError
from pipeline.data.pool_packs import DEFAULT_ROWS_PER_FILE, pack_pool
from pipeline.data.wild_pool import load_pool

log = logging.getLogger("jobs.pack_pool")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", required=True, help="folder the images' file names are relative to")
    parser.add_argument(
        "--ann", help="COCO json: the pool images (and boxes); default: every image under --images"
    )
    parser.add_argument("--boxes", help="COCO-results person detections (instead of ANN's boxes)")
    parser.add_argument("--out", required=True, help="output pack directory: a path or a pyarrow URI")
    parser.add_argument("--rows-per-file", type=int, default=DEFAULT_ROWS_PER_FILE, help="images per file")
    parser.add_argument("--min-box-score", type=float, default=0.0, help="drop detections below this")
    parser.add_argument("--workers", type=int, default=1, help="processes writing image files")
    parser.add_argument("--log-level", default="INFO")
    return parser


def main(argv: list[str] | None = None) -> dict:
    """Pack the pool; returns the manifest written to ``pool.json`` (exit 1 on bad input)."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    if args.rows_per_file < 1:
        raise SystemExit(f"--rows-per-file must be >= 1, got {args.rows_per_file}")
    if args.workers < 1:
        raise SystemExit(f"--workers must be >= 1, got {args.workers}")
    t0 = time.perf_counter()
    if not args.ann and not args.boxes:
        raise SystemExit("give --ann (a COCO json) or --boxes (person detections over the --images folder)")
    if args.boxes:
        source = {"detections_json": args.boxes}
        if args.ann:
            source["image_list_json"] = args.ann
    else:
        source = {"annotations_json": args.ann}
    try:
        pool = load_pool(image_dir=args.images, min_box_score=args.min_box_score, **source)
        manifest = pack_pool(
            pool,
            args.images,
            args.out,
            rows_per_file=args.rows_per_file,
            source=args.boxes or args.ann,
            workers=args.workers,
        )
    except (AnnotationError, ImageError, FileNotFoundError, ValueError) as e:
        log.error("%s", e)
        sys.exit(1)
    dt = time.perf_counter() - t0
    summary = {
        **manifest,
        "out": args.out,
        "workers": args.workers,
        "seconds": round(dt, 3),
        "images_per_s": round(manifest["num_images"] / max(dt, 1e-9), 1),
    }
    log.info(
        "packed %d persons on %d images into %s in %.1f s (%.0f images/s, %d worker(s))",
        manifest["num_persons"],
        manifest["num_images"],
        args.out,
        dt,
        summary["images_per_s"],
        args.workers,
    )
    print(json.dumps(summary), flush=True)
    return manifest


if __name__ == "__main__":
    main()
