"""Pack an unlabeled pool (COCO-format images + person boxes) into Parquet for streaming.

    python -m jobs.pack_pool --images DIR --ann ANN.json [--boxes DET.json] --out OUT_DIR
        [--rows-per-file 1000] [--min-box-score 0]

The pool is read as training reads it (``pipeline.data.wild_pool.load_pool``): the images of
``ANN.json`` with its non-crowd person boxes, or, with ``--boxes``, with the person detections
of a COCO-results file. Writes ``OUT_DIR/images-*.parquet`` (encoded image bytes, one row per
image), ``OUT_DIR/persons.parquet`` (one row per box) and ``OUT_DIR/pool.json`` last (layout in
``pipeline/data/pool_packs.py``). Train on it with ``--data.unlabeled_parquet=OUT_DIR``
(``--data.loader=ray_data --resources.runtime=ray``).
"""

from __future__ import annotations

import argparse
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
    parser.add_argument("--ann", required=True, help="COCO json: the pool images (and boxes)")
    parser.add_argument("--boxes", help="COCO-results person detections (instead of ANN's boxes)")
    parser.add_argument("--out", required=True, help="output pack directory")
    parser.add_argument("--rows-per-file", type=int, default=DEFAULT_ROWS_PER_FILE, help="images per file")
    parser.add_argument("--min-box-score", type=float, default=0.0, help="drop detections below this")
    parser.add_argument("--log-level", default="INFO")
    return parser


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    if args.rows_per_file < 1:
        raise SystemExit(f"--rows-per-file must be >= 1, got {args.rows_per_file}")
    t0 = time.perf_counter()
    if args.boxes:
        source = {"image_list_json": args.ann, "detections_json": args.boxes}
    else:
        source = {"annotations_json": args.ann}
    try:
        pool = load_pool(image_dir=args.images, min_box_score=args.min_box_score, **source)
        manifest = pack_pool(
            pool, args.images, args.out, rows_per_file=args.rows_per_file, source=args.boxes or args.ann
        )
    except (AnnotationError, ImageError, FileNotFoundError, ValueError) as e:
        log.error("%s", e)
        sys.exit(1)
    dt = time.perf_counter() - t0
    log.info(
        "packed %d persons on %d images into %s in %.1f s (%.0f images/s)",
        manifest["num_persons"],
        manifest["num_images"],
        args.out,
        dt,
        manifest["num_images"] / max(dt, 1e-9),
    )
    return manifest


if __name__ == "__main__":
    main()
