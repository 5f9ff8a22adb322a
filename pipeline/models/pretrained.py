"""Load a LOCAL ImageNet checkpoint into a pose model's backbone. Never downloads anything.

Accepted files: ``.pth``/``.pt`` (``torch.load(weights_only=True)``) holding a plain state dict
(torchvision) or one wrapped in ``{"state_dict": ...}`` / ``{"model": ...}`` (timm, training
scripts), possibly with ``module.`` prefixes (DataParallel/DDP); ``.safetensors`` when the
``safetensors`` package is installed. The classification head of the checkpoint (``fc.``,
``classifier.``, ``head.``, ``incre_modules.``, ``downsamp_modules.``, ``final_layer.``) is
ignored; the pose head of the model (its ``HEAD_PREFIXES``) keeps its own initialisation.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger(__name__)

CLASSIFIER_PREFIXES = ("fc.", "classifier.", "head.", "incre_modules.", "downsamp_modules.", "final_layer.")
WRAPPER_KEYS = ("state_dict", "model", "module")
_OPTIONAL_SUFFIX = "num_batches_tracked"  # absent from old torchvision / timm checkpoints


@dataclass(frozen=True)
class LoadReport:
    """What ``load_backbone_checkpoint`` did.

    loaded: number of tensors copied into the model.
    ignored: checkpoint keys dropped as classification head.
    unused: other checkpoint keys with no counterpart in the model (e.g. the extra stage-4
        fuse layers of the HRNet classification net).
    """

    path: str
    loaded: int
    ignored: tuple[str, ...]
    unused: tuple[str, ...]


def _read_file(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError as err:
            raise ImportError(
                f"{path}: reading .safetensors needs the 'safetensors' package, which is not installed; "
                "convert the file to .pth with torch.save(state_dict) or install safetensors"
            ) from err
        return load_file(str(path), device="cpu")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"{path}: cannot be read with torch.load(weights_only=True) (it holds more than tensors); "
            "re-save only its state dict"
        ) from err


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    """Find the state dict inside a checkpoint and strip ``module.`` prefixes."""
    while isinstance(obj, dict):
        wrapper = next((k for k in WRAPPER_KEYS if k in obj and isinstance(obj[k], dict)), None)
        if wrapper is None:
            break
        obj = obj[wrapper]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(
            f"{path}: not a state dict (expected a dict of tensors, possibly under 'state_dict' or 'model')"
        )
    state = {}
    for key, value in obj.items():
        while key.startswith("module."):
            key = key[len("module.") :]
        state[key] = value
    return state


def load_backbone_checkpoint(model: nn.Module, path: str | Path) -> LoadReport:
    """Copy a local ImageNet checkpoint into the backbone of ``model`` (in place).

    Every backbone tensor of the model (all state-dict entries outside ``model.HEAD_PREFIXES``,
    ``num_batches_tracked`` optional) must be present with the same shape, else ``ValueError``
    naming the file and the offending keys; nothing is copied in that case.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ImportError: a ``.safetensors`` file without the ``safetensors`` package.
        ValueError: not a state dict, missing backbone keys, or shape mismatches.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained checkpoint not found: {path}")
    state = _unwrap(_read_file(path), path)
    head_prefixes: tuple[str, ...] = tuple(getattr(model, "HEAD_PREFIXES", ()))
    target = model.state_dict()
    backbone = {k: v for k, v in target.items() if not k.startswith(head_prefixes)}

    ignored = tuple(sorted(k for k in state if k.startswith(CLASSIFIER_PREFIXES)))
    candidates = {k: v for k, v in state.items() if not k.startswith(CLASSIFIER_PREFIXES)}
    unused = tuple(sorted(k for k in candidates if k not in backbone))
    missing = [k for k in backbone if k not in candidates and not k.endswith(_OPTIONAL_SUFFIX)]
    mismatched = [
        f"{k}: checkpoint {tuple(candidates[k].shape)} vs model {tuple(backbone[k].shape)}"
        for k in backbone
        if k in candidates and candidates[k].shape != backbone[k].shape
    ]
    if missing or mismatched:
        lines = [f"{path}: checkpoint does not fit the backbone of {type(model).__name__}"]
        if mismatched:
            lines.append(f"{len(mismatched)} shape mismatches: " + "; ".join(mismatched[:20]))
        if missing:
            lines.append(f"{len(missing)} missing backbone keys: " + ", ".join(missing[:20]))
        raise ValueError("\n".join(lines))

    loaded = 0
    with torch.no_grad():
        for key, dst in backbone.items():
            if key in candidates:
                dst.copy_(candidates[key])
                loaded += 1
    report = LoadReport(path=str(path), loaded=loaded, ignored=ignored, unused=unused)
    log.info(
        "loaded %d backbone tensors from %s (%d classifier keys ignored, %d unused)",
        loaded,
        path,
        len(ignored),
        len(unused),
    )
    if unused:
        log.warning("%s: %d checkpoint keys not used by the model, e.g. %s", path, len(unused), unused[:5])
    return report
