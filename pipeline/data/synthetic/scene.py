"""Sampling a synthetic scene: 1..N figures plus occluders in depth order, and one random image.

``sample_scene`` draws the items (bigger, nearer people tend to be in front; most occluders aim
at a joint); ``render_image`` renders them (:func:`pipeline.data.synthetic.render.render_scene`)
and keeps the annotatable persons. Image size is (W, H); coordinates are image space.
"""

from __future__ import annotations

import numpy as np

from pipeline.data.skeletons import COCO17
from pipeline.data.synthetic.figure import (
    LEFT_SHADE,
    Figure,
    figure_keypoints,
    limb_like_colour,
    sample_figure,
)
from pipeline.data.synthetic.render import Occluder, SyntheticPerson, render_scene

DEFAULT_IMAGE_SIZE: tuple[int, int] = (320, 256)  # (W, H)


def _sample_occluder(
    rng: np.random.Generator, image_size: tuple[int, int], near: np.ndarray | None
) -> Occluder:
    """A random object; centred near ``near`` (x, y) when given (to hide a joint)."""
    width, height = image_size
    centre = (
        near + rng.normal(0, 0.03 * height, 2) if near is not None else rng.uniform((0, 0), (width, height))
    )
    kind = str(rng.choice(["box", "ellipse", "stick"], p=[0.45, 0.3, 0.25]))
    if kind == "stick":
        size = (float(rng.uniform(0.1, 0.35) * height), float(rng.uniform(0.025, 0.06) * height))
        colour = limb_like_colour(rng)
    else:
        size = tuple(float(v) for v in rng.uniform(0.06, 0.3, 2) * height)
        colour = tuple(float(v) for v in rng.uniform(0, 255, 3))
    return Occluder(
        kind=kind,
        center=(float(centre[0]), float(centre[1])),
        size=size,
        angle=float(rng.uniform(0, np.pi)),
        colour=colour,
        stripe_amp=float(rng.uniform(0, 50)) if rng.random() < 0.5 else 0.0,
    )


def sample_scene(
    rng: np.random.Generator, image_size: tuple[int, int], max_people: int = 3, difficulty: float = 1.0
) -> list[Figure | Occluder]:
    """1..``max_people`` random figures plus 0-3 occluders (fewer at lower ``difficulty``), in
    depth order (back to front)."""
    figures: list[Figure] = [
        sample_figure(rng, image_size, difficulty) for _ in range(int(rng.integers(1, max_people + 1)))
    ]
    figures.sort(key=lambda f: f.height_px)  # bigger (nearer) people tend to be in front
    items: list[Figure | Occluder] = list(figures)
    num_occluders = int(rng.choice([0, 1, 2, 3], p=[0.35, 0.35, 0.2, 0.1]))
    for _ in range(int(round(num_occluders * float(np.clip(difficulty, 0.0, 1.0))))):
        near = None
        if rng.random() < 0.7:  # aim at a random joint of a random figure
            fig = figures[int(rng.integers(len(figures)))]
            near = figure_keypoints(fig)[int(rng.integers(COCO17.num_joints))]
        items.insert(int(rng.integers(1, len(items) + 1)), _sample_occluder(rng, image_size, near))
    return items


def render_image(
    rng: np.random.Generator,
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
    max_people: int = 3,
    difficulty: float = 1.0,
    left_shade: float = LEFT_SHADE,
) -> tuple[np.ndarray, list[SyntheticPerson]]:
    """One random image: uint8 RGB (H, W, 3) and its annotatable persons (image space).

    ``difficulty`` in [0, 1] (1 = the default set) scales clutter, occluders, truncation,
    rotation and sensor noise; see :func:`sample_figure`, :func:`_background`. ``left_shade``
    is the brightness of the figures' left limbs relative to their right ones (the left/right
    cue); it changes colours only, so the same rng gives the same scene and labels.
    """
    items = sample_scene(rng, image_size, max_people, difficulty)
    img, persons = render_scene(rng, image_size, items, difficulty=difficulty, left_shade=left_shade)
    return img, [p for p in persons if p.annotatable]
