"""Trained networks on a validation set: COCO AP of one network, or of an ensemble, on its boxes.

Two ways in: the weights of the networks a run is training (``models_from_weights``, then
``evaluate_networks``, what the trainer does after each epoch), or a saved network file
(``load_checkpoint_network``, then ``evaluate_checkpoint``, what ``jobs.evaluate`` does). Both
predict on the ground-truth boxes of the validation set (the un-augmented box view), decode with
the checkpoint's codec, and score image-space keypoints with pycocotools.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pipeline.data.coco import load_coco_persons
from pipeline.data.image_checks import check_image_files
from pipeline.data.skeletons import Skeleton, get_skeleton, skeleton_for_num_joints, skeleton_from_dict
from pipeline.data.topdown import EvalDataset
from pipeline.data.wild_pool import load_pool
from pipeline.evaluation.inference import PredictFn, model_predict_fn, predict_keypoints
from pipeline.evaluation.metrics import coco_keypoint_eval, make_keypoint_results, oks_nms, write_results
from pipeline.geometry.heatmaps import HeatmapCodec
from pipeline.models import build_model
from pipeline.store.checkpoints import load_network_file, resolve_network_checkpoint

log = logging.getLogger(__name__)


def models_from_weights(
    weights: Mapping[str, Mapping[str, np.ndarray]], model_names: Mapping[str, str], num_joints: int
) -> dict[str, torch.nn.Module]:
    """Role -> a CPU model built by name and loaded with that role's ``get_weights()`` arrays."""
    models = {}
    for role, w in weights.items():
        model = build_model(model_names[role], num_joints)
        model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in w.items()})  # writable copy
        models[role] = model
    return models


def network_groups(fns: Mapping[str, PredictFn]) -> dict[str, list[PredictFn]]:
    """What a run reports: ``student`` alone; ``ensemble_ab`` (A and B averaged) when both teachers
    are there, and ``teacher_a`` alone when there is no student (Dual Network's single network)."""
    groups = {}
    if "student" in fns:
        groups["student"] = [fns["student"]]
    if "teacher_a" in fns and "teacher_b" in fns:
        if "student" not in fns:
            groups["teacher_a"] = [fns["teacher_a"]]
        groups["ensemble_ab"] = [fns["teacher_a"], fns["teacher_b"]]
    return groups


def evaluate_networks(
    models: Mapping[str, torch.nn.Module],
    dataset: EvalDataset,
    codec: HeatmapCodec,
    ann: str | Path,
    sigmas: np.ndarray,
    *,
    batch_size: int = 64,
    flip_indices: Sequence[int] | None = None,
    results_dir: Path | None = None,
    tag: str = "",
) -> dict[str, float]:
    """COCO AP of every group of ``network_groups`` on ``dataset`` (the persons of ``ann``).

    Returns ``{"eval/<group>/<stat>": value}`` with the 10 COCOeval stats of each group. With
    ``results_dir`` each group's COCO results also go to ``results_<group><tag>.json`` there.
    """
    groups = network_groups({role: model_predict_fn(m) for role, m in models.items()})
    out: dict[str, float] = {}
    for name, group in groups.items():
        pred = predict_keypoints(group, dataset, codec, batch_size=batch_size, flip_indices=flip_indices)
        results = make_keypoint_results(pred["image_ids"], pred["kpts_img"], pred["box_scores"])
        stats = coco_keypoint_eval(ann, results, sigmas=sigmas)
        if results_dir is not None:
            write_results(results, results_dir / f"results_{name}{tag}.json")
        out.update({f"eval/{name}/{k}": v for k, v in stats.items()})
    return out


@dataclass
class CheckpointNetwork:
    """One network read from a ``<role>.pt`` file.

    Attributes:
        model: the pose model, eval mode, on the requested device.
        codec: the codec the network was trained with (from the file; defaults for old files).
        skeleton: the skeleton it was trained on (by name, else from its joint count).
        state: the file's whole dict (``spec``, ``model``, ``codec``, ``skeleton``, ...).
    """

    model: torch.nn.Module
    codec: HeatmapCodec
    skeleton: Skeleton
    state: dict


def codec_from_state(state: dict, decode: str | None = None) -> HeatmapCodec:
    """The codec stored with a network (``decode`` overrides its decoding method)."""
    codec = dict(state.get("codec", {}))
    if decode:
        codec["decode"] = decode
    return HeatmapCodec(
        input_size=tuple(codec.get("input_size", (192, 256))),
        heatmap_size=tuple(codec.get("heatmap_size", (48, 64))),
        sigma=float(codec.get("sigma", 2.0)),
        decode_method=codec.get("decode", "argmax"),
    )


