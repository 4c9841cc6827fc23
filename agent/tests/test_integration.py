"""End to end against a real ``rctl serve`` (set RCTL_BIN to the binary)."""

from __future__ import annotations

import json
import os
import pwd
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import AgentProcess, AgentRunner, Certs, make_client, wait_until

from rctl_agent.agent import Agent
from rctl_agent.client import ClusterClient, ClusterUnavailable
from rctl_agent.config import AgentConfig
from rctl_agent.executors import ExecutorRegistry
from rctl_agent.tls import ClientTLS
from rctl_agent.wire import Connection, RpcError

pytestmark = pytest.mark.integration


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


def eventually(what: str, check: Callable[[], Any], timeout: float = 30) -> Any:
    """Call ``check`` until it returns a truthy value; fail after ``timeout``."""
    return wait_until(check, timeout, what, poll=0.1)  # each check is an RPC: not too often


StartServer = Callable[..., str]


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """Start a one-server cluster; ``tls`` is (ca, crt, key) or None for --insecure.

    Returns its address once a client (``tls_client``, or plaintext) sees it lead.
    """
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(
        tls: tuple[Path, Path, Path] | None = None, tls_client: ClientTLS | None = None
    ) -> str:
        addr = f"127.0.0.1:{free_port()}"
        logfile = tmp_path / "server.log"
        argv = [os.environ["RCTL_BIN"], "serve", "--node-id", "s1"]
        argv += ["--data-dir", str(tmp_path / "data"), "--bind", addr, "--peers", f"s1={addr}"]
        argv += ["--heartbeat-interval", "200ms"]
        if tls is None:
            argv.append("--insecure")
        else:
            argv += ["--tls-ca", str(tls[0]), "--tls-cert", str(tls[1]), "--tls-key", str(tls[2])]
        with logfile.open("w") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        procs.append((proc, logfile))
        client = make_client([addr], tls=tls_client)

        def leads() -> bool:
            assert proc.poll() is None, logfile.read_text()
            try:
                return bool(client.call("Status.Get", {}, timeout=1).get("state") == "leader")
            except ClusterUnavailable:
                return False

        try:
            eventually("a leader", leads, timeout=15)
        finally:
            client.close()
        return addr

    yield start
    for proc, _ in procs:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_agent_runs_a_shell_task_on_a_real_server(start_server: StartServer) -> None:
    addr = start_server()
    client = make_client([addr])
    config = AgentConfig(node_id="n-int", capacity=2, drain_timeout=5)
    executors = ExecutorRegistry(enabled=["sleep", "shell"])
    runner = AgentRunner(Agent(config, ClusterClient([addr]), executors=executors)).start()
    try:
        client.call(
            "Task.Add",
            {"id": "int-1", "type": "shell", "payload": {"cmd": "echo integration"}},
            timeout=5,
        )

        def ended() -> dict[str, Any] | None:
            task: dict[str, Any] = client.call("Task.Get", {"id": "int-1"}, timeout=5)["task"]
            return task if task["status"] in ("complete", "failed") else None

        task = eventually("int-1 to end", ended)
        assert task["status"] == "complete", task
        assert task["result"]["output"] == "integration\n"
        assert task["node_id"] == "n-int"
    finally:
        assert runner.stop() is None
        nodes = client.call("Node.List", {}, timeout=5)["nodes"]
        assert all(n["id"] != "n-int" for n in nodes)  # deregistered
        client.close()


def test_agent_over_mutual_tls_with_a_real_server(
    start_server: StartServer, certs: Certs, tmp_path: Path
) -> None:
    """The real command with TLS flags only, against `rctl serve` with TLS: it
    registers as its certificate's node, runs a shell task (as nobody when
    root), and its certificate cannot act for another node."""
    server_crt, server_key = certs.make("server", "s1", hosts=("127.0.0.1",))
    agent_tls = certs.agent_tls("n-mtls")
    addr = start_server((certs.ca, server_crt, server_key), tls_client=agent_tls)

    op_crt, op_key = certs.make("operator", "alice")
    secret = tmp_path / "bootstrap.secret"
    secret.write_text("0123456789abcdef0123456789abcdef\n")
    secret.chmod(0o600)
    op = [os.environ["RCTL_BIN"], "--addr", addr, "--tls-ca", str(certs.ca)]
    op += ["--tls-cert", str(op_crt), "--tls-key", str(op_key), "-o", "json"]

    def rctl(*args: str) -> Any:
        p = subprocess.run([*op, *args], capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout) if p.stdout.strip() else None

    rctl("acl", "bootstrap", "--secret-file", str(secret))
    op += ["--token", secret.read_text().strip()]

    argv = [*certs.agent_flags("n-mtls"), "--servers", addr, "--executors", "sleep,shell"]
    with AgentProcess([*argv, "--state-dir", str(tmp_path / "state")]) as agent:
        rctl("task", "add", "--id", "mtls-1", "--type", "shell", "--payload", "cmd=id -un")

        def ended() -> dict[str, Any] | None:
            task: dict[str, Any] = rctl("task", "get", "mtls-1")
            task = task.get("task", task)
            return task if task["status"] in ("complete", "failed") else None

        task = eventually("mtls-1 to end", ended)
        assert task["status"] == "complete", (task, agent.proc.poll())
        runs_as = "nobody" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        assert task["result"]["output"] == f"{runs_as}\n"
        assert task["node_id"] == "n-mtls"

        # The server lets this certificate act for n-mtls only.
        client = make_client([addr], tls=agent_tls)
        with pytest.raises(RpcError) as info:
            client.call("Node.Register", {"id": "n-someone-else", "capacity": 1}, timeout=5)
        assert info.value.code == "permission_denied"
        client.close()

        # Pipelined calls from many threads on one TLS connection (answered
        # out of order by the real server).
        conn = Connection(addr, tls=agent_tls)
        errors: list[BaseException] = []

        def worker() -> None:
            try:
                for _ in range(30):
                    assert conn.call("Status.Get", {}, timeout=5)["state"] == "leader"
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == [] and not conn.closed
        assert conn.server_id == "s1"
        conn.close()

        assert agent.stop() == 0, agent.stderr
    assert "Traceback" not in agent.stderr
    assert "deregistered node n-mtls" in agent.stderr


def test_plaintext_agent_is_told_to_use_tls(
    start_server: StartServer, certs: Certs, tmp_path: Path
) -> None:
    server_crt, server_key = certs.make("server", "s1", hosts=("127.0.0.1",))
    addr = start_server((certs.ca, server_crt, server_key), tls_client=certs.agent_tls("n-mtls"))
    argv = ["--insecure", "--servers", addr, "--state-dir", str(tmp_path), "--log-level", "error"]
    with AgentProcess(argv) as agent:
        assert agent.wait() == 1
    assert agent.stderr.startswith("rctl-agent: the cluster refused to register node n-")
    assert "mutual TLS" in agent.stderr and agent.stderr.count("\n") == 1
