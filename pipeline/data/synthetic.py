"""Synthetic people: articulated 2D figures with COCO-17 keypoints on cluttered backgrounds.

The embedded default data set for the demo and the tests. Every image is drawn from
``np.random.default_rng([seed, image_id])`` only, so a set is byte-identical for a seed and
images can be generated in any order, in parallel, or resumed.

What a figure is:
    A kinematic model (pelvis -> spine -> neck -> head; shoulders -> elbows -> wrists;
    hips -> knees -> ankles) with random proportions, build, pose (standing, walking, arms
    raised, sitting, bending, random), lateral squeeze (a turned body), in-plane rotation
    (rarely lying or upside down), size from ~25 % to ~95 % of the image height. Limbs are
    tapered segments, the head an ellipse with eyes, nose, mouth and ears drawn exactly at the
    face keypoints.

Left and right are inferable from pixels: the figure's *left* limbs (arm, hand, leg, foot) are
always drawn in a darker shade (x0.6) of their material than the right ones, and a figure
facing the camera shows its face (skin, eyes, nose, mouth) while one facing away shows hair.
So in a front view the darker limbs are on the image right, in a back view on the image left.

Visibility (COCO convention), computed from a per-pixel ownership map written while drawing
(every primitive writes its own id; later primitives overwrite earlier ones):
    - v=0 and x=y=0: the joint lies outside the image (``0 <= x <= W-1``, ``0 <= y <= H-1``).
    - v=2: the pixel under the joint belongs to one of the parts the joint sits on (e.g. an
      elbow on its upper arm or forearm, an eye on its eye mark, a hip on the torso or thigh).
    - v=1: the pixel is covered by anything else (another person, an occluding object, the
      figure's own other limb). A figure facing away has its eyes and nose drawn and then
      covered by the back of the head, so they are labelled v=1 (labelled but occluded), at
      the position they would have in a front view; its ears stay visible.

Annotations: ``bbox`` is the tight box (COCO ``[x, y, w, h]``, pixel-index extents) of the
person's visible pixels, ``area`` their count; persons with fewer than
``MIN_LABELLED_JOINTS`` labelled joints or a tiny visible silhouette are not annotated (they
stay in the image, like unannotated people in COCO). All coordinates are image space.
"""

from __future__ import annotations

import logging
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from pipeline.data.skeletons import COCO17
from pipeline.store.atomic_files import write_json_atomic

log = logging.getLogger(__name__)

DEFAULT_IMAGE_SIZE: tuple[int, int] = (320, 256)  # (W, H)
JPEG_QUALITY = 92
MIN_LABELLED_JOINTS = 3
MIN_BOX_SIDE = 8  # px
MIN_AREA = 64  # visible pixels
_SHIFT = 4  # cv2 sub-pixel bits: coordinates are drawn with 1/16 px precision
_ONE = 1 << _SHIFT

# Part codes (what a primitive is); each joint is visible only on some of them.
TORSO, NECK, HEAD, HAIR = 1, 2, 3, 4
L_EYE, R_EYE, NOSE, MOUTH, L_EAR, R_EAR = 5, 6, 7, 8, 9, 10
L_UARM, L_FARM, L_HAND, R_UARM, R_FARM, R_HAND = 11, 12, 13, 14, 15, 16
L_THIGH, L_SHIN, L_FOOT, R_THIGH, R_SHIN, R_FOOT = 17, 18, 19, 20, 21, 22
NUM_PARTS = 23
OCCLUDER_PERSON = -1  # person index of occluding objects
_NO_PERSON = -2  # person index of the background (owner id 0)

_JOINT_PARTS: dict[str, tuple[int, ...]] = {
    "nose": (NOSE,),
    "left_eye": (L_EYE,),
    "right_eye": (R_EYE,),
    "left_ear": (L_EAR,),
    "right_ear": (R_EAR,),
    "left_shoulder": (TORSO, L_UARM),
    "right_shoulder": (TORSO, R_UARM),
    "left_elbow": (L_UARM, L_FARM),
    "right_elbow": (R_UARM, R_FARM),
    "left_wrist": (L_FARM, L_HAND),
    "right_wrist": (R_FARM, R_HAND),
    "left_hip": (TORSO, L_THIGH),
    "right_hip": (TORSO, R_THIGH),
    "left_knee": (L_THIGH, L_SHIN),
    "right_knee": (R_THIGH, R_SHIN),
    "left_ankle": (L_SHIN, L_FOOT),
    "right_ankle": (R_SHIN, R_FOOT),
}


