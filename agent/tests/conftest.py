from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from fakeserver import FakeCluster

from rctl_agent.agent import Agent
from rctl_agent.client import ClusterClient
from rctl_agent.config import AgentConfig
from rctl_agent.executors import ExecutorRegistry
from rctl_agent.retry import RetryPolicy
from rctl_agent.tls import ClientTLS


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


T = TypeVar("T")


def wait_until(
    pred: Callable[[], T], timeout: float = 10.0, what: str = "condition", *, poll: float = 0.01
) -> T:
    """Call ``pred`` every ``poll`` s until it returns something truthy, and
    return that; fail after ``timeout`` s, naming ``what``.

    For conditions nothing notifies (a process gone, a thread parked, a real
    server's state); fake-cluster state has ``FakeCluster.wait_for``.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(poll)


def parked_in(thread: threading.Thread, caller: str) -> bool:
    """Whether ``thread`` is blocked in a ``wait`` (``threading.Condition.wait``,
    the agent's ``Waker.wait``) called straight from the function named
    ``caller`` (read from its stack): from then on only a notify, a wake or
    the wait's own timeout moves it on."""
    frame = sys._current_frames().get(thread.ident or -1)
    return (
        frame is not None
        and frame.f_code.co_name == "wait"
        and frame.f_back is not None
        and frame.f_back.f_code.co_name == caller
    )


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


# ---- the console script ---------------------------------------------------


def agent_cmd() -> list[str]:
    """The installed console script (falls back to ``python -m rctl_agent``)."""
    script = Path(sys.executable).parent / "rctl-agent"
    return [str(script)] if script.exists() else [sys.executable, "-m", "rctl_agent"]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RCTL_AGENT_")}
    env.update(extra)
    return env


class AgentProcess:
    """The real ``rctl-agent`` command in a child process (stderr captured)."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [*agent_cmd(), *argv],
            stderr=subprocess.PIPE,
            text=True,
            env=env if env is not None else clean_env(),
        )
        self.stderr = ""

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM (a drain), wait; return the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout: float = 20) -> int:
        try:
            _, self.stderr = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, self.stderr = self.proc.communicate()
            raise AssertionError(
                f"rctl-agent did not exit within {timeout} s:\n{self.stderr}"
            ) from None
        return self.proc.returncode

    def __enter__(self) -> AgentProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        if self.proc.stderr is not None and not self.proc.stderr.closed:
            _, self.stderr = self.proc.communicate()


# ---- certificates made by `rctl tls` --------------------------------------


def _rctl_tls_bin() -> str:
    """$RCTL_BIN if it has the `tls` subcommand; skips the test otherwise."""
    rctl = os.environ.get("RCTL_BIN")
    if not rctl:
        pytest.skip("TLS test: set RCTL_BIN to an rctl binary (certificates come from `rctl tls`)")
    probe = subprocess.run(
        [rctl, "tls", "cert", "create", "--help"], capture_output=True, text=True, timeout=30
    )
    if probe.returncode != 0:
        pytest.skip(
            f"TLS test: {rctl} has no `tls cert create` subcommand; "
            "rebuild it (cd /work/main && go build -o bin/rctl .)"
        )
    return rctl


@dataclass
class Certs:
    """Certificates from ``rctl tls``: a cluster CA and a foreign one."""

    rctl: str
    root: Path

    @property
    def ca(self) -> Path:
        return self.root / "ca" / "ca.crt"

    @property
    def other_ca(self) -> Path:
        return self.root / "other-ca" / "ca.crt"

    def make(
        self, role: str, name: str, *, hosts: tuple[str, ...] = (), ca: str = "ca"
    ) -> tuple[Path, Path]:
        """Create (once) and return ``(crt, key)`` of a certificate from CA ``ca``."""
        out = self.root / ca / f"{role}-{name}-{'-'.join(hosts)}"
        crt, key = out / f"{name}.crt", out / f"{name}.key"
        if not crt.exists():
            argv = [self.rctl, "tls", "cert", "create", "--ca-dir", str(self.root / ca)]
            argv += ["--role", role, "--name", name, "--out", str(out)]
            for h in hosts:
                argv += ["--host", h]
            subprocess.run(argv, check=True, capture_output=True, timeout=30)
        return crt, key

    def agent_tls(self, name: str) -> ClientTLS:
        crt, key = self.make("agent", name)
        return ClientTLS.load(self.ca, crt, key)

    def agent_flags(self, name: str) -> list[str]:
        crt, key = self.make("agent", name)
        return ["--tls-ca", str(self.ca), "--tls-cert", str(crt), "--tls-key", str(key)]

    def impostor(self, role: str) -> tuple[Path, Path]:
        """A ``role`` certificate from the cluster CA that also carries the DNS
        SAN server.rctl, so only the URI SAN check can tell it from a server's.

        ``rctl tls cert create`` refuses to make one (``--host`` is for servers
        only), so openssl signs it with the cluster CA's key.
        """
        openssl = shutil.which("openssl")
        if openssl is None:
            pytest.skip("needs openssl to make a certificate rctl tls does not make")
        out = self.root / "ca" / f"{role}-impostor"
        out.mkdir(exist_ok=True)
        crt, key, csr, ext = (out / n for n in ("i.crt", "i.key", "i.csr", "ext.cnf"))
        ext.write_text(
            f"subjectAltName=URI:spiffe://rctl/{role}/impostor,DNS:server.rctl\n"
            "extendedKeyUsage=serverAuth,clientAuth\n"
        )
        ca_dir = self.root / "ca"
        for argv in (
            ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
            + ["-keyout", str(key), "-out", str(csr), "-subj", "/CN=impostor"],
            ["x509", "-req", "-in", str(csr), "-CA", str(ca_dir / "ca.crt")]
            + ["-CAkey", str(ca_dir / "ca.key"), "-CAcreateserial", "-days", "1"]
            + ["-out", str(crt), "-extfile", str(ext)],
        ):
            subprocess.run([openssl, *argv], check=True, capture_output=True, timeout=30)
        return crt, key


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    rctl = _rctl_tls_bin()
    root = tmp_path_factory.mktemp("certs")
    for ca in ("ca", "other-ca"):
        argv = [rctl, "tls", "ca", "create", "--dir", str(root / ca)]
        subprocess.run(argv, check=True, capture_output=True, timeout=30)
    return Certs(rctl, root)
