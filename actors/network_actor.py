"""The network actor: one :class:`pipeline.models.network.Network` on its own device.

It adds nothing to the method but ``pid`` (used to find and, in tests, kill its process),
``ping`` (to wait for a restarted actor) and ``free_address`` (the rendezvous of a data-parallel
role group, whose ranks then call ``Network.join_group``). Everything else is the in-process
class's own methods, called through ``.remote``.
"""

from __future__ import annotations

import os
import socket

import ray

from pipeline.models.network import Network, NetworkSpec


class NetworkHost(Network):
    def __init__(self, spec: NetworkSpec):
        super().__init__(spec)

    def pid(self) -> int:
        return os.getpid()

    def ping(self) -> str:
        return self.spec.role

    def node_id(self) -> str:
        return ray.get_runtime_context().get_node_id()

    def free_address(self) -> str:
        """``tcp://<this node's IP>:<a free port>``: the rendezvous of this role's process group
        (asked of rank 0)."""
        with socket.socket() as s:
            s.bind(("", 0))
            port = s.getsockname()[1]
        return f"tcp://{ray.util.get_node_ip_address()}:{port}"


NetworkActor = ray.remote(NetworkHost)