def _joint_part_table() -> np.ndarray:
    """(K, NUM_PARTS) bool: joint k is visible when its pixel is owned by part p."""
    table = np.zeros((COCO17.num_joints, NUM_PARTS), dtype=bool)
    for name, parts in _JOINT_PARTS.items():
        table[COCO17.index(name), list(parts)] = True
    return table


JOINT_PARTS = _joint_part_table()
J = {name: i for i, name in enumerate(COCO17.joint_names)}

_SKIN_TONES = np.array(
    [[255, 224, 196], [241, 194, 160], [224, 172, 130], [198, 134, 90], [141, 85, 54], [96, 60, 40]],
    dtype=np.float32,
)
_HAIR_COLOURS = np.array(
    [[20, 16, 14], [60, 40, 25], [110, 75, 40], [200, 170, 110], [150, 150, 150], [120, 40, 20]],
    dtype=np.float32,
)
LEFT_SHADE = 0.6  # left limbs are drawn this much darker: the left/right cue


# --------------------------------------------------------------------------- figures


@dataclass(frozen=True)
class Appearance:
    """RGB colours (0..255) and clothing texture of one figure."""

    skin: tuple[float, float, float]
    hair: tuple[float, float, float]
    shirt: tuple[float, float, float]
    pants: tuple[float, float, float]
    shoes: tuple[float, float, float]
    short_sleeves: bool = False
    shorts: bool = False
    stripe_amp: float = 0.0  # brightness amplitude of shirt stripes (0..255)
    stripe_period: float = 6.0  # px
    stripe_angle: float = 0.0  # rad


@dataclass(frozen=True)
class Figure:
    """One articulated person, fully specified (angles in radians, lengths in person heights).

    Attributes:
        root_img: (x, y) pelvis position in image space.
        height_px: standing height in pixels (before squeeze/foreshortening).
        rotation: in-plane rotation of the whole figure, counter-clockwise on screen.
        facing_camera: True: face visible and the figure's left on the image right.
        squeeze: lateral foreshortening of shoulders/hips (1 = frontal, 0.3 = nearly side-on).
        head_yaw: face shift inside the head, -1..1 (towards the figure's left > 0).
        spine: tilt of the torso from vertical (> 0: the top leans to image -x); neck: extra
            head tilt (same sense).
        pelvis: tilt of the hip line.
        arms: ((abduction, elbow flex) left, (...) right); abduction 0 = hanging, pi/2 =
            horizontal outwards, pi = raised, < 0 = crossing the body; flex signed.
        legs: ((thigh angle, knee flex) left, (...) right), same convention.
        lengths: upper arm, forearm, thigh, shin, torso, neck, head radius, shoulder width,
            hip width (in person heights, already foreshortened where wanted).
        widths: thickness scale of limbs (body build).
        arms_in_front: per arm (left, right), drawn over the torso and head.
        legs_front_first: draw the right leg before the left one (which leg is in front).
        appearance: colours.
    """

    root_img: tuple[float, float]
    height_px: float
    rotation: float = 0.0
    facing_camera: bool = True
    squeeze: float = 1.0
    head_yaw: float = 0.0
    spine: float = 0.0
    neck: float = 0.0
    pelvis: float = 0.0
    arms: tuple[tuple[float, float], tuple[float, float]] = ((0.2, 0.2), (0.2, 0.2))
    legs: tuple[tuple[float, float], tuple[float, float]] = ((0.08, 0.0), (0.08, 0.0))
    lengths: tuple[float, ...] = (0.17, 0.15, 0.245, 0.235, 0.30, 0.05, 0.065, 0.24, 0.17)
    widths: float = 1.0
    arms_in_front: tuple[bool, bool] = (False, False)
    legs_front_first: bool = False
    appearance: Appearance = field(
        default_factory=lambda: Appearance(
            skin=(224.0, 172.0, 130.0),
            hair=(60.0, 40.0, 25.0),
            shirt=(40.0, 90.0, 200.0),
            pants=(60.0, 60.0, 70.0),
            shoes=(30.0, 30.0, 30.0),
        )
    )


