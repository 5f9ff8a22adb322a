"""Rendering a synthetic scene: figures and occluders drawn into an ownership map, painted over a
cluttered background, and labelled from what is visible.

Every primitive (a limb segment, the head, an eye, an occluding box ...) writes its own id into a
per-pixel ownership map while it is drawn; later primitives overwrite earlier ones. Visibility
(COCO convention) comes from that map:

- v=0 and x=y=0: the joint lies outside the image (``0 <= x <= W-1``, ``0 <= y <= H-1``).
- v=2: the pixel under the joint belongs to one of the parts the joint sits on (e.g. an elbow
  on its upper arm or forearm, an eye on its eye mark, a hip on the torso or thigh).
- v=1: the pixel is covered by anything else (another person, an occluding object, the figure's
  own other limb). A figure facing away has its eyes and nose drawn and then covered by the back
  of the head, so they are labelled v=1 (labelled but occluded), at the position they would have
  in a front view; its ears stay visible.

A person's ``bbox`` is the tight box (COCO ``[x, y, w, h]``, pixel-index extents) of its visible
pixels, ``area`` their count; one with fewer than ``MIN_LABELLED_JOINTS`` labelled joints or a
tiny visible silhouette is not annotatable (it stays in the image, like unannotated people in
COCO). All coordinates are image space.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.data.synthetic.figure import (
    HAIR,
    HEAD,
    JOINT_PARTS,
    L_EAR,
    L_EYE,
    L_FARM,
    L_FOOT,
    L_HAND,
    L_SHIN,
    L_THIGH,
    L_UARM,
    LEFT_SHADE,
    MOUTH,
    NECK,
    NOSE,
    R_EAR,
    R_EYE,
    R_FARM,
    R_FOOT,
    R_HAND,
    R_SHIN,
    R_THIGH,
    R_UARM,
    TORSO,
    Figure,
    J,
    body_geometry,
    limb_like_colour,
    to_image,
)

MIN_LABELLED_JOINTS = 3
MIN_BOX_SIDE = 8  # px
MIN_AREA = 64  # visible pixels
_SHIFT = 4  # cv2 sub-pixel bits: coordinates are drawn with 1/16 px precision
_ONE = 1 << _SHIFT
OCCLUDER_PERSON = -1  # person index of occluding objects
_NO_PERSON = -2  # person index of the background (owner id 0)


class _Canvas:
    """An ownership map (H, W) int32 of primitive ids plus one row per primitive.

    Id 0 is the background. Each primitive records its person (``OCCLUDER_PERSON`` for
    objects), part code, RGB colour and texture (stripe amplitude, period px, angle, phase,
    noise amplitude).
    """

    def __init__(self, height: int, width: int) -> None:
        self.owner = np.zeros((height, width), dtype=np.int32)
        self.person: list[int] = [_NO_PERSON]
        self.part: list[int] = [0]
        self.colour: list[tuple[float, float, float]] = [(0.0, 0.0, 0.0)]
        self.texture: list[tuple[float, float, float, float, float]] = [(0.0, 1.0, 0.0, 0.0, 0.0)]

    def new_id(self, person: int, part: int, colour, texture=(0.0, 1.0, 0.0, 0.0, 4.0)) -> int:
        self.person.append(person)
        self.part.append(part)
        self.colour.append(tuple(float(c) for c in colour))
        self.texture.append(tuple(float(t) for t in texture))
        return len(self.person) - 1

    def segment(self, p0: np.ndarray, p1: np.ndarray, w0: float, w1: float, pid: int) -> None:
        """Tapered thick segment p0 -> p1 (image space) with round caps of widths w0, w1 px."""
        d = p1 - p0
        n = np.array([-d[1], d[0]]) / max(float(np.hypot(*d)), 1e-6)
        quad = np.stack([p0 + n * w0 / 2, p1 + n * w1 / 2, p1 - n * w1 / 2, p0 - n * w0 / 2])
        cv2.fillConvexPoly(self.owner, _fix(quad), pid, cv2.LINE_8, _SHIFT)
        self.disc(p0, w0 / 2, pid)
        self.disc(p1, w1 / 2, pid)

    def disc(self, c: np.ndarray, r: float, pid: int) -> None:
        cv2.circle(
            self.owner, tuple(_fix(c)), max(int(round(r * _ONE)), _ONE // 2), pid, -1, cv2.LINE_8, _SHIFT
        )

    def ellipse(self, c, axes, angle_deg: float, pid: int, start: float = 0.0, end: float = 360.0) -> None:
        ax = (max(int(round(axes[0] * _ONE)), _ONE // 2), max(int(round(axes[1] * _ONE)), _ONE // 2))
        cv2.ellipse(
            self.owner, tuple(_fix(np.asarray(c))), ax, angle_deg, start, end, pid, -1, cv2.LINE_8, _SHIFT
        )

    def polygon(self, pts: np.ndarray, pid: int) -> None:
        cv2.fillPoly(self.owner, [_fix(pts)], pid, cv2.LINE_8, _SHIFT)


def _fix(pts: np.ndarray) -> np.ndarray:
    """Image-space float points -> cv2 fixed-point int32 (``_SHIFT`` fractional bits)."""
    return np.round(np.asarray(pts, dtype=np.float64) * _ONE).astype(np.int32)


def _shade(colour, factor: float) -> tuple[float, float, float]:
    return tuple(float(c) * factor for c in colour)


def _draw_figure(canvas: _Canvas, fig: Figure, person: int, left_shade: float = LEFT_SHADE) -> np.ndarray:
    """Draw ``fig`` back to front into ``canvas``, its left limbs ``left_shade`` times as bright as
    the right ones; returns its (17, 2) image-space joints."""
    body = body_geometry(fig)
    kp = to_image(fig, body.joints)
    h = fig.height_px
    wb = fig.widths * h
    app = fig.appearance
    head_r = fig.lengths[6] * h
    stripes = (app.stripe_amp, app.stripe_period, app.stripe_angle, 0.0, 5.0)
    plain = (0.0, 1.0, 0.0, 0.0, 3.0)

    def limb_colour(cloth, bare: bool, left: bool):
        base = app.skin if bare else cloth
        return _shade(base, left_shade if left else 1.0)

    def arm(k: int) -> None:
        side, left = ("left", True) if k == 0 else ("right", False)
        parts = (L_UARM, L_FARM, L_HAND) if left else (R_UARM, R_FARM, R_HAND)
        sh, el, wr = kp[J[f"{side}_shoulder"]], kp[J[f"{side}_elbow"]], kp[J[f"{side}_wrist"]]
        tex = stripes if not app.short_sleeves else plain
        canvas.segment(
            sh,
            el,
            0.055 * wb,
            0.045 * wb,
            canvas.new_id(person, parts[0], limb_colour(app.shirt, False, left), tex),
        )
        farm = canvas.new_id(person, parts[1], limb_colour(app.shirt, app.short_sleeves, left), tex)
        canvas.segment(el, wr, 0.045 * wb, 0.036 * wb, farm)
        hand_dir = (wr - el) / max(float(np.hypot(*(wr - el))), 1e-6)
        canvas.disc(
            wr + hand_dir * 0.02 * h,
            0.028 * wb,
            canvas.new_id(person, parts[2], limb_colour(app.skin, True, left), plain),
        )

    def leg(k: int) -> None:
        side, left = ("left", True) if k == 0 else ("right", False)
        parts = (L_THIGH, L_SHIN, L_FOOT) if left else (R_THIGH, R_SHIN, R_FOOT)
        hp, kn, an = kp[J[f"{side}_hip"]], kp[J[f"{side}_knee"]], kp[J[f"{side}_ankle"]]
        canvas.segment(
            hp,
            kn,
            0.085 * wb,
            0.062 * wb,
            canvas.new_id(person, parts[0], limb_colour(app.pants, False, left), plain),
        )
        shin = canvas.new_id(person, parts[1], limb_colour(app.pants, app.shorts, left), plain)
        canvas.segment(kn, an, 0.062 * wb, 0.045 * wb, shin)
        foot = to_image(fig, body.feet[k])
        canvas.segment(
            an,
            foot,
            0.04 * wb,
            0.035 * wb,
            canvas.new_id(person, parts[2], _shade(app.shoes, left_shade if left else 1.0), plain),
        )

    def torso() -> None:
        ls, rs, lh, rh = (kp[J[n]] for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip"))
        sh_c, hip_c = (ls + rs) / 2, (lh + rh) / 2
        axis = sh_c - hip_c
        lat = np.array([axis[1], -axis[0]]) / max(float(np.hypot(*axis)), 1e-6)
        sh_half = max(float(np.hypot(*(ls - rs))) / 2, 0.07 * h) + 0.02 * wb
        hip_half = max(float(np.hypot(*(lh - rh))) / 2, 0.07 * h) + 0.03 * wb
        quad = np.stack(
            [sh_c + lat * sh_half, hip_c + lat * hip_half, hip_c - lat * hip_half, sh_c - lat * sh_half]
        )
        canvas.polygon(quad, canvas.new_id(person, TORSO, app.shirt, stripes))
        neck_top = to_image(fig, body.neck_top)
        canvas.segment(sh_c, neck_top, 0.05 * wb, 0.045 * wb, canvas.new_id(person, NECK, app.skin, plain))

    def face_marks() -> None:
        eye_r = max(0.16 * head_r, 0.8)
        dark = (25.0, 20.0, 20.0)
        canvas.disc(kp[J["left_eye"]], eye_r, canvas.new_id(person, L_EYE, dark, plain))
        canvas.disc(kp[J["right_eye"]], eye_r, canvas.new_id(person, R_EYE, dark, plain))
        canvas.disc(
            kp[J["nose"]], max(0.14 * head_r, 0.8), canvas.new_id(person, NOSE, _shade(app.skin, 0.55), plain)
        )
        mouth = to_image(
            fig,
            body.head_center
            + fig.lengths[6]
            * (0.5 * body.head_down + 0.45 * fig.head_yaw * body.head_lat * (1 if fig.facing_camera else -1)),
        )
        canvas.ellipse(
            mouth,
            (0.28 * head_r, 0.08 * head_r),
            _angle_deg(fig, body.head_lat),
            canvas.new_id(person, MOUTH, (150.0, 40.0, 50.0), plain),
        )

    def head() -> None:
        centre = to_image(fig, body.head_center)
        ang = _angle_deg(fig, body.head_lat)
        ear_col = _shade(app.skin, 0.85)
        canvas.disc(kp[J["left_ear"]], 0.22 * head_r, canvas.new_id(person, L_EAR, ear_col, plain))
        canvas.disc(kp[J["right_ear"]], 0.22 * head_r, canvas.new_id(person, R_EAR, ear_col, plain))
        if not fig.facing_camera:
            face_marks()  # drawn, then covered by the back of the head: v=1
        canvas.ellipse(centre, (0.82 * head_r, head_r), ang, canvas.new_id(person, HEAD, app.skin, plain))
        hair = canvas.new_id(person, HAIR, app.hair, (0.0, 1.0, 0.0, 0.0, 8.0))
        if fig.facing_camera:
            canvas.ellipse(centre, (0.86 * head_r, 1.04 * head_r), ang, hair, 180.0, 360.0)
            face_marks()
        else:
            canvas.ellipse(centre, (0.86 * head_r, 1.04 * head_r), ang, hair, 150.0, 390.0)
            canvas.ellipse(centre, (0.84 * head_r, 0.9 * head_r), ang, hair)

    legs = (1, 0) if fig.legs_front_first else (0, 1)
    for k in (0, 1):
        if not fig.arms_in_front[k]:
            arm(k)
    for k in legs:
        leg(k)
    torso()
    head()
    for k in (0, 1):
        if fig.arms_in_front[k]:
            arm(k)
    return kp


def _angle_deg(fig: Figure, lat_body: np.ndarray) -> float:
    """cv2 ellipse angle (degrees) of a body-frame lateral axis after the figure transform."""
    d = to_image(fig, lat_body) - to_image(fig, np.zeros(2))
    return float(np.degrees(np.arctan2(d[1], d[0])))


@dataclass(frozen=True)
class Occluder:
    """An object drawn in front of what precedes it in the scene order (image space).

    ``kind`` is ``"box"``, ``"ellipse"`` or ``"stick"``; ``center`` (x, y), ``size`` (w, h) px
    (for a stick: length, thickness), ``angle`` rad, ``colour`` RGB, ``stripe_amp`` texture.
    """

    kind: str
    center: tuple[float, float]
    size: tuple[float, float]
    angle: float = 0.0
    colour: tuple[float, float, float] = (128.0, 128.0, 128.0)
    stripe_amp: float = 0.0


@dataclass(frozen=True)
class SyntheticPerson:
    """One rendered person.

    ``kpts_img`` (17, 3) float32 (x, y, v) image space, COCO visibility, x=y=0 where v=0;
    ``bbox_xywh`` (4,) float32 tight box of the visible pixels (zeros if none); ``area`` visible
    pixel count; ``num_keypoints`` count of v>0.
    """

    kpts_img: np.ndarray
    bbox_xywh: np.ndarray
    area: int

    @property
    def num_keypoints(self) -> int:
        return int((self.kpts_img[:, 2] > 0).sum())

    @property
    def annotatable(self) -> bool:
        w, h = self.bbox_xywh[2:]
        return (
            self.num_keypoints >= MIN_LABELLED_JOINTS and min(w, h) >= MIN_BOX_SIDE and self.area >= MIN_AREA
        )


def _draw_occluder(canvas: _Canvas, occ: Occluder, rng: np.random.Generator) -> None:
    tex = (occ.stripe_amp, float(rng.uniform(3, 10)), float(rng.uniform(0, np.pi)), 0.0, 6.0)
    pid = canvas.new_id(OCCLUDER_PERSON, 0, occ.colour, tex)
    c = np.asarray(occ.center, dtype=np.float64)
    if occ.kind == "ellipse":
        canvas.ellipse(c, (occ.size[0] / 2, occ.size[1] / 2), float(np.degrees(occ.angle)), pid)
        return
    d = np.array([np.cos(occ.angle), -np.sin(occ.angle)])
    if occ.kind == "stick":
        half = d * occ.size[0] / 2
        canvas.segment(c - half, c + half, occ.size[1], occ.size[1] * 0.8, pid)
        return
    n = np.array([-d[1], d[0]])
    w, h = occ.size[0] / 2, occ.size[1] / 2
    canvas.polygon(
        np.stack([c + d * w + n * h, c - d * w + n * h, c - d * w - n * h, c + d * w - n * h]), pid
    )


def _background(rng: np.random.Generator, image_size: tuple[int, int], difficulty: float = 1.0) -> np.ndarray:
    """(H, W, 3) float32 RGB clutter: gradient, smooth noise, shapes, stripes, limb-like sticks.

    ``difficulty`` in [0, 1] scales the noise amplitude and the number of shapes and sticks.
    """
    d = float(np.clip(difficulty, 0.0, 1.0))
    width, height = image_size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    a = rng.uniform(0, 2 * np.pi)
    t = (np.cos(a) * xx + np.sin(a) * yy) / max(width, height)
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    img = c0 + (t - t.min())[..., None] * (c1 - c0)
    cells = int(rng.integers(3, 24))
    noise = rng.normal(0, 1, (cells, max(cells * width // height, 2), 3)).astype(np.float32)
    img += cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC) * rng.uniform(5, 45) * d
    img = np.ascontiguousarray(img, dtype=np.float32)
    if rng.random() < 0.4:  # stripes / tiles
        period = rng.uniform(6, 40)
        b = rng.uniform(0, np.pi)
        img += (np.sin((np.cos(b) * xx + np.sin(b) * yy) * 2 * np.pi / period) * rng.uniform(10, 50))[
            ..., None
        ]
    for _ in range(int(round(int(rng.integers(4, 18)) * d))):
        colour = tuple(float(v) for v in rng.uniform(0, 255, 3))
        c = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        kind = rng.integers(4)
        if kind == 0:
            size = rng.integers(4, height // 3, 2)
            cv2.rectangle(img, c, (c[0] + int(size[0]), c[1] + int(size[1])), colour, -1)
        elif kind == 1:
            axes = (int(rng.integers(3, height // 5)), int(rng.integers(3, height // 5)))
            cv2.ellipse(img, c, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
        elif kind == 2:
            pts = (np.asarray(c) + rng.normal(0, height / 8, (int(rng.integers(3, 7)), 2))).astype(np.int32)
            cv2.fillPoly(img, [pts], colour)
        else:
            end = (c[0] + int(rng.normal(0, width / 3)), c[1] + int(rng.normal(0, height / 3)))
            cv2.line(img, c, end, colour, int(rng.integers(1, 5)))
    for _ in range(int(round(int(rng.integers(1, 7)) * d))):  # limb-like distractors: jointed sticks
        p = rng.uniform((0, 0), (width, height))
        colour = limb_like_colour(rng)
        thick = int(max(2, rng.uniform(0.02, 0.06) * height))
        ang = rng.uniform(0, 2 * np.pi)
        for _seg in range(int(rng.integers(1, 3))):
            q = p + rng.uniform(0.08, 0.2) * height * np.array([np.cos(ang), np.sin(ang)])
            cv2.line(img, tuple(int(v) for v in p), tuple(int(v) for v in q), colour, thick)
            cv2.circle(img, tuple(int(v) for v in q), thick // 2, colour, -1)
            p, ang = q, ang + rng.uniform(-1.5, 1.5)
    return img


def _compose(canvas: _Canvas, background: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Paint every owned pixel with its primitive's colour + stripes + noise. (H, W, 3) float32."""
    img = background
    fg = canvas.owner > 0
    ys, xs = np.nonzero(fg)
    ids = canvas.owner[ys, xs]
    colour = np.asarray(canvas.colour, dtype=np.float32)[ids]
    amp, period, angle, phase, noise_amp = np.asarray(canvas.texture, dtype=np.float32)[ids].T
    proj = xs * np.cos(angle) + ys * np.sin(angle)
    shade = amp * np.sin(proj * (2 * np.pi) / period + phase)
    shade += rng.normal(0, 1, ids.shape[0]).astype(np.float32) * noise_amp
    img[ys, xs] = colour + shade[:, None]
    return img


