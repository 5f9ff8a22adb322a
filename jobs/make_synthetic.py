"""Write a synthetic people data set (COCO person keypoints) for the demo and the tests.

    python -m jobs.make_synthetic --out DIR --seed N --images N [--start-id 1]
        [--image-size 320x256] [--max-people 3] [--workers 1] [--difficulty 1] [--left-shade 0.6]

Writes ``DIR/images/<id:012d>.jpg`` and ``DIR/annotations.json`` (written atomically). Image
``k`` depends only on (seed, image id), so train / unlabeled / val sets made with disjoint id
ranges (``--start-id``) never share an image and never collide in ids.
"""

from __future__ import annotations

import argparse
import logging
import time

from pipeline.cli import setup_logging
from pipeline.data.synthetic.dataset import generate_dataset
from pipeline.data.synthetic.figure import LEFT_SHADE
from pipeline.data.synthetic.scene import DEFAULT_IMAGE_SIZE

log = logging.getLogger("jobs.make_synthetic")


def parse_size(text: str) -> tuple[int, int]:
    """``"320x256"`` -> (320, 256) = (W, H)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"image size must look like WxH, got {text!r}") from None
    if w < 32 or h < 32:
        raise argparse.ArgumentTypeError(f"image size {w}x{h} is too small (min 32x32)")
    return w, h


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--images", type=int, required=True, help="number of images")
    parser.add_argument("--start-id", type=int, default=1, help="id of the first image")
    default_size = f"{DEFAULT_IMAGE_SIZE[0]}x{DEFAULT_IMAGE_SIZE[1]}"
    parser.add_argument(
        "--image-size", type=parse_size, default=DEFAULT_IMAGE_SIZE, help=f"WxH ({default_size})"
    )
    parser.add_argument("--max-people", type=int, default=3, help="1..max people per image")
    parser.add_argument("--workers", type=int, default=1, help="processes")
    parser.add_argument(
        "--difficulty",
        type=float,
        default=1.0,
        help="0..1: clutter, occluders, truncation, rotation and noise (1 = the default set)",
    )
    parser.add_argument(
        "--left-shade",
        type=float,
        default=LEFT_SHADE,
        help=f"brightness of the figures' left limbs against their right ones, in (0, 1]: the "
        f"left/right cue, lower is stronger ({LEFT_SHADE})",
    )
    parser.add_argument("--log-level", default="INFO")
    return parser


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    if args.images < 0 or args.start_id < 0 or not 1 <= args.max_people < 100:
        raise SystemExit("--images and --start-id must be >= 0 and --max-people in 1..99")
    if not 0.0 <= args.difficulty <= 1.0:
        raise SystemExit(f"--difficulty must be in [0, 1], got {args.difficulty}")
    if not 0.0 < args.left_shade <= 1.0:
        raise SystemExit(f"--left-shade must be in (0, 1], got {args.left_shade}")
    t0 = time.perf_counter()
    coco = generate_dataset(
        args.out,
        seed=args.seed,
        num_images=args.images,
        start_id=args.start_id,
        image_size=args.image_size,
        max_people=args.max_people,
        workers=args.workers,
        difficulty=args.difficulty,
        left_shade=args.left_shade,
    )
    dt = time.perf_counter() - t0
    log.info(
        "wrote %d images, %d persons to %s in %.1f s (%.0f images/s)",
        len(coco["images"]),
        len(coco["annotations"]),
        args.out,
        dt,
        len(coco["images"]) / max(dt, 1e-9),
    )
    return coco


if __name__ == "__main__":
    main()