def _down(angle: float | np.ndarray) -> np.ndarray:
    """Unit vector of 'straight down' (0, 1) turned by ``angle`` towards +x: (sin, cos)."""
    return np.array([np.sin(angle), np.cos(angle)], dtype=np.float64)


@dataclass(frozen=True)
class _Body:
    """Figure geometry in the body frame (pelvis at 0, x right, y down, unit = person height).

    ``joints`` (17, 2); ``head_center`` (2,), ``head_axes`` (lateral, down) unit vectors,
    ``neck_top`` (2,), ``feet`` (2, 2) foot tips (left, right).
    """

    joints: np.ndarray
    head_center: np.ndarray
    head_lat: np.ndarray
    head_down: np.ndarray
    neck_top: np.ndarray
    feet: np.ndarray


def _body_geometry(fig: Figure) -> _Body:
    """Joint positions of ``fig`` in the body frame (see ``_Body``)."""
    up_len, fore_len, thigh_len, shin_len, torso_len, neck_len, head_r, sh_w, hip_w = fig.lengths
    s = 1.0 if fig.facing_camera else -1.0  # image side (+x / -x) of the figure's left
    kp = np.zeros((COCO17.num_joints, 2), dtype=np.float64)
    up = -_down(fig.spine)
    lat = np.array([np.cos(fig.spine), -np.sin(fig.spine)])  # perpendicular to the spine
    hip_lat = np.array([np.cos(fig.pelvis), -np.sin(fig.pelvis)])
    sh_c = torso_len * up
    kp[J["left_shoulder"]] = sh_c + s * lat * sh_w * fig.squeeze / 2
    kp[J["right_shoulder"]] = sh_c - s * lat * sh_w * fig.squeeze / 2
    kp[J["left_hip"]] = s * hip_lat * hip_w * fig.squeeze / 2
    kp[J["right_hip"]] = -s * hip_lat * hip_w * fig.squeeze / 2
    for side, e in (("left", s), ("right", -s)):
        k = 0 if side == "left" else 1
        abduct, flex = fig.arms[k]
        elbow = kp[J[f"{side}_shoulder"]] + up_len * _down(fig.spine + e * abduct)
        kp[J[f"{side}_elbow"]] = elbow
        kp[J[f"{side}_wrist"]] = elbow + fore_len * _down(fig.spine + e * (abduct + flex))
        thigh, knee_flex = fig.legs[k]
        knee = kp[J[f"{side}_hip"]] + thigh_len * _down(fig.pelvis + e * thigh)
        kp[J[f"{side}_knee"]] = knee
        kp[J[f"{side}_ankle"]] = knee + shin_len * _down(fig.pelvis + e * (thigh + knee_flex))
    head_up = -_down(fig.spine + fig.neck)
    head_lat = np.array([np.cos(fig.spine + fig.neck), -np.sin(fig.spine + fig.neck)])
    neck_top = sh_c + neck_len * head_up
    head_c = neck_top + head_r * head_up
    # Face marks in the head frame (lateral toward the image side of the figure's left, down).
    yaw = fig.head_yaw
    face = {
        "left_eye": (s * (0.36 + 0.25 * yaw), -0.12),
        "right_eye": (-s * (0.36 - 0.25 * yaw), -0.12),
        "nose": (s * 0.45 * yaw, 0.18),
        # The ear on the side the face turns towards moves behind the head.
        "left_ear": (s * (0.96 - 1.5 * max(yaw - 0.25, 0.0)), 0.05),
        "right_ear": (-s * (0.96 - 1.5 * max(-yaw - 0.25, 0.0)), 0.05),
    }
    for name, (u, v) in face.items():
        kp[J[name]] = head_c + head_r * (u * head_lat - v * head_up)
    feet = np.zeros((2, 2))
    for k, side in enumerate(("left", "right")):
        shin_dir = kp[J[f"{side}_ankle"]] - kp[J[f"{side}_knee"]]
        shin_dir /= max(np.linalg.norm(shin_dir), 1e-9)
        toe = np.array([-shin_dir[1], shin_dir[0]]) * (1.0 if (k == 0) == fig.facing_camera else -1.0)
        feet[k] = kp[J[f"{side}_ankle"]] + 0.05 * (0.6 * shin_dir + 0.5 * toe)
    return _Body(kp, head_c, head_lat, -head_up, neck_top, feet)


