"""Keypoint skeletons as plain data: joint names, flip partners, edges, OKS sigmas.

Built-in skeletons: ``coco17``, ``mpii16``, ``aic14``, ``crowdpose14``, ``posetrack18``. Any
other skeleton is a file (YAML or JSON, as mmpose's dataset metainfo describes one)::

    name: my_17                      # optional: the file's stem
    joint_names: [nose, head_top, left_shoulder, right_shoulder, ...]   # K names, annotation order
    sigmas: [0.026, 0.079, 0.079, ...]                                 # K OKS sigmas
    flip_pairs: [[left_shoulder, right_shoulder], ...]   # optional: else left_* <-> right_* by name
    limbs: [[left_shoulder, right_shoulder], ...]        # optional: for drawing

selected by ``data.skeleton=PATH`` (or :func:`get_skeleton`). Flip partners are the file's
``flip_pairs`` or derived from names (``left_*`` <-> ``right_*``). Joint maps between formats are
derived from shared joint names.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import yaml


def _flip_partner(name: str) -> str:
    if name.startswith("left_"):
        return "right_" + name[len("left_") :]
    if name.startswith("right_"):
        return "left_" + name[len("right_") :]
    return name


@dataclass(frozen=True)
class Skeleton:
    """Metadata of one keypoint format.

    Attributes:
        name: short format name, e.g. ``"coco17"``.
        joint_names: K joint names in annotation order.
        edges: limbs as pairs of joint names (for drawing).
        sigmas: K per-joint OKS sigmas (COCO convention, already divided by 10).
        flip_pairs: mirror pairs of joint names; empty = derived from ``left_*`` / ``right_*``.
    """

    name: str
    joint_names: tuple[str, ...]
    edges: tuple[tuple[str, str], ...]
    sigmas: tuple[float, ...]
    flip_pairs: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if len(self.sigmas) != len(self.joint_names):
            raise ValueError(f"{self.name}: {len(self.sigmas)} sigmas for {len(self.joint_names)} joints")
        if len(set(self.joint_names)) != len(self.joint_names):
            raise ValueError(f"{self.name}: duplicate joint names")
        for a, b in self.edges:
            if a not in self.joint_names or b not in self.joint_names:
                raise ValueError(f"{self.name}: edge ({a}, {b}) names an unknown joint")
        seen: set[str] = set()
        for a, b in self.flip_pairs:
            if a not in self.joint_names or b not in self.joint_names:
                raise ValueError(f"{self.name}: flip pair ({a}, {b}) names an unknown joint")
            if a in seen or b in seen or a == b:
                raise ValueError(
                    f"{self.name}: flip pair ({a}, {b}): a joint is in two pairs or paired with itself"
                )
            seen |= {a, b}

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def index(self, joint_name: str) -> int:
        return self.joint_names.index(joint_name)

    @cached_property
    def flip_indices(self) -> tuple[int, ...]:
        """For each joint k, the index of its mirror partner (itself for central joints)."""
        if self.flip_pairs:
            out = list(range(self.num_joints))
            for a, b in self.flip_pairs:
                out[self.index(a)], out[self.index(b)] = self.index(b), self.index(a)
            return tuple(out)
        out = []
        for n in self.joint_names:
            partner = _flip_partner(n)
            out.append(self.joint_names.index(partner) if partner in self.joint_names else self.index(n))
        return tuple(out)

    @cached_property
    def edge_indices(self) -> tuple[tuple[int, int], ...]:
        return tuple((self.index(a), self.index(b)) for a, b in self.edges)

    @property
    def sigmas_array(self) -> np.ndarray:
        return np.asarray(self.sigmas, dtype=np.float64)

    def to_dict(self) -> dict:
        """Plain types only (a checkpoint stores this; :func:`skeleton_from_dict` reads it)."""
        return {
            "name": self.name,
            "joint_names": list(self.joint_names),
            "sigmas": [float(v) for v in self.sigmas],
            "flip_pairs": [list(p) for p in self.flip_pairs],
            "limbs": [list(e) for e in self.edges],
        }


COCO17 = Skeleton(
    name="coco17",
    joint_names=(
        "nose",
        "left_eye",
        "right_eye",
        "left_ear",
        "right_ear",
        "left_shoulder",
        "right_shoulder",
        "left_elbow",
        "right_elbow",
        "left_wrist",
        "right_wrist",
        "left_hip",
        "right_hip",
        "left_knee",
        "right_knee",
        "left_ankle",
        "right_ankle",
    ),
    edges=(
        ("left_ankle", "left_knee"),
        ("left_knee", "left_hip"),
        ("right_ankle", "right_knee"),
        ("right_knee", "right_hip"),
        ("left_hip", "right_hip"),
        ("left_shoulder", "left_hip"),
        ("right_shoulder", "right_hip"),
        ("left_shoulder", "right_shoulder"),
        ("left_shoulder", "left_elbow"),
        ("right_shoulder", "right_elbow"),
        ("left_elbow", "left_wrist"),
        ("right_elbow", "right_wrist"),
        ("left_eye", "right_eye"),
        ("nose", "left_eye"),
        ("nose", "right_eye"),
        ("left_eye", "left_ear"),
        ("right_eye", "right_ear"),
        ("left_ear", "left_shoulder"),
        ("right_ear", "right_shoulder"),
    ),
    sigmas=(
        0.026,
        0.025,
        0.025,
        0.035,
        0.035,
        0.079,
        0.079,
        0.072,
        0.072,
        0.062,
        0.062,
        0.107,
        0.107,
        0.087,
        0.087,
        0.089,
        0.089,
    ),
)

MPII16 = Skeleton(
    name="mpii16",
    joint_names=(
        "right_ankle",
        "right_knee",
        "right_hip",
        "left_hip",
        "left_knee",
        "left_ankle",
        "pelvis",
        "thorax",
        "upper_neck",
        "head_top",
        "right_wrist",
        "right_elbow",
        "right_shoulder",
        "left_shoulder",
        "left_elbow",
        "left_wrist",
    ),
    edges=(
        ("right_ankle", "right_knee"),
        ("right_knee", "right_hip"),
        ("right_hip", "pelvis"),
        ("left_ankle", "left_knee"),
        ("left_knee", "left_hip"),
        ("left_hip", "pelvis"),
        ("pelvis", "thorax"),
        ("thorax", "upper_neck"),
        ("upper_neck", "head_top"),
        ("right_wrist", "right_elbow"),
        ("right_elbow", "right_shoulder"),
        ("right_shoulder", "thorax"),
        ("left_wrist", "left_elbow"),
        ("left_elbow", "left_shoulder"),
        ("left_shoulder", "thorax"),
    ),
    sigmas=(
        0.089,
        0.083,
        0.107,
        0.107,
        0.083,
        0.089,
        0.026,
        0.026,
        0.026,
        0.026,
        0.062,
        0.072,
        0.179,
        0.179,
        0.072,
        0.062,
    ),
)

AIC14 = Skeleton(
    name="aic14",
    joint_names=(
        "right_shoulder",
        "right_elbow",
        "right_wrist",
        "left_shoulder",
        "left_elbow",
        "left_wrist",
        "right_hip",
        "right_knee",
        "right_ankle",
        "left_hip",
        "left_knee",
        "left_ankle",
        "head_top",
        "neck",
    ),
    edges=(
        ("right_wrist", "right_elbow"),
        ("right_elbow", "right_shoulder"),
        ("right_shoulder", "neck"),
        ("left_wrist", "left_elbow"),
        ("left_elbow", "left_shoulder"),
        ("left_shoulder", "neck"),
        ("right_ankle", "right_knee"),
        ("right_knee", "right_hip"),
        ("right_hip", "right_shoulder"),
        ("left_ankle", "left_knee"),
        ("left_knee", "left_hip"),
        ("left_hip", "left_shoulder"),
        ("head_top", "neck"),
    ),
    sigmas=(
        0.01388152,
        0.01515228,
        0.01057665,
        0.01417709,
        0.01497891,
        0.01402144,
        0.03909642,
        0.03686941,
        0.01981803,
        0.03843971,
        0.03412318,
        0.02415081,
        0.01291456,
        0.01236173,
    ),
)

CROWDPOSE14 = Skeleton(
    name="crowdpose14",
    joint_names=(
        "left_shoulder",
        "right_shoulder",
        "left_elbow",
        "right_elbow",
        "left_wrist",
        "right_wrist",
        "left_hip",
        "right_hip",
        "left_knee",
        "right_knee",
        "left_ankle",
        "right_ankle",
        "head_top",
        "neck",
    ),
    edges=(
        ("left_wrist", "left_elbow"),
        ("left_elbow", "left_shoulder"),
        ("left_shoulder", "neck"),
        ("right_wrist", "right_elbow"),
        ("right_elbow", "right_shoulder"),
        ("right_shoulder", "neck"),
        ("left_ankle", "left_knee"),
        ("left_knee", "left_hip"),
        ("left_hip", "left_shoulder"),
        ("right_ankle", "right_knee"),
        ("right_knee", "right_hip"),
        ("right_hip", "right_shoulder"),
        ("head_top", "neck"),
    ),
    sigmas=(
        0.079,
        0.079,
        0.072,
        0.072,
        0.062,
        0.062,
        0.107,
        0.107,
        0.087,
        0.087,
        0.089,
        0.089,
        0.079,
        0.079,
    ),
)

# PoseTrack 2018: COCO's 17 slots with the eyes replaced by the head's bottom and top (COCO's
# sigmas by slot, as mmpose's posetrack18 metainfo).
POSETRACK18 = Skeleton(
    name="posetrack18",
    joint_names=("nose", "head_bottom", "head_top") + COCO17.joint_names[3:],
    edges=(
        ("head_top", "head_bottom"),
        ("head_bottom", "nose"),
        ("head_bottom", "left_shoulder"),
        ("head_bottom", "right_shoulder"),
    )
    + tuple(e for e in COCO17.edges if "eye" not in e[0] and "eye" not in e[1] and "ear" not in e[0]),
    sigmas=COCO17.sigmas,
)

SKELETONS: dict[str, Skeleton] = {s.name: s for s in (COCO17, MPII16, AIC14, CROWDPOSE14, POSETRACK18)}


class SkeletonError(ValueError):
    """A skeleton file that cannot be used; the message names the file and the field."""


def get_skeleton(name: str | Path) -> Skeleton:
    """A built-in skeleton by name, or a skeleton file (``.yaml``, ``.yml``, ``.json``) by path."""
    if str(name) in SKELETONS:
        return SKELETONS[str(name)]
    if Path(name).suffix.lower() in (".yaml", ".yml", ".json") or Path(name).is_file():
        return load_skeleton_file(name)
    raise KeyError(f"unknown skeleton {str(name)!r}; built-in: {sorted(SKELETONS)}, or give a skeleton file")


def load_skeleton_file(path: str | Path) -> Skeleton:
    """Read a skeleton file (see the module docstring); SkeletonError naming the file and field."""
    path = Path(path)
    if not path.is_file():
        raise SkeletonError(f"{path}: skeleton file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise SkeletonError(f"{path}: not valid YAML/JSON: {e}") from None
    if not isinstance(data, dict):
        raise SkeletonError(f"{path}: expected a mapping with 'joint_names' and 'sigmas'")
    return skeleton_from_dict({"name": path.stem, **data}, str(path))


def skeleton_from_dict(data: dict, source: str = "<skeleton>") -> Skeleton:
    """A skeleton from plain data (a file's contents, or what :meth:`Skeleton.to_dict` wrote)."""
    names = data.get("joint_names", data.get("keypoints"))
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise SkeletonError(f"{source}: field 'joint_names' must be a non-empty list of names")
    sigmas = data.get("sigmas")
    if not isinstance(sigmas, list) or len(sigmas) != len(names):
        raise SkeletonError(f"{source}: field 'sigmas' must list one OKS sigma per joint ({len(names)})")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in sigmas):
        raise SkeletonError(f"{source}: field 'sigmas' must hold positive numbers")

    def pairs(field: str) -> tuple[tuple[str, str], ...]:
        value = data.get(field) or []
        if not isinstance(value, list) or not all(isinstance(p, list | tuple) and len(p) == 2 for p in value):
            raise SkeletonError(f"{source}: field {field!r} must be a list of [joint, joint] pairs")
        for a, b in value:
            for n in (a, b):
                if n not in names:
                    raise SkeletonError(f"{source}: field {field!r}: unknown joint {n!r}")
        return tuple((str(a), str(b)) for a, b in value)

    edges, flips = pairs("limbs") or pairs("edges"), pairs("flip_pairs")
    try:
        return Skeleton(
            name=str(data.get("name") or "custom"),
            joint_names=tuple(names),
            edges=edges,
            sigmas=tuple(float(v) for v in sigmas),
            flip_pairs=flips,
        )
    except ValueError as e:
        raise SkeletonError(f"{source}: {e}") from None


