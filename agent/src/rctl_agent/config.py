"""Settings of one node agent."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field


@dataclass
class AgentConfig:
    """Settings of one agent.

    :param node_id: the node's id (as task ids).
    :param capacity: tasks run at once (1-65536), sent at registration.
    :param cloud: cloud label (tasks with a ``cloud`` constraint match it).
    :param region: region label.
    :param address: address label (default: the host name).
    :param meta: free-form labels.
    :param drain_timeout: seconds in-flight tasks get to finish after a stop
        request before they are killed and reported failed.
    :param register_timeout: seconds the first registration may take before
        the agent gives up (later re-registrations never give up).
    :param write_timeout: seconds per write call attempt (WAN-sized).
    :param min_heartbeat_timeout: floor of the heartbeat call timeout, which
        otherwise equals the heartbeat interval.
    :param final_flush_timeout: seconds the shutdown waits for reports.
    :param default_interval: heartbeat interval until the leader sends one.
    :param stuck_timeout: seconds to wait for killed tasks to end at shutdown.
    """

    node_id: str
    capacity: int = 4
    cloud: str = ""
    region: str = ""
    address: str = field(default_factory=socket.gethostname)
    meta: dict[str, str] = field(default_factory=dict)
    drain_timeout: float = 30.0
    register_timeout: float = 60.0
    write_timeout: float = 5.0
    min_heartbeat_timeout: float = 1.0
    final_flush_timeout: float = 10.0
    default_interval: float = 1.0
    stuck_timeout: float = 10.0

    def __post_init__(self) -> None:
        if not 1 <= self.capacity <= 65536:
            raise ValueError("capacity must be between 1 and 65536")
        if self.drain_timeout < 0:
            raise ValueError("drain_timeout must be >= 0")


class AgentError(Exception):
    """The agent cannot go on; the message is one sentence for the operator."""