def _to_image(fig: Figure, pts: np.ndarray) -> np.ndarray:
    """Body-frame points (..., 2) -> image space (..., 2)."""
    c, s_ = np.cos(fig.rotation), np.sin(fig.rotation)
    rot = np.array([[c, s_], [-s_, c]])  # counter-clockwise on screen (y down)
    return pts @ rot.T * fig.height_px + np.asarray(fig.root_img)


def figure_keypoints(fig: Figure) -> np.ndarray:
    """(17, 2) float64 joint positions of ``fig`` in image space (before visibility)."""
    return _to_image(fig, _body_geometry(fig).joints)


# --------------------------------------------------------------------------- canvas


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


def _draw_figure(canvas: _Canvas, fig: Figure, person: int) -> np.ndarray:
    """Draw ``fig`` back to front into ``canvas``; returns its (17, 2) image-space joints."""
    body = _body_geometry(fig)
    kp = _to_image(fig, body.joints)
    h = fig.height_px
    wb = fig.widths * h
    app = fig.appearance
    head_r = fig.lengths[6] * h
    stripes = (app.stripe_amp, app.stripe_period, app.stripe_angle, 0.0, 5.0)
    plain = (0.0, 1.0, 0.0, 0.0, 3.0)

    def limb_colour(cloth, bare: bool, left: bool):
        base = app.skin if bare else cloth
        return _shade(base, LEFT_SHADE if left else 1.0)

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
        foot = _to_image(fig, body.feet[k])
        canvas.segment(
            an,
            foot,
            0.04 * wb,
            0.035 * wb,
            canvas.new_id(person, parts[2], _shade(app.shoes, LEFT_SHADE if left else 1.0), plain),
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
        neck_top = _to_image(fig, body.neck_top)
        canvas.segment(sh_c, neck_top, 0.05 * wb, 0.045 * wb, canvas.new_id(person, NECK, app.skin, plain))

    def face_marks() -> None:
        eye_r = max(0.16 * head_r, 0.8)
        dark = (25.0, 20.0, 20.0)
        canvas.disc(kp[J["left_eye"]], eye_r, canvas.new_id(person, L_EYE, dark, plain))
        canvas.disc(kp[J["right_eye"]], eye_r, canvas.new_id(person, R_EYE, dark, plain))
        canvas.disc(
            kp[J["nose"]], max(0.14 * head_r, 0.8), canvas.new_id(person, NOSE, _shade(app.skin, 0.55), plain)
        )
        mouth = _to_image(
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
        centre = _to_image(fig, body.head_center)
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
    d = _to_image(fig, lat_body) - _to_image(fig, np.zeros(2))
    return float(np.degrees(np.arctan2(d[1], d[0])))


# --------------------------------------------------------------------------- sampling


def _sample_appearance(rng: np.random.Generator) -> Appearance:
    skin = _SKIN_TONES[rng.integers(len(_SKIN_TONES))] * rng.uniform(0.85, 1.1, 3)
    hair = _HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))] * rng.uniform(0.8, 1.2)
    shirt, pants = rng.uniform(20, 240, 3), rng.uniform(15, 200, 3)
    striped = rng.random() < 0.4
    return Appearance(
        skin=tuple(np.clip(skin, 0, 255)),
        hair=tuple(np.clip(hair, 0, 255)),
        shirt=tuple(shirt),
        pants=tuple(pants),
        shoes=tuple(rng.uniform(10, 120, 3)),
        short_sleeves=bool(rng.random() < 0.4),
        shorts=bool(rng.random() < 0.2),
        stripe_amp=float(rng.uniform(20, 60)) if striped else 0.0,
        stripe_period=float(rng.uniform(3, 9)),
        stripe_angle=float(rng.uniform(0, np.pi)),
    )