def _photometric(img: np.ndarray, rng: np.random.Generator, difficulty: float = 1.0) -> np.ndarray:
    """Lighting gradient, colour cast, contrast, blur, sensor noise, JPEG artefacts -> uint8
    (noise and blur scaled by ``difficulty``)."""
    d = float(np.clip(difficulty, 0.0, 1.0))
    height, width = img.shape[:2]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    a = rng.uniform(0, 2 * np.pi)
    t = (np.cos(a) * xx + np.sin(a) * yy) / max(width, height)
    gain = 1.0 + rng.uniform(-0.35, 0.35) * (t - t.mean())
    img = img * gain[..., None] * rng.uniform(0.85, 1.15, 3).astype(np.float32)
    img = (img - 128.0) * rng.uniform(0.7, 1.2) + 128.0 + rng.uniform(-30, 30)
    if rng.random() < 0.5 * d:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.4, 1.3))
    img += rng.normal(0, rng.uniform(0, 9) * d, img.shape).astype(np.float32)
    out = np.clip(img, 0, 255).astype(np.uint8)
    if rng.random() < 0.35:
        q = int(rng.integers(25, 75))
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, q])
        out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if ok else out
    return out


def _label(canvas: _Canvas, kp: np.ndarray, person: int, image_size: tuple[int, int]) -> SyntheticPerson:
    """Visibility, visible box and area of ``person`` from the ownership map."""
    width, height = image_size
    person_of = np.asarray(canvas.person, dtype=np.int32)
    part_of = np.asarray(canvas.part, dtype=np.int32)
    inside = (kp[:, 0] >= 0) & (kp[:, 0] <= width - 1) & (kp[:, 1] >= 0) & (kp[:, 1] <= height - 1)
    xi = np.clip(np.round(kp[:, 0]).astype(np.int64), 0, width - 1)
    yi = np.clip(np.round(kp[:, 1]).astype(np.int64), 0, height - 1)
    owner = canvas.owner[yi, xi]
    own = (person_of[owner] == person) & JOINT_PARTS[np.arange(len(kp)), part_of[owner]]
    v = np.where(inside, np.where(own, 2, 1), 0)
    kpts = np.zeros((len(kp), 3), dtype=np.float32)
    kpts[inside, :2] = np.round(kp[inside], 2)
    kpts[:, 2] = v
    ys, xs = np.nonzero(person_of[canvas.owner] == person)
    if len(xs) == 0:
        return SyntheticPerson(kpts, np.zeros(4, dtype=np.float32), 0)
    x0, y0 = int(xs.min()), int(ys.min())
    box = np.array([x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1], dtype=np.float32)
    return SyntheticPerson(kpts, box, int(len(xs)))


