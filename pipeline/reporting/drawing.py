"""Drawings of pseudo labels: teacher A's, teacher B's and PCM's skeletons over an image.

Keypoints are in image coordinates (x = column, y = row), as the pseudo-label store holds them.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.data.skeletons import skeleton_for_num_joints
from pipeline.store.pseudo_label_store import PseudoLabelRows

# field -> (legend, BGR colour)
LAYERS = {
    "kpts_a": ("teacher A", (255, 90, 0)),
    "kpts_b": ("teacher B", (0, 210, 0)),
    "kpts_corrected": ("PCM", (0, 0, 255)),
}


def joint_names_and_edges(num_joints: int) -> tuple[list[str], list[tuple[int, int]]]:
    """Joint names and limb index pairs of the default skeleton for K joints (none if unknown)."""
    try:
        skeleton = skeleton_for_num_joints(num_joints)
    except ValueError:
        return [f"joint_{k}" for k in range(num_joints)], []
    return list(skeleton.joint_names), list(skeleton.edge_indices)


def draw_persons(
    image_bgr: np.ndarray, rows: PseudoLabelRows, persons: np.ndarray, edges: list[tuple[int, int]]
) -> np.ndarray:
    """A copy of the (H, W, 3) BGR image with, for each row in ``persons``, the three skeletons
    (image-space keypoints) drawn and a colour legend in the top-left corner."""
    out = image_bgr.copy()
    size = max(out.shape[:2])
    thickness, radius = max(1, round(size / 320)), max(2, round(size / 160))
    for i in persons:
        kept = rows.weights[i] > 0
        for field, (_, colour) in LAYERS.items():
            xy = getattr(rows, field)[i][:, :2]
            ok = np.isfinite(xy).all(axis=1)
            for a, b in edges:
                if ok[a] and ok[b]:
                    start, end = tuple(int(round(v)) for v in xy[a]), tuple(int(round(v)) for v in xy[b])
                    cv2.line(out, start, end, colour, thickness, cv2.LINE_AA)
            for j in np.flatnonzero(ok):
                filled = -1 if field != "kpts_corrected" or kept[j] else thickness
                centre = (int(round(xy[j, 0])), int(round(xy[j, 1])))
                cv2.circle(out, centre, radius, colour, filled, cv2.LINE_AA)
    scale, line = max(0.4, size / 1000), max(12, round(size / 45))
    font = cv2.FONT_HERSHEY_SIMPLEX
    width = max(cv2.getTextSize(label, font, scale, thickness)[0][0] for label, _ in LAYERS.values())
    cv2.rectangle(out, (0, 0), (width + 12, 3 * line + 8), (0, 0, 0), -1)  # legend background
    for row, (label, colour) in enumerate(LAYERS.values()):
        y = (row + 1) * line + 2
        cv2.putText(out, label, (6, y), font, scale, colour, thickness, cv2.LINE_AA)
    return out
