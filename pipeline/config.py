"""Typed run configuration: frozen dataclasses per section, loaded from YAML plus overrides.

A config file is a YAML mapping ``section -> field -> value``. Overrides use
``--section.field=value`` (the value is parsed as YAML). Unknown sections or fields, and values
of the wrong type, raise :class:`ConfigError` naming the file and the dotted field.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """A config file or override names an unknown field or holds a value of the wrong type."""


@dataclass(frozen=True)
class DataConfig:
    """Where the labeled, unlabeled and validation sets live (COCO format)."""

    labeled_ann: str = "data/synthetic/train/annotations.json"
    labeled_images: str = "data/synthetic/train/images"
    # The labeled subset is the first N persons in annotation order (paper protocol); None = all.
    num_labeled: int | None = None
    # Unlabeled "wild" pool: a COCO json whose images (and person boxes) form the pool.
    unlabeled_ann: str | None = None
    unlabeled_images: str | None = None
    # Optional COCO-results detections file giving the pool's person boxes instead of annotations.
    unlabeled_boxes: str | None = None
    # Or the pool packed into Parquet by `python -m jobs.pack_pool` (a directory); read by the
    # Ray Data stream, so it needs loader="ray_data" and resources.runtime="ray".
    unlabeled_parquet: str | None = None
    # Paper: the unlabeled set is the whole pool, labeled images included.
    pool_includes_labeled: bool = True
    # A pool read from annotations leaves out persons with fewer labelled keypoints (reference:
    # 1, no person annotated without keypoints); box-only annotations always count.
    pool_min_keypoints: int = 1
    # Order in which "the first num_labeled persons" are taken: annotation file order, or
    # images in file order with each image's persons in file order (the reference's database).
    labeled_order: Literal["annotations", "images"] = "annotations"
    val_ann: str = "data/synthetic/val/annotations.json"
    val_images: str = "data/synthetic/val/images"
    # A built-in skeleton (coco17, mpii16, aic14, crowdpose14, posetrack18) or a skeleton file
    # (YAML/JSON: joint names, OKS sigmas, flip pairs, limbs; see pipeline/data/skeletons.py).
    skeleton: str = "coco17"
    # Skip (and count) unreadable images instead of failing on the first one.
    skip_bad_images: bool = False
    num_workers: int = 0
    # How batches are built under the Ray runtime: a torch DataLoader in the driver, or a Ray
    # Data stream on CPU workers (decode, crop, easy/hard views) iterated with prefetch.
    loader: Literal["torch", "ray_data"] = "torch"
    prefetch_batches: int = 2


@dataclass(frozen=True)
class CodecConfig:
    """Network input and heatmap geometry (W, H) and the Gaussian target."""

    input_size: tuple[int, int] = (192, 256)
    heatmap_size: tuple[int, int] = (48, 64)
    sigma: float = 2.0
    decode: Literal["argmax", "dark"] = "argmax"


@dataclass(frozen=True)
class ModelConfig:
    """Architectures of the teachers (A, B) and the student (C), and local pretrained weights."""

    teacher: str = "simplebaseline_resnet18"
    student: str = "simplebaseline_resnet18"
    teacher_pretrained: str | None = None
    student_pretrained: str | None = None
    # Start a network from a trained POSE checkpoint of this project (the whole model, head
    # included): a ``<role>.pt`` file, a checkpoint directory or a run directory (its latest
    # checkpoint), local or a URI. E.g. supervised burn-in runs, or released teachers.
    teacher_a_init: str | None = None
    teacher_b_init: str | None = None
    student_init: str | None = None


@dataclass(frozen=True)
class AugmentConfig:
    """Easy view (teachers' input) and hard affine (on top of the easy view) ranges."""

    rotation_sigma: float = 30.0
    rotation_max: float = 60.0
    easy_rotation_prob: float = 0.6
    hard_rotation_prob: float = 0.8
    scale_sigma: float = 0.25
    scale_min: float = 0.75
    scale_max: float = 1.25
    flip_prob: float = 0.5
    box_padding: float = 1.25


@dataclass(frozen=True)
class MethodConfig:
    """Which training method, and the SSPCM / Dual Network knobs."""

    name: Literal["supervised", "dual", "sspcm"] = "supervised"
    sup_weight: float = 0.5
    unsup_weight: float = 1.0
    # Linear ramp of the consistency weight from 0 over the first N steps (0 = paper: none).
    unsup_warmup_steps: int = 0
    # Previous-epoch teachers: frozen copies (exact) or last epoch's labels from the store.
    previous_teachers: Literal["snapshot", "cache"] = "snapshot"
    # SSPCM writes every step's pseudo labels to RUN/pseudo_labels (needed by ``cache``).
    store_pseudo_labels: bool = True
    store_heatmaps: bool = True
    # When an epoch ends its step files are compacted: one file per store writer (0), or files
    # of at most this many rows each.
    store_rows_per_file: int = 0
    pcm_score_thr: float = 0.1
    pcm_pi_thr: float | None = None
    # Dual Network's consistency loss: weight 1 on every joint (reference, False), or SSPCM's
    # score mask (mean teacher peak > pcm_score_thr) borrowed by the baseline (True).
    dual_score_mask: bool = False
    # Joints SSCO and Joint Cutout draw their patch centres from: every joint (reference) or
    # only those that pass the score mask ("kept").
    occlusion_joints: Literal["all", "kept"] = "all"
    # BatchNorm mode of the teachers' pseudo-label forwards (current and previous-epoch):
    # "train" = batch statistics (reference), "eval" = running statistics.
    teacher_bn: Literal["train", "eval"] = "train"
    # Labeled and hard batches through separate forwards in a training step (reference), or
    # one forward over both (BatchNorm statistics shared).
    separate_forwards: bool = True
    # C's label: the chosen pair's mean heatmap (paper) or one Gaussian at its peak (codec sigma).
    pcm_label: Literal["mean", "gaussian"] = "mean"
    ssco_num_pairs: int = 2
    ssco_half_size: tuple[int, int] = (10, 20)
    ssco_jitter_sigma: float = 10.0


@dataclass(frozen=True)
class OptimConfig:
    """Adam with step decay (paper: lr 1e-3, x0.1 at epochs 70 and 90 of 100)."""

    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_steps: tuple[int, ...] = (70, 90)
    lr_factor: float = 0.1
    epochs: int = 100
    batch_size: int = 32
    unlabeled_batch_size: int = 32
    # Cap on optimizer steps per epoch (None = one pass over the labeled set).
    steps_per_epoch: int | None = None


@dataclass(frozen=True)
class TrainConfig:
    """Run bookkeeping: output directory, seed, device, logging and checkpoint cadence."""

    out_dir: str = "runs/default"
    seed: int = 0
    device: str = "cpu"
    num_threads: int = 0  # torch intra-op threads; 0 = leave torch's default
    log_every: int = 10
    checkpoint_every_epochs: int = 1
    # Also checkpoint every N optimizer steps inside an epoch (0 = only at epoch ends).
    checkpoint_every_steps: int = 0
    # Where checkpoints go: None = <out_dir>/checkpoints; or a local path or a pyarrow filesystem
    # URI (file:///abs/dir, s3://bucket/prefix, gs://...) so a cluster's checkpoints outlive its nodes.
    checkpoint_uri: str | None = None
    # Checkpoints kept: the newest N, plus the newest one of the epoch before the latest (the
    # previous-epoch teachers an export's PCM uses); older ones are deleted once a new one is
    # complete. 0 = keep every checkpoint.
    keep_checkpoints: int = 3
    eval_every_epochs: int = 0  # 0 = only at the end
    # torch.use_deterministic_algorithms in every network (bitwise-repeatable CPU runs).
    deterministic: bool = False


@dataclass(frozen=True)
class ResourcesConfig:
    """Where the networks run: the only section that differs between a laptop and a cluster."""

    runtime: Literal["local", "ray"] = "local"
    # Ray address to attach to; None starts a local instance (inside `ray job submit`, the job's).
    address: str | None = None
    # GPUs to use for the networks: None = as many as the cluster has (0 on a laptop: CPU only).
    num_gpus: int | None = None
    # Networks sharing one GPU (fractional resources are derived from this one number).
    nets_per_gpu: int = 1
    # CPUs per actor; None = the cluster's CPUs shared between the actors and the data workers.
    cpus_per_actor: float | None = None
    # How often Ray restarts a dead network or pseudo-label actor before the run gives up.
    max_actor_restarts: int = 3
    # Data parallelism: each network role is a group of N Ray actors (ranks) in one
    # torch.distributed process group, its model in DistributedDataParallel; the batch
    # (optim.batch_size, optim.unlabeled_batch_size: global sizes) is split over the ranks.
    # Rank r of every role and a pseudo-label worker form lane r, placed together (one
    # placement-group bundle per lane). Supervised runs on Ray use Ray Train with N workers.
    data_parallel: int = 1
    # SyncBatchNorm over a role's ranks (None = on when data_parallel > 1).
    sync_batchnorm: bool | None = None
    # Placement of the lanes: PACK (fill a node first, spill over), SPREAD (ranks on different
    # nodes where possible), STRICT_PACK (one node), STRICT_SPREAD (a node per lane).
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = "PACK"
    # Upper bound of any collective (gradient all-reduce, SyncBatchNorm): a rank whose peer
    # died fails after this long instead of waiting forever.
    collective_timeout_s: float = 300.0

    @property
    def sync_bn(self) -> bool:
        return self.data_parallel > 1 if self.sync_batchnorm is None else bool(self.sync_batchnorm)


@dataclass(frozen=True)
class EvalConfig:
    flip_test: bool = False
    batch_size: int = 64


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    codec: CodecConfig = field(default_factory=CodecConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)

    def __post_init__(self) -> None:
        d = self.data
        if d.unlabeled_parquet is not None:  # a packed pool is streamed by Ray Data workers only
            if d.unlabeled_ann is not None:
                raise ConfigError("data.unlabeled_parquet and data.unlabeled_ann both name a pool: give one")
            if d.loader != "ray_data" or self.resources.runtime != "ray":
                raise ConfigError(
                    "data.unlabeled_parquet needs data.loader=ray_data and resources.runtime=ray"
                )
        if self.method.store_rows_per_file < 0:
            raise ConfigError(
                f"method.store_rows_per_file must be >= 0 (0 = one file per writer and epoch), "
                f"got {self.method.store_rows_per_file}"
            )
        if self.train.keep_checkpoints < 0:
            raise ConfigError(
                f"train.keep_checkpoints must be >= 0 (0 = keep all), got {self.train.keep_checkpoints}"
            )
        n = self.resources.data_parallel
        if n < 1:
            raise ConfigError(f"resources.data_parallel must be >= 1, got {n}")
        if n > 1:
            if self.resources.runtime != "ray":
                raise ConfigError("resources.data_parallel > 1 needs resources.runtime=ray")
            for name in ("batch_size", "unlabeled_batch_size"):
                size = getattr(self.optim, name)
                if size % n:
                    raise ConfigError(
                        f"optim.{name}={size} (the global batch) is not divisible by "
                        f"resources.data_parallel={n}"
                    )


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp`` (after YAML parsing) and convert lists to tuples."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported field type {tp!r}")