def render_scene(
    rng: np.random.Generator,
    image_size: tuple[int, int],
    items: list[Figure | Occluder],
    background: np.ndarray | None = None,
    photometric: bool = True,
    difficulty: float = 1.0,
    left_shade: float = LEFT_SHADE,
) -> tuple[np.ndarray, list[SyntheticPerson]]:
    """Draw ``items`` back to front (later items cover earlier ones) and label every figure.

    Args:
        rng: texture noise, background and photometric randomness.
        image_size: (W, H).
        items: figures and occluders in depth order.
        background: (H, W, 3) float32 RGB; a random cluttered one when None.
        photometric: apply lighting, blur, noise and JPEG artefacts.
        difficulty: in [0, 1], scales the background clutter and the photometric noise.
        left_shade: brightness of each figure's left limbs relative to its right ones (the
            left/right cue; lower is a stronger cue).

    Returns:
        image uint8 RGB (H, W, 3) and one ``SyntheticPerson`` per Figure, in item order
        (unfiltered: see ``SyntheticPerson.annotatable``).
    """
    width, height = image_size
    if background is None:
        bg = _background(rng, image_size, difficulty)
    else:
        bg = background.astype(np.float32, copy=True)
    canvas = _Canvas(height, width)
    joints = []
    for item in items:
        if isinstance(item, Figure):
            joints.append(_draw_figure(canvas, item, len(joints), left_shade))
        else:
            _draw_occluder(canvas, item, rng)
    img = _compose(canvas, bg, rng)
    img = _photometric(img, rng, difficulty) if photometric else np.clip(img, 0, 255).astype(np.uint8)
    return img, [_label(canvas, kp, p, image_size) for p, kp in enumerate(joints)]