def skeleton_from_state(state: dict) -> Skeleton:
    """The skeleton stored with a network, else the default one of its joint count."""
    if isinstance(state.get("skeleton"), dict):  # a skeleton from a file, stored as data
        return skeleton_from_dict(state["skeleton"], "checkpoint skeleton")
    if "skeleton" in state:
        return get_skeleton(state["skeleton"])
    return skeleton_for_num_joints(int(state["spec"]["num_joints"]))


def load_checkpoint_network(
    path: str | Path, device: str | torch.device = "cpu", decode: str | None = None
) -> CheckpointNetwork:
    """Build and load the network of a ``<role>.pt`` file (local path or URI)."""
    state = load_network_file(path)
    spec = state["spec"]
    model = build_model(spec["model_name"], spec["num_joints"])
    model.load_state_dict(state["model"])
    return CheckpointNetwork(
        model.to(device).eval(), codec_from_state(state, decode), skeleton_from_state(state), state
    )


@dataclass(frozen=True)
class DetectionProtocol:
    """Evaluation on detected person boxes, as the top-down papers (SimpleBaseline, HRNet) do.

    Attributes:
        box_score_thr: detections scoring below this are left out.
        keypoint_score_thr: a person's score is its box score times the mean of its keypoint
            scores above this (rescoring).
        oks_nms_thr: OKS non-maximum suppression per image: a person whose OKS with a kept,
            higher-scoring person exceeds this is dropped.
    """

    box_score_thr: float = 0.0
    keypoint_score_thr: float = 0.2
    oks_nms_thr: float = 0.9

    def describe(self) -> str:
        return (
            f"detected boxes (box score >= {self.box_score_thr:g}, rescoring by keypoint scores "
            f"> {self.keypoint_score_thr:g}, OKS-NMS {self.oks_nms_thr:g}), every ground-truth image"
        )


def evaluate_checkpoint(
    checkpoint: str,
    ann: str,
    images: str,
    *,
    boxes: str | None = None,
    protocol: DetectionProtocol = DetectionProtocol(),
    role: str = "student",
    flip_test: bool = False,
    decode: str | None = None,
    batch_size: int = 64,
    skip_bad_images: bool = False,
    results_out: str | None = None,
    device: str = "cpu",
) -> dict[str, float]:
    """COCOeval stats of one saved network, scored on every ground-truth image of ``ann``.

    The network predicts in the ground-truth boxes of ``ann``, or, with ``boxes`` (person
    detections in the COCO results format over the images of ``ann``), in the detected boxes
    the way the top-down papers do (see :class:`DetectionProtocol`: box score threshold,
    rescoring, OKS-NMS per image). ``checkpoint`` is a ``<role>.pt`` file, a checkpoint directory
    or a run directory (its latest checkpoint; ``role`` picks the network). With
    ``results_out`` the COCO results are written too.
    """
    path = resolve_network_checkpoint(checkpoint, role)
    net = load_checkpoint_network(path, device, decode)
    if boxes is None:
        log.info("evaluating %s (%s) on %s", path, net.state["spec"]["model_name"], ann)
        persons = load_coco_persons(ann, images, skeleton=net.skeleton, require_keypoints=True)
    else:
        log.info("evaluating %s on the detections of %s: %s", path, boxes, protocol.describe())
        persons = list(
            load_pool(
                image_dir=images,
                image_list_json=ann,
                detections_json=boxes,
                min_box_score=protocol.box_score_thr,
            )
        )
    persons, _ = check_image_files(persons, skip_bad=skip_bad_images)
    ds = EvalDataset(persons, net.codec, net.skeleton)
    flip = net.skeleton.flip_indices if flip_test else None
    pred = predict_keypoints(
        [model_predict_fn(net.model, device)], ds, net.codec, batch_size=batch_size, flip_indices=flip
    )
    results = make_keypoint_results(
        pred["image_ids"], pred["kpts_img"], pred["box_scores"], score_thr=protocol.keypoint_score_thr
    )
    if boxes is not None:
        areas = [float(p.bbox_xywh[2] * p.bbox_xywh[3]) for p in persons]
        keep = oks_nms(results, areas, net.skeleton.sigmas_array, protocol.oks_nms_thr)
        log.info("%d detections -> %d persons after OKS-NMS", len(results), len(keep))
        results = [results[i] for i in keep]
    if results_out:
        write_results(results, results_out)
    return coco_keypoint_eval(ann, results, sigmas=net.skeleton.sigmas_array)