def _sample_pose(rng: np.random.Generator, s: float) -> dict:
    """Random joint angles within human limits from one of a few pose families.

    ``s`` is the image side of the figure's left (+1 facing the camera, -1 facing away); angles
    are in each limb's outward convention (see ``Figure``), so image-side poses need it.
    """
    deg = np.radians
    kind = rng.choice(
        ["stand", "walk", "arms_up", "sit", "bend", "random"], p=[0.25, 0.2, 0.15, 0.12, 0.1, 0.18]
    )
    pose = {
        "spine": deg(rng.normal(0, 6)),
        "neck": deg(rng.normal(0, 10)),
        "pelvis": deg(rng.normal(0, 4)),
        "arms": [(deg(rng.uniform(0, 35)), deg(rng.uniform(-10, 50))) for _ in range(2)],
        "legs": [(deg(rng.uniform(0, 12)), deg(rng.uniform(-15, 5))) for _ in range(2)],
        "squeeze": rng.uniform(0.55, 1.0),
    }
    if kind == "walk":
        pose["squeeze"] = rng.uniform(0.3, 0.65)
        swing = deg(rng.uniform(10, 35))
        pose["legs"] = [
            (swing, deg(rng.uniform(-50, 0))),
            (deg(rng.uniform(-25, 5)), deg(rng.uniform(-20, 0))),
        ]
        pose["arms"] = [(deg(rng.uniform(-25, 30)), deg(rng.uniform(0, 70))) for _ in range(2)]
    elif kind == "arms_up":
        pose["arms"] = [(deg(rng.uniform(90, 180)), deg(rng.uniform(-60, 60))) for _ in range(2)]
        if rng.random() < 0.4:
            pose["arms"][int(rng.integers(2))] = (deg(rng.uniform(0, 40)), deg(rng.uniform(0, 90)))
    elif kind == "sit":
        side = rng.choice([-1.0, 1.0])
        pose["legs"] = []
        for k in range(2):
            e = s if k == 0 else -s  # image side of this leg's outward direction
            thigh = deg(rng.uniform(65, 100)) * side * e
            pose["legs"].append((thigh, -deg(rng.uniform(60, 110)) * side * e))
        pose["arms"] = [(deg(rng.uniform(-30, 60)), deg(rng.uniform(0, 100))) for _ in range(2)]
    elif kind == "bend":
        pose["spine"] = deg(rng.uniform(35, 95)) * rng.choice([-1.0, 1.0])
        pose["neck"] = -pose["spine"] * rng.uniform(0.0, 0.5)
        # arms hang towards the ground: outward angle = spine lean seen from that arm's side
        pose["arms"] = [
            (-pose["spine"] * e + deg(rng.normal(0, 20)), deg(rng.uniform(-20, 40))) for e in (s, -s)
        ]
    elif kind == "random":
        pose["spine"] = deg(rng.normal(0, 20))
        pose["arms"] = [(deg(rng.uniform(-40, 180)), deg(rng.uniform(-150, 150))) for _ in range(2)]
        pose["legs"] = [(deg(rng.uniform(-30, 90)), deg(rng.uniform(-130, 20))) for _ in range(2)]
        pose["squeeze"] = rng.uniform(0.3, 1.0)
    return pose


