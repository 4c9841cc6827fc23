"""End to end against a real ``rctl serve`` (set RCTL_BIN to the binary)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import AgentRunner, make_client

from rctl_agent.agent import Agent
from rctl_agent.client import ClusterClient, ClusterUnavailable
from rctl_agent.config import AgentConfig

pytestmark = pytest.mark.integration


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def rctl_server(tmp_path: Path) -> Iterator[str]:
    addr = f"127.0.0.1:{free_port()}"
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [
            os.environ["RCTL_BIN"],
            "serve",
            "--node-id",
            "s1",
            "--data-dir",
            str(tmp_path / "data"),
            "--bind",
            addr,
            "--peers",
            f"s1={addr}",
            "--heartbeat-interval",
            "200ms",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    client = make_client([addr])
    deadline = time.monotonic() + 15
    while True:
        try:
            status = client.call("Status.Get", {}, timeout=1)
            if status.get("state") == "leader":
                break
        except ClusterUnavailable:
            pass
        assert proc.poll() is None, (tmp_path / "server.log").read_text()
        assert time.monotonic() < deadline, "no leader within 15 s"
        time.sleep(0.1)
    client.close()
    yield addr
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


def test_agent_runs_a_shell_task_on_a_real_server(rctl_server: str) -> None:
    client = make_client([rctl_server])
    config = AgentConfig(node_id="n-int", capacity=2, drain_timeout=5)
    runner = AgentRunner(Agent(config, ClusterClient([rctl_server]))).start()
    try:
        client.call(
            "Task.Add",
            {"id": "int-1", "type": "shell", "payload": {"cmd": "echo integration"}},
            timeout=5,
        )
        deadline = time.monotonic() + 30
        while True:
            task = client.call("Task.Get", {"id": "int-1"}, timeout=5)["task"]
            if task["status"] in ("complete", "failed"):
                break
            assert time.monotonic() < deadline, f"task stuck in {task['status']}"
            time.sleep(0.2)
        assert task["status"] == "complete", task
        assert task["result"]["output"] == "integration\n"
        assert task["node_id"] == "n-int"
    finally:
        assert runner.stop() is None
        nodes = client.call("Node.List", {}, timeout=5)["nodes"]
        assert all(n["id"] != "n-int" for n in nodes)  # deregistered
        client.close()
