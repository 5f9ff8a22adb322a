"""The network actor: one :class:`pipeline.models.network.Network` on its own device.

It adds nothing to the method but ``pid`` (used to find and, in tests, kill its process) and
``ping`` (to wait for a restarted actor). Everything else is the in-process class's own methods,
called through ``.remote``.
"""

from __future__ import annotations

import os

import ray

from pipeline.models.network import Network, NetworkSpec


class NetworkHost(Network):
    def __init__(self, spec: NetworkSpec):
        super().__init__(spec)

    def pid(self) -> int:
        return os.getpid()

    def ping(self) -> str:
        return self.spec.role


NetworkActor = ray.remote(NetworkHost)
