"""Inspect a pseudo-label store: a summary, and images with the teachers' and PCM's skeletons.

    python -m jobs.inspect_store STORE_DIR [--epoch E] [--render N --images IMAGE_DIR --out PNG_DIR]

Prints the rows, epochs, kept-joint fraction and a per-joint histogram of position
inconsistency (PI), then, with ``--render``, draws N persons of an epoch on their images:
teacher A in blue, teacher B in green, PCM's corrected label in red (joints PCM dropped are
drawn hollow). The last line printed is the summary as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import cv2
import numpy as np

from jobs.cli import setup_logging
from pipeline.images import load_image
from pipeline.pseudo_label_store import PseudoLabelRows, PseudoLabelStore
from pipeline.skeletons import Skeleton, skeleton_for_num_joints

log = logging.getLogger("jobs.inspect_store")

COLOURS = {"kpts_a": (255, 80, 0), "kpts_b": (0, 180, 0), "kpts_corrected": (0, 0, 255)}  # BGR


def format_summary(summary: dict, skeleton: Skeleton) -> str:
    """The summary as text: totals, then one PI histogram row per joint."""
    lines = [
        f"store {summary['root']} (schema v{summary['schema_version']})",
        f"rows {summary['rows']} in epochs {summary['epochs']}: "
        + ", ".join(f"{e}: {n}" for e, n in summary["rows_per_epoch"].items()),
        f"kept-joint fraction {summary['kept_joint_fraction']:.3f}",
        "position inconsistency (PI / heatmap diagonal) per joint, bin edges "
        + " ".join(f"{e:.3f}" for e in summary["pi_bin_edges"]),
    ]
    width = max(len(n) for n in skeleton.joint_names)
    for name, kept, hist in zip(
        skeleton.joint_names, summary["kept_fraction_per_joint"], summary["pi_histogram"]
    ):
        lines.append(f"  {name:<{width}} kept {kept:5.3f} | " + " ".join(f"{c:6d}" for c in hist))
    return "\n".join(lines)


def draw_person(image: np.ndarray, rows: PseudoLabelRows, i: int, skeleton: Skeleton) -> np.ndarray:
    """BGR crop around person ``i`` with the three skeletons drawn (image coordinates)."""
    out = image.copy()
    kept = rows.weights[i] > 0
    for field, colour in COLOURS.items():
        kpts = getattr(rows, field)[i]
        for a, b in skeleton.edge_indices:
            pa_, pb = kpts[a, :2], kpts[b, :2]
            if np.isfinite(pa_).all() and np.isfinite(pb).all():
                cv2.line(out, tuple(int(v) for v in pa_), tuple(int(v) for v in pb), colour, 1, cv2.LINE_AA)
        for j, (x, y, _) in enumerate(kpts):
            if np.isfinite(x) and np.isfinite(y):
                filled = -1 if (field != "kpts_corrected" or kept[j]) else 1
                cv2.circle(out, (int(x), int(y)), 3, colour, filled, cv2.LINE_AA)
    x, y, w, h = rows.bbox[i]
    pad = 0.25 * max(w, h)
    x0, y0 = int(max(0, x - pad)), int(max(0, y - pad))
    x1, y1 = int(min(out.shape[1], x + w + pad)), int(min(out.shape[0], y + h + pad))
    crop = out[y0:y1, x0:x1] if x1 > x0 and y1 > y0 else out
    scale = 256.0 / max(crop.shape[:2])
    return cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)


def render(store: PseudoLabelStore, epoch: int, n: int, images: Path, out: Path) -> list[Path]:
    """Write ``n`` PNGs (the first ``n`` persons of the epoch by pool position)."""
    rows = store.read_rows(epoch)
    skeleton = skeleton_for_num_joints(store.num_joints)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for i in range(min(n, len(rows))):
        path = images / rows.image_file[i]
        image = load_image(path)[..., ::-1].copy()  # RGB -> BGR for cv2
        png = out / f"epoch{epoch:04d}_person{int(rows.person_index[i]):08d}.png"
        if not cv2.imwrite(str(png), draw_person(image, rows, i, skeleton)):
            raise OSError(f"could not write {png}")
        written.append(png)
    log.info("rendered %d persons of epoch %d to %s", len(written), epoch, out)
    return written


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("store", help="the store directory (e.g. RUN/pseudo_labels or OUT/store)")
    parser.add_argument("--epoch", type=int, help="epoch to render (default: the last)")
    parser.add_argument("--render", type=int, default=0, metavar="N", help="draw N persons")
    parser.add_argument("--images", help="image directory of the pool (with --render)")
    parser.add_argument("--out", help="PNG directory (with --render)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    store = PseudoLabelStore.open(args.store)
    summary = store.summary()
    print(format_summary(summary, skeleton_for_num_joints(store.num_joints)), flush=True)
    if args.render:
        if not args.images or not args.out:
            parser.error("--render needs --images and --out")
        epoch = args.epoch if args.epoch is not None else summary["epochs"][-1]
        pngs = render(store, epoch, args.render, Path(args.images), Path(args.out))
        summary["rendered"] = [str(p) for p in pngs]
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main()