def sample_figure(rng: np.random.Generator, image_size: tuple[int, int], difficulty: float = 1.0) -> Figure:
    """A random person placed in an image of ``image_size`` = (W, H).

    At ``difficulty`` 1: height is 25-95 % of the image height; about 30 % of figures are pushed
    over a border (truncated); in-plane rotation is mostly small, 8 % of figures are lying or
    upside down. Lower difficulty scales those probabilities, the rotation spread and the
    smallest height down (0: upright, untruncated, at least 60 % of the image height).
    """
    d = float(np.clip(difficulty, 0.0, 1.0))
    width, height = image_size
    facing = bool(rng.random() < 0.65)
    pose = _sample_pose(rng, 1.0 if facing else -1.0)
    fore = rng.uniform(0.6, 1.0, 4) if rng.random() < 0.3 else np.ones(4)  # out-of-plane limbs
    scale = rng.uniform(0.9, 1.1, 9)
    base = np.array([0.17, 0.15, 0.245, 0.235, 0.30, 0.05, 0.065, 0.24, 0.17])
    lengths = base * scale
    lengths[:4] *= fore
    rotation = (
        float(rng.normal(0, np.radians(12)) * d)
        if rng.random() > 0.08 * d
        else float(rng.uniform(-np.pi, np.pi))
    )
    fig = Figure(
        root_img=(0.0, 0.0),
        height_px=float(rng.uniform(0.25 + 0.35 * (1 - d), 0.95) * height),
        rotation=rotation,
        facing_camera=facing,
        squeeze=float(pose["squeeze"]),
        head_yaw=float(np.clip(rng.normal(0, 0.35), -0.8, 0.8)),
        spine=float(pose["spine"]),
        neck=float(pose["neck"]),
        pelvis=float(pose["pelvis"]),
        arms=tuple((float(a), float(b)) for a, b in pose["arms"]),
        legs=tuple((float(a), float(b)) for a, b in pose["legs"]),
        lengths=tuple(float(x) for x in lengths),
        widths=float(rng.uniform(0.8, 1.35)),
        arms_in_front=(bool(rng.random() < 0.35), bool(rng.random() < 0.35)),
        legs_front_first=bool(rng.random() < 0.5),
        appearance=_sample_appearance(rng),
    )
    kp = figure_keypoints(fig)
    lo, hi = kp.min(0) - 0.05 * fig.height_px, kp.max(0) + 0.05 * fig.height_px
    ext = hi - lo
    target = np.empty(2)
    for d, size in enumerate((width, height)):
        if ext[d] <= size:
            target[d] = rng.uniform(ext[d] / 2, size - ext[d] / 2)
        else:
            target[d] = rng.uniform(size - ext[d] / 2, ext[d] / 2)
    if rng.random() < 0.3 * d:  # push over a random border
        d = int(rng.integers(2))
        size = (width, height)[d]
        over = rng.uniform(0.15, 0.55) * ext[d]
        target[d] = -ext[d] / 2 + over if rng.random() < 0.5 else size + ext[d] / 2 - over
    root = target - (lo + hi) / 2
    return replace(fig, root_img=(float(root[0]), float(root[1])))


# --------------------------------------------------------------------------- scene


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
        colour = _limb_like_colour(rng)
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


