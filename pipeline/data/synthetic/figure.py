"""Synthetic figures: an articulated 2D person with COCO-17 joints, and how one is sampled.

A kinematic model (pelvis -> spine -> neck -> head; shoulders -> elbows -> wrists; hips ->
knees -> ankles) with random proportions, build, pose (standing, walking, arms raised, sitting,
bending, random), lateral squeeze (a turned body), in-plane rotation (rarely lying or upside
down), size from ~25 % to ~95 % of the image height. ``body_geometry`` gives the joints in the
body frame (pelvis at 0, unit = person height), ``to_image`` moves them to image space.

Left and right are inferable from pixels: the figure's *left* limbs (arm, hand, leg, foot) are
always drawn in a darker shade (``LEFT_SHADE``) of their material than the right ones, and a
figure facing the camera shows its face (skin, eyes, nose, mouth) while one facing away shows
hair. So in a front view the darker limbs are on the image right, in a back view on the image
left. The part codes name what each drawn primitive is; ``JOINT_PARTS`` says on which parts a
joint counts as visible (:mod:`pipeline.data.synthetic.render` draws and labels).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from pipeline.data.skeletons import COCO17

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
class Body:
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


def body_geometry(fig: Figure) -> Body:
    """Joint positions of ``fig`` in the body frame (see ``Body``)."""
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
    return Body(kp, head_c, head_lat, -head_up, neck_top, feet)


def to_image(fig: Figure, pts: np.ndarray) -> np.ndarray:
    """Body-frame points (..., 2) -> image space (..., 2)."""
    c, s_ = np.cos(fig.rotation), np.sin(fig.rotation)
    rot = np.array([[c, s_], [-s_, c]])  # counter-clockwise on screen (y down)
    return pts @ rot.T * fig.height_px + np.asarray(fig.root_img)


def figure_keypoints(fig: Figure) -> np.ndarray:
    """(17, 2) float64 joint positions of ``fig`` in image space (before visibility)."""
    return to_image(fig, body_geometry(fig).joints)


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


def limb_like_colour(rng: np.random.Generator) -> tuple[float, float, float]:
    if rng.random() < 0.5:
        c = _SKIN_TONES[rng.integers(len(_SKIN_TONES))] * rng.uniform(0.6, 1.05)
    else:
        c = rng.uniform(15, 240, 3)
    return tuple(float(v) for v in np.clip(c, 0, 255))