def _build(cls: type, values: Any, where: str) -> Any:
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"unknown field '{where}.{unknown[0]}' (known fields of {where!r}: {', '.join(sorted(known))})"
        )
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in values.items()}
    return cls(**kwargs)


def config_from_dict(data: dict, source: str = "<dict>") -> Config:
    """Build a :class:`Config`; errors name ``source`` and the dotted field."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: top level must be a mapping of sections")
    known = {f.name: f for f in dataclasses.fields(Config)}
    hints = typing.get_type_hints(Config)
    for section in data:
        if section not in known:
            raise ConfigError(f"{source}: unknown section {section!r} (known sections: {', '.join(known)})")
    sections = {}
    for name, value in data.items():
        try:
            sections[name] = _build(hints[name], value, name)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None
    return Config(**sections)


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``section.field=value`` strings (value parsed as YAML) to a nested dict, in place."""
    for item in overrides:
        text = item[2:] if item.startswith("--") else item
        if "=" not in text:
            raise ConfigError(f"override {item!r}: expected section.field=value")
        key, raw = text.split("=", 1)
        parts = key.split(".")
        if len(parts) != 2:
            raise ConfigError(f"override {item!r}: expected section.field=value")
        section, name = parts
        data.setdefault(section, {})
        if not isinstance(data[section], dict):
            raise ConfigError(f"override {item!r}: section {section!r} is not a mapping")
        data[section][name] = yaml.safe_load(raw)
    return data


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    """Load a YAML config (or defaults when ``path`` is None) and apply overrides."""
    data: dict = {}
    source = "<defaults>"
    if path is not None:
        p = Path(path)
        source = str(p)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        with open(p) as f:
            try:
                data = yaml.safe_load(f) or {}
            except yaml.YAMLError as e:
                raise ConfigError(f"{p}: not valid YAML: {e}") from None
    if overrides:
        apply_overrides(data, overrides)
        source += " + overrides"
    return config_from_dict(data, source)


def config_to_dict(cfg: Config) -> dict:
    """Plain nested dict (tuples as lists) suitable for YAML/JSON."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(cfg))


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    with open(tmp, "w") as f:
        yaml.safe_dump(config_to_dict(cfg), f, sort_keys=False)
    tmp.replace(p)
