"""The pseudo-label actor: PCM + SSCO + hard views (``PseudoLabeler``, pipeline/method) on CPU."""

from __future__ import annotations

import os

import ray
import torch

from pipeline.method.pseudo_labels import PseudoLabelConfig, PseudoLabeler


class PseudoLabelHost(PseudoLabeler):
    def __init__(self, cfg: PseudoLabelConfig, num_threads: int = 1):
        torch.set_num_threads(max(1, num_threads))
        super().__init__(cfg)

    def pid(self) -> int:
        return os.getpid()

    def ping(self) -> str:
        return "pseudo"


PseudoLabelActor = ray.remote(PseudoLabelHost)
