"""The demo's picture: AP against step for two runs, and PCM's labels drawn on pool persons.

``ap_curve`` reads a run's ``metrics.jsonl``; ``label_overlays`` crops pool persons from images
and draws teacher A's, teacher B's and PCM's skeletons (image coordinates, from the pseudo-label
store); ``write_demo_figure`` puts both into one PNG with matplotlib (Agg backend, no display).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np

from pipeline.data.images import load_image
from pipeline.reporting.drawing import draw_persons, joint_names_and_edges
from pipeline.store.pseudo_label_store import PseudoLabelStore

log = logging.getLogger(__name__)


def ap_curve(run_dir: str | Path, network: str = "student") -> list[tuple[int, float]]:
    """``[(step, AP), ...]`` of ``network`` from ``run_dir/metrics.jsonl`` (every evaluation the
    run logged, in step order; the last one is the final evaluation)."""
    points: dict[int, float] = {}
    path = Path(run_dir) / "metrics.jsonl"
    with open(path) as f:
        for line in f:
            row = json.loads(line)
            key = f"eval/{network}/AP"
            if key in row:
                points[int(row["step"])] = float(row[key])
    return sorted(points.items())


def label_overlays(
    store_root: str | Path, images: str | Path, n: int = 4, size: int = 192, epoch: int | None = None
) -> list[np.ndarray]:
    """``n`` RGB crops (``size`` x ``size``) of pool persons with their three skeletons drawn.

    Reads the rows of ``epoch`` (default: the last epoch in the store) and takes the first ``n``
    persons by pool position whose PCM label keeps at least half of the joints. Each crop is the
    person's box, enlarged by 25 % and squared, resized to ``size``.
    """
    store = PseudoLabelStore.open(store_root)
    epochs = store.epochs()
    if not epochs:
        raise ValueError(f"{store_root}: the pseudo-label store has no rows to draw")
    rows = store.read_rows(epochs[-1] if epoch is None else epoch)
    _, edges = joint_names_and_edges(store.num_joints)
    order = np.argsort(rows.person_index)
    crops = []
    for i in order:
        if (rows.weights[i] > 0).mean() < 0.5:
            continue
        image = load_image(Path(images) / rows.image_file[i])  # RGB
        drawn = draw_persons(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), rows, np.array([i]), edges)
        x, y, w, h = (float(v) for v in rows.bbox[i])
        side = 1.25 * max(w, h, 1.0)
        cx, cy = x + w / 2, y + h / 2
        src = np.float32([[cx - side / 2, cy - side / 2], [cx + side / 2, cy - side / 2], [cx, cy]])
        dst = np.float32([[0, 0], [size, 0], [size / 2, size / 2]])
        crop = cv2.warpAffine(drawn, cv2.getAffineTransform(src, dst), (size, size), borderValue=(0, 0, 0))
        crops.append(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB))
        if len(crops) == n:
            break
    return crops


def write_demo_figure(
    out_png: str | Path,
    curves: dict[str, list[tuple[int, float]]],
    overlays: list[np.ndarray],
    title: str,
    lr_drop_steps: tuple[int, ...] = (),
) -> Path:
    """One PNG: AP against optimizer step for each named curve (left) and the overlays (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = max(1, (len(overlays) + 1) // 2)
    fig = plt.figure(figsize=(6 + 2.2 * cols, 4.4), dpi=110)
    grid = fig.add_gridspec(2, 2 + cols, width_ratios=[1.5, 1.5] + [1] * cols)
    ax = fig.add_subplot(grid[:, :2])
    for name, points in curves.items():
        if points:
            steps, aps = zip(*points)
            ax.plot(steps, aps, marker="o", markersize=3, label=name)
    for s in lr_drop_steps:
        ax.axvline(s, color="0.7", linestyle=":", linewidth=1)
    ax.set_xlabel("optimizer step (dotted: LR x0.1)")
    ax.set_ylabel("OKS AP on the validation set")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    for k, crop in enumerate(overlays):
        sub = fig.add_subplot(grid[k % 2, 2 + k // 2])
        sub.imshow(crop)
        sub.set_axis_off()
    if overlays:
        fig.text(
            1.0 - 0.5 * cols / (3 + cols),
            0.01,
            "pool persons: teacher A (blue), B (green), PCM label (red; hollow: masked)",
            ha="center",
            fontsize=7,
        )
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png)
    plt.close(fig)
    log.info("figure written: %s", out_png)
    return out_png
