"""Inspect a pseudo-label store: a summary, and images with the teachers' and PCM's skeletons.

    python -m jobs.inspect_store STORE_DIR [--epoch E] [--render N --images IMAGE_DIR --out PNG_DIR]

Prints the rows, epochs, kept-joint fraction and, per joint, the kept fraction and a histogram
of position inconsistency (PI, PCM's chosen pair, / heatmap diagonal). With ``--render N`` it
draws the first N images of epoch E (default: the last epoch) with every person of the image
that the epoch holds: teacher A in blue, teacher B in green and PCM's corrected label in red
(joints PCM dropped are hollow circles), and writes them as PNGs of the original image size
to PNG_DIR. The last line printed is the summary as one JSON object. A store file that cannot be
read (truncated, corrupt, of another schema version) ends it with exit status 1 and one line
``error: <file>: ...`` naming the file (and the field).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipeline.cli import setup_logging
from pipeline.reporting.drawing import joint_names_and_edges
from pipeline.reporting.store_view import format_summary, render_images
from pipeline.store.pseudo_label_store import PseudoLabelStore, StoreError


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("store", help="the store directory (e.g. RUN/pseudo_labels or OUT/store)")
    parser.add_argument("--epoch", type=int, help="epoch to render (default: the last)")
    parser.add_argument("--render", type=int, default=0, metavar="N", help="draw N images")
    parser.add_argument("--images", help="image directory of the pool (with --render)")
    parser.add_argument("--out", help="PNG directory (with --render)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    if args.render and (not args.images or not args.out):
        parser.error("--render needs --images and --out")
    try:
        store = PseudoLabelStore.open(args.store)
        summary = store.summary()
        names, _ = joint_names_and_edges(store.num_joints)
        print(format_summary(summary, names), flush=True)
        if args.render:
            if not summary["epochs"]:
                parser.error(f"{args.store}: the store has no epochs to render")
            epoch = args.epoch if args.epoch is not None else summary["epochs"][-1]
            pngs = render_images(store, epoch, args.render, Path(args.images), Path(args.out))
            summary["rendered"] = [str(p) for p in pngs]
    except StoreError as e:  # an unreadable file: the message names it (and the field)
        parser.exit(1, f"error: {e}\n")
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main()
