"""Inspect a pseudo-label store: a summary, and images with the teachers' and PCM's skeletons.

    python -m jobs.inspect_store STORE_DIR [--epoch E] [--render N --images IMAGE_DIR --out PNG_DIR]

Prints the rows, epochs, kept-joint fraction and, per joint, the kept fraction and a histogram
of position inconsistency (PI, PCM's chosen pair, / heatmap diagonal). With ``--render N`` it
draws the first N images of epoch E (default: the last epoch) with every person of the image
that the epoch holds: teacher A in blue, teacher B in green and PCM's corrected label in red
(joints PCM dropped are hollow circles), and writes them as PNGs of the original image size
to PNG_DIR. The last line printed is the summary as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import cv2
import numpy as np

from pipeline.cli import setup_logging
from pipeline.data.images import load_image
from pipeline.reporting.drawing import draw_persons, joint_names_and_edges
from pipeline.store.pseudo_label_store import PseudoLabelStore

log = logging.getLogger("jobs.inspect_store")


def format_summary(summary: dict, joint_names: list[str]) -> str:
    """The store summary (:meth:`PseudoLabelStore.summary`) as text, one PI histogram row per joint."""
    per_epoch = ", ".join(f"epoch {e}: {n}" for e, n in summary["rows_per_epoch"].items())
    lines = [
        f"store {summary['root']} (schema v{summary['schema_version']}, {summary['num_joints']} joints, "
        f"heatmaps {summary['heatmap_size']})",
        f"rows {summary['rows']} in {len(summary['epochs'])} epochs ({per_epoch or 'none'})",
        f"kept-joint fraction {summary['kept_joint_fraction']:.3f}",
        "PI (/ heatmap diagonal) histogram per joint, bin edges "
        + " ".join(f"{e:.3f}" for e in summary["pi_bin_edges"]),
    ]
    width = max(len(n) for n in joint_names)
    for name, kept, hist in zip(joint_names, summary["kept_fraction_per_joint"], summary["pi_histogram"]):
        lines.append(f"  {name:<{width}} kept {kept:5.3f} | " + " ".join(f"{c:6d}" for c in hist))
    return "\n".join(lines)


def render(store: PseudoLabelStore, epoch: int, n: int, images: Path, out: Path) -> list[Path]:
    """Write ``n`` PNGs, one per image (first images by pool position of their first person).

    Returns the PNG paths, ``OUT/epoch{E:04d}_{image stem}.png``, each the size of its image.
    """
    rows = store.read_rows(epoch)
    _, edges = joint_names_and_edges(store.num_joints)
    out.mkdir(parents=True, exist_ok=True)
    files = list(dict.fromkeys(rows.image_file))[:n]  # distinct files in person order
    names = np.asarray(rows.image_file, dtype=object)
    written = []
    for name in files:
        image_bgr = cv2.cvtColor(load_image(images / name), cv2.COLOR_RGB2BGR)
        drawn = draw_persons(image_bgr, rows, np.flatnonzero(names == name), edges)
        png = out / f"epoch{epoch:04d}_{Path(name).stem}.png"
        if not cv2.imwrite(str(png), drawn):
            raise OSError(f"{png}: cv2 could not write the PNG")
        written.append(png)
    log.info("rendered %d images of epoch %d to %s", len(written), epoch, out)
    return written


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
    store = PseudoLabelStore.open(args.store)
    summary = store.summary()
    names, _ = joint_names_and_edges(store.num_joints)
    print(format_summary(summary, names), flush=True)
    if args.render:
        if not summary["epochs"]:
            parser.error(f"{args.store}: the store has no epochs to render")
        epoch = args.epoch if args.epoch is not None else summary["epochs"][-1]
        pngs = render(store, epoch, args.render, Path(args.images), Path(args.out))
        summary["rendered"] = [str(p) for p in pngs]
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main()
