"""Keypoint skeletons as plain data: joint names, flip partners, edges, OKS sigmas.

Flip partners are derived from names (``left_*`` <-> ``right_*``), never hand-listed.
Joint maps between formats are derived from shared joint names.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np


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
    """

    name: str
    joint_names: tuple[str, ...]
    edges: tuple[tuple[str, str], ...]
    sigmas: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.sigmas) != len(self.joint_names):
            raise ValueError(f"{self.name}: {len(self.sigmas)} sigmas for {len(self.joint_names)} joints")
        if len(set(self.joint_names)) != len(self.joint_names):
            raise ValueError(f"{self.name}: duplicate joint names")
        for a, b in self.edges:
            if a not in self.joint_names or b not in self.joint_names:
                raise ValueError(f"{self.name}: edge ({a}, {b}) names an unknown joint")

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def index(self, joint_name: str) -> int:
        return self.joint_names.index(joint_name)

    @cached_property
    def flip_indices(self) -> tuple[int, ...]:
        """For each joint k, the index of its mirror partner (itself for central joints)."""
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

SKELETONS: dict[str, Skeleton] = {s.name: s for s in (COCO17, MPII16, AIC14, CROWDPOSE14)}


def get_skeleton(name: str) -> Skeleton:
    try:
        return SKELETONS[name]
    except KeyError:
        raise KeyError(f"unknown skeleton {name!r}; known: {sorted(SKELETONS)}") from None


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
