"""From a resolved config to what the training loop runs on: data, networks, pseudo labeler.

Everything here is the config's mapping onto the objects of ``pipeline/``: the network spec of
every role the method trains (``network_specs``), PCM's and the pseudo labeler's settings, the
heatmap codec, and the run's data (labeled subset, unlabeled pool, validation set), read and
checked once (``load_run_data``). ``build_local`` makes the in-process networks and pseudo
labeler; the Ray driver (``actors/driver.py``) makes actors from the same specs.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from pipeline.config import Config, ConfigError
from pipeline.data.coco import load_coco_persons
from pipeline.data.image_checks import check_image_files, check_images_exist
from pipeline.data.skeletons import Skeleton, get_skeleton
from pipeline.geometry.heatmaps import HeatmapCodec
from pipeline.method.pcm import PCMConfig
from pipeline.method.pseudo_labels import PseudoLabelConfig, PseudoLabeler
from pipeline.method.schedule import METHOD_ROLES
from pipeline.method.ssco import SSCOConfig
from pipeline.models.network import Network, NetworkSpec

log = logging.getLogger(__name__)


def make_codec(cfg: Config) -> HeatmapCodec:
    return HeatmapCodec.from_config(cfg.codec)


def network_specs(cfg: Config, num_joints: int) -> dict[str, NetworkSpec]:
    """The NetworkSpec of every role the method trains."""
    specs = {}
    for role in METHOD_ROLES[cfg.method.name]:
        teacher = role != "student"
        specs[role] = NetworkSpec(
            role=role,
            model_name=cfg.model.teacher if teacher else cfg.model.student,
            num_joints=num_joints,
            pretrained=cfg.model.teacher_pretrained if teacher else cfg.model.student_pretrained,
            init_weights=getattr(cfg.model, f"{role}_init"),
            lr=cfg.optim.lr,
            weight_decay=cfg.optim.weight_decay,
            lr_steps=cfg.optim.lr_steps,
            lr_factor=cfg.optim.lr_factor,
            sup_weight=cfg.method.sup_weight,
            unsup_weight=cfg.method.unsup_weight,
            seed=cfg.train.seed,
            device=cfg.train.device,
            num_threads=cfg.train.num_threads,
            deterministic=cfg.train.deterministic,
            teacher_bn=cfg.method.teacher_bn,
            separate_forwards=cfg.method.separate_forwards,
        )
    return specs


def pseudo_label_store_dir(cfg: Config) -> Path | None:
    """Where SSPCM writes its pseudo labels (``RUN/pseudo_labels``), or None."""
    if cfg.method.name != "sspcm" or not cfg.method.store_pseudo_labels:
        return None
    return Path(cfg.train.out_dir) / "pseudo_labels"


def pcm_config(cfg: Config) -> PCMConfig:
    """PCM's thresholds and label shape from the ``method`` section (Gaussian sigma: the codec's)."""
    m = cfg.method
    return PCMConfig(score_thr=m.pcm_score_thr, pi_thr=m.pcm_pi_thr, label=m.pcm_label, sigma=cfg.codec.sigma)


def pseudo_label_config(cfg: Config, skeleton: Skeleton) -> PseudoLabelConfig:
    m = cfg.method
    store = pseudo_label_store_dir(cfg)
    return PseudoLabelConfig(
        input_size=cfg.codec.input_size,
        heatmap_size=cfg.codec.heatmap_size,
        flip_indices=skeleton.flip_indices,
        pcm=pcm_config(cfg),
        ssco=SSCOConfig(
            num_pairs=m.ssco_num_pairs,
            half_size_range=m.ssco_half_size,
            jitter_sigma=m.ssco_jitter_sigma,
            num_joints_real=skeleton.num_joints,
        ),
        seed=cfg.train.seed,
        sigma=cfg.codec.sigma,
        decode_method=cfg.codec.decode,
        store_dir=str(store) if store is not None else None,
        store_heatmaps=m.store_heatmaps,
        store_rows_per_file=m.store_rows_per_file,
        lanes=cfg.resources.data_parallel,
        dual_score_mask=m.dual_score_mask,
        occlusion_joints=m.occlusion_joints,
    )


def _checked(persons: list, skip_bad: bool, source: str) -> list:
    """Missing images fail fast by name; with ``skip_bad`` every image is decoded once and bad
    ones are skipped and counted (a large wild pool)."""
    if skip_bad:
        good, bad = check_image_files(persons, skip_bad=True)
        if bad:
            log.warning("%s: skipped %d unreadable image(s)", source, len(bad))
        return good
    check_images_exist(persons, source)
    return persons


@dataclass
class RunData:
    """The persons a run trains and validates on (``PersonRecord`` or ``PoolItem`` lists: boxes
    and keypoints in image space), and their skeleton."""

    skeleton: Skeleton
    labeled: list
    unlabeled: list
    val: list


def load_run_data(cfg: Config) -> RunData:
    """Read the labeled subset (first N persons), the unlabeled pool and the validation set."""
    d = cfg.data
    skeleton = get_skeleton(d.skeleton)
    labeled = load_coco_persons(
        d.labeled_ann, d.labeled_images, skeleton=skeleton, max_persons=d.num_labeled, order=d.labeled_order
    )
    labeled = _checked(labeled, d.skip_bad_images, d.labeled_ann)
    unlabeled: list = []
    if cfg.method.name != "supervised":
        if d.unlabeled_ann is not None:
            from pipeline.data.wild_pool import load_pool

            if d.unlabeled_boxes:  # boxes from a detector's COCO-results file
                pool_source = {"image_list_json": d.unlabeled_ann, "detections_json": d.unlabeled_boxes}
            else:  # boxes from the pool's own person annotations (keypoints are never used)
                pool_source = {"annotations_json": d.unlabeled_ann}
            unlabeled = list(
                load_pool(image_dir=d.unlabeled_images, min_keypoints=d.pool_min_keypoints, **pool_source)
            )
            unlabeled = _checked(unlabeled, d.skip_bad_images, d.unlabeled_ann)
        if d.pool_includes_labeled:
            unlabeled = unlabeled + load_coco_persons(d.labeled_ann, d.labeled_images, skeleton=skeleton)
        if not unlabeled:
            raise ConfigError(f"method {cfg.method.name!r} needs an unlabeled pool (data.unlabeled_ann)")
    val = _checked(
        load_coco_persons(d.val_ann, d.val_images, skeleton=skeleton), d.skip_bad_images, d.val_ann
    )
    log.info("data: %d labeled persons, %d unlabeled, %d validation", len(labeled), len(unlabeled), len(val))
    return RunData(skeleton, labeled, unlabeled, val)


def build_local(cfg: Config, data: RunData) -> tuple[dict[str, Network], PseudoLabeler]:
    """In-process networks and pseudo labeler for ``cfg``."""
    if cfg.train.num_threads > 0:
        torch.set_num_threads(cfg.train.num_threads)
    nets = {r: Network(s) for r, s in network_specs(cfg, data.skeleton.num_joints).items()}
    return nets, PseudoLabeler(pseudo_label_config(cfg, data.skeleton))


def variant_config(cfg: Config, method: str, suffix: str) -> Config:
    """``cfg`` with another method, in ``<out_dir><suffix>``."""
    return dataclasses.replace(
        cfg,
        method=dataclasses.replace(cfg.method, name=method),
        train=dataclasses.replace(cfg.train, out_dir=cfg.train.out_dir + suffix),
    )


def burn_in_configs(cfg: Config, steps: int, lr: float) -> dict[str, Config]:
    """The three burn-in runs (``<out_dir>_burn_in_<name>``): supervised, constant ``lr``,
    ``steps`` steps, one thread each, seeds ``100 * train.seed + 1, 2, 3``."""
    epochs = max(1, min(10, steps))
    out = {}
    for k, name in enumerate(("a", "b", "c")):
        b = variant_config(cfg, "supervised", f"_burn_in_{name}")
        out[name] = dataclasses.replace(
            b,
            optim=dataclasses.replace(
                cfg.optim, epochs=epochs, steps_per_epoch=max(1, steps // epochs), lr=lr, lr_steps=()
            ),
            train=dataclasses.replace(
                b.train, seed=cfg.train.seed * 100 + k + 1, num_threads=1, eval_every_epochs=0
            ),
        )
    return out