def skeleton_reference(skeleton: Skeleton) -> str | dict:
    """How a checkpoint refers to a skeleton: a built-in's name, else the whole skeleton as data."""
    return skeleton.name if SKELETONS.get(skeleton.name) == skeleton else skeleton.to_dict()


def skeleton_for_num_joints(num_joints: int) -> Skeleton:
    """The default skeleton for a keypoint count (17 -> COCO, 16 -> MPII, 14 -> AI Challenger)."""
    for s in (COCO17, MPII16, AIC14):
        if s.num_joints == num_joints:
            return s
    raise ValueError(f"no skeleton with {num_joints} joints")


def joint_map(src: Skeleton, dst: Skeleton) -> np.ndarray:
    """Index map from ``src`` to ``dst`` joints by name.

    Returns:
        (K_dst,) int64 array: for each dst joint, its index in ``src`` or -1 if ``src`` lacks it.
    """
    return np.array(
        [src.joint_names.index(n) if n in src.joint_names else -1 for n in dst.joint_names],
        dtype=np.int64,
    )


def convert_keypoints(kpts: np.ndarray, src: Skeleton, dst: Skeleton) -> np.ndarray:
    """Re-order (..., K_src, C) keypoints into dst order; joints dst has but src lacks are zeros."""
    idx = joint_map(src, dst)
    out = np.zeros(kpts.shape[:-2] + (dst.num_joints, kpts.shape[-1]), dtype=kpts.dtype)
    have = idx >= 0
    out[..., have, :] = kpts[..., idx[have], :]
    return out
