from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fakeserver import FakeCluster

from rctl_agent.agent import Agent
from rctl_agent.client import ClusterClient
from rctl_agent.config import AgentConfig
from rctl_agent.executors import ExecutorRegistry
from rctl_agent.retry import RetryPolicy


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("RCTL_BIN"):
        return
    skip = pytest.mark.skip(reason="integration test: set RCTL_BIN to an rctl binary")
    for item in items:
        if "integration" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def cluster() -> Iterator[FakeCluster]:
    with FakeCluster(3) as c:
        yield c


def fast_policy(**kw: Any) -> RetryPolicy:
    """Real time, but tiny delays: tests that need real sockets stay fast."""
    kw.setdefault("base_delay", 0.01)
    kw.setdefault("max_delay", 0.1)
    return RetryPolicy(**kw)


def make_client(seeds: list[str], **kw: Any) -> ClusterClient:
    kw.setdefault("policy", fast_policy())
    kw.setdefault("grace", 0.2)
    kw.setdefault("connect_timeout", 0.5)
    return ClusterClient(seeds, **kw)


class AgentRunner:
    """Runs an Agent in a thread; ``stop`` drains it and returns its error, if any."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.agent.run()
        except Exception as e:  # surfaced by stop()
            self.error = e

    def start(self) -> AgentRunner:
        self.thread.start()
        return self

    def stop(self, *, hurry: bool = False, timeout: float = 15.0) -> BaseException | None:
        if self.thread.is_alive():
            self.agent.request_stop()
            if hurry:
                self.agent.request_stop()
            self.thread.join(timeout)
            assert not self.thread.is_alive(), "agent did not stop"
        return self.error


@pytest.fixture
def start_agent(cluster: FakeCluster) -> Iterator[Callable[..., AgentRunner]]:
    runners: list[AgentRunner] = []

    def start(
        seeds: list[str] | None = None,
        *,
        executors: ExecutorRegistry | None = None,
        client: ClusterClient | None = None,
        **cfg: Any,
    ) -> AgentRunner:
        cfg.setdefault("node_id", "n-test")
        cfg.setdefault("write_timeout", 1.0)
        cfg.setdefault("min_heartbeat_timeout", 0.5)
        cfg.setdefault("drain_timeout", 5.0)
        cfg.setdefault("final_flush_timeout", 3.0)
        cfg.setdefault("register_timeout", 5.0)
        cfg.setdefault("default_interval", 0.05)
        cfg.setdefault("stuck_timeout", 3.0)
        if client is None:
            client = make_client(seeds or [s.addr for s in cluster.servers])
        agent = Agent(AgentConfig(**cfg), client, executors=executors)
        runner = AgentRunner(agent).start()
        runners.append(runner)
        return runner

    yield start
    for r in runners:
        r.stop(hurry=True)