def _limb_like_colour(rng: np.random.Generator) -> tuple[float, float, float]:
    if rng.random() < 0.5:
        c = _SKIN_TONES[rng.integers(len(_SKIN_TONES))] * rng.uniform(0.6, 1.05)
    else:
        c = rng.uniform(15, 240, 3)
    return tuple(float(v) for v in np.clip(c, 0, 255))


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
        colour = _limb_like_colour(rng)
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
) -> tuple[np.ndarray, list[SyntheticPerson]]:
    """Draw ``items`` back to front (later items cover earlier ones) and label every figure.

    Args:
        rng: texture noise, background and photometric randomness.
        image_size: (W, H).
        items: figures and occluders in depth order.
        background: (H, W, 3) float32 RGB; a random cluttered one when None.
        photometric: apply lighting, blur, noise and JPEG artefacts.
        difficulty: in [0, 1], scales the background clutter and the photometric noise.

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
            joints.append(_draw_figure(canvas, item, len(joints)))
        else:
            _draw_occluder(canvas, item, rng)
    img = _compose(canvas, bg, rng)
    img = _photometric(img, rng, difficulty) if photometric else np.clip(img, 0, 255).astype(np.uint8)
    return img, [_label(canvas, kp, p, image_size) for p, kp in enumerate(joints)]


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
) -> tuple[np.ndarray, list[SyntheticPerson]]:
    """One random image: uint8 RGB (H, W, 3) and its annotatable persons (image space).

    ``difficulty`` in [0, 1] (1 = the default set) scales clutter, occluders, truncation,
    rotation and sensor noise; see :func:`sample_figure`, :func:`_background`.
    """
    items = sample_scene(rng, image_size, max_people, difficulty)
    img, persons = render_scene(rng, image_size, items, difficulty=difficulty)
    return img, [p for p in persons if p.annotatable]


# --------------------------------------------------------------------------- data set


def image_file_name(image_id: int) -> str:
    return f"{image_id:012d}.jpg"


def coco_categories() -> list[dict]:
    """The COCO person category with COCO17 joint names and 1-based skeleton pairs."""
    skeleton = [[a + 1, b + 1] for a, b in COCO17.edge_indices]
    return [
        {
            "id": 1,
            "name": "person",
            "supercategory": "person",
            "keypoints": list(COCO17.joint_names),
            "skeleton": skeleton,
        }
    ]


def person_annotation(person: SyntheticPerson, image_id: int, index: int) -> dict:
    """COCO keypoint annotation; id = image_id * 100 + index (unique across disjoint id ranges)."""
    kpts = [round(float(v), 2) for v in person.kpts_img.reshape(-1)]
    kpts[2::3] = [int(v) for v in person.kpts_img[:, 2]]
    return {
        "id": image_id * 100 + index,
        "image_id": image_id,
        "category_id": 1,
        "bbox": [float(v) for v in person.bbox_xywh],
        "area": float(person.area),
        "iscrowd": 0,
        "num_keypoints": person.num_keypoints,
        "keypoints": kpts,
    }


def make_image(
    seed: int,
    image_id: int,
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
    max_people: int = 3,
    difficulty: float = 1.0,
) -> tuple[bytes, dict, list[dict]]:
    """Render image ``image_id`` of the set ``seed``: JPEG bytes, COCO image entry, annotations.

    Depends only on (seed, image_id, image_size, max_people, difficulty).
    """
    if max_people >= 100:
        raise ValueError("max_people must be < 100 (annotation ids are image_id * 100 + k)")
    rng = np.random.default_rng([seed, image_id])
    img, persons = render_image(rng, image_size, max_people, difficulty)
    ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for image {image_id}")
    width, height = image_size
    entry = {"id": image_id, "file_name": image_file_name(image_id), "width": width, "height": height}
    return buf.tobytes(), entry, [person_annotation(p, image_id, k) for k, p in enumerate(persons)]


def _make_and_write(args: tuple[Path, int, int, tuple[int, int], int, float]) -> tuple[dict, list[dict]]:
    images_dir, seed, image_id, image_size, max_people, difficulty = args
    data, entry, anns = make_image(seed, image_id, image_size, max_people, difficulty)
    (images_dir / entry["file_name"]).write_bytes(data)
    return entry, anns


def generate_dataset(
    out_dir: str | Path,
    *,
    seed: int,
    num_images: int,
    start_id: int = 1,
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
    max_people: int = 3,
    workers: int = 1,
    difficulty: float = 1.0,
) -> dict:
    """Write ``out_dir/images/<id:012d>.jpg`` and ``out_dir/annotations.json`` (COCO keypoints).

    Image ids are ``start_id .. start_id + num_images - 1``; image ``i`` depends only on
    (seed, image id), so sets with disjoint id ranges are distinct even with the same seed.

    Returns:
        the COCO dict that was written.
    """
    out_dir = Path(out_dir)
    images_dir = out_dir / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    size = (int(image_size[0]), int(image_size[1]))
    if not 0.0 <= difficulty <= 1.0:
        raise ValueError(f"difficulty must be in [0, 1], got {difficulty}")
    jobs = [(images_dir, seed, start_id + i, size, max_people, float(difficulty)) for i in range(num_images)]
    images, annotations = [], []
    step = max(num_images // 10, 1)
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = pool.map(_make_and_write, jobs, chunksize=16)
            results = list(results)
    else:
        results = map(_make_and_write, jobs)
    for i, (entry, anns) in enumerate(results):
        images.append(entry)
        annotations.extend(anns)
        if (i + 1) % step == 0 or i + 1 == num_images:
            log.info("synthetic: %d/%d images, %d persons", i + 1, num_images, len(annotations))
    coco = {"images": images, "annotations": annotations, "categories": coco_categories()}
    write_json_atomic(out_dir / "annotations.json", coco)
    return coco
