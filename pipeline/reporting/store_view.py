"""A pseudo-label store for people: its summary as text, and images with the skeletons drawn.

``format_summary`` lays out :meth:`PseudoLabelStore.summary` (rows, epochs, kept joints, a PI
histogram per joint); ``render_images`` draws every person of an epoch's first images: teacher A
in blue, teacher B in green, PCM's corrected label in red (joints PCM dropped hollow), at the
original image size (keypoints in image coordinates, as the store holds them).
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from pipeline.data.images import load_image
from pipeline.reporting.drawing import draw_persons, joint_names_and_edges
from pipeline.store.pseudo_label_store import PseudoLabelStore

log = logging.getLogger(__name__)


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


def render_images(store: PseudoLabelStore, epoch: int, n: int, images: Path, out: Path) -> list[Path]:
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
