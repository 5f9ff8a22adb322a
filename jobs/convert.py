"""Convert MPII (HRNet/mmpose json) or raw AI Challenger annotations to COCO person keypoints.

    python -m jobs.convert mpii MPII.json IMAGE_DIR OUT.json
    python -m jobs.convert aic AIC_RAW.json IMAGE_DIR OUT.json

The output loads with pycocotools and can be given to ``jobs.train`` as a labeled set
(with ``data.skeleton=mpii16`` or ``aic14``).
"""

from __future__ import annotations

import argparse
import logging

from pipeline.cli import setup_logging
from pipeline.data.converters import aic_to_coco, mpii_to_coco, write_coco_json

log = logging.getLogger("jobs.convert")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("format", choices=["mpii", "aic"])
    parser.add_argument("source", help="annotation file in the source format")
    parser.add_argument("image_dir", help="folder holding the images it names")
    parser.add_argument("out", help="COCO person-keypoints JSON to write")
    parser.add_argument("--no-image-check", action="store_true", help="do not require the image files")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    convert = mpii_to_coco if args.format == "mpii" else aic_to_coco
    data = convert(args.source, args.image_dir, require_images=not args.no_image_check)
    write_coco_json(data, args.out)
    log.info("wrote %d images, %d persons to %s", len(data["images"]), len(data["annotations"]), args.out)


if __name__ == "__main__":
    main()
