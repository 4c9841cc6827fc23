from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
from pathlib import Path

import pytest
from conftest import agent_cmd, clean_env
from fakeserver import FakeCluster

from rctl_agent.cli import UsageError, main, parse_settings
from rctl_agent.state import load_or_create_node_id


def dead_addr() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"127.0.0.1:{port}"


def servers(cluster: FakeCluster) -> str:
    return ",".join(s.addr for s in cluster.servers)


# ---- flags ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        ([], "--servers is required"),
        (["--servers", "h:1", "--capacity", "0"], "--capacity must be an integer"),
        (["--servers", "h:1", "--capacity", "many"], "--capacity must be an integer"),
        (["--servers", "nohostport"], "--servers: address 'nohostport' is not host:port"),
        (["--servers", "h:1", "--node-id", "bad!"], "--node-id 'bad!' is not a valid id"),
        (["--servers", "h:1", "--log-level", "loud"], "--log-level must be one of"),
        (["--servers", "h:1", "--drain-timeout", "-1"], "--drain-timeout must be"),
        (["--servers", "h:1", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_flags_exit_2_with_one_line(
    argv: list[str],
    needle: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for k in list(os.environ):
        if k.startswith("RCTL_AGENT_"):
            monkeypatch.delenv(k)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("rctl-agent: ") and needle in err and "--help" in err


def test_flags_from_environment_and_flags_win() -> None:
    env = {
        "RCTL_AGENT_SERVERS": "a:1, b:2",
        "RCTL_AGENT_INSECURE": "1",
        "RCTL_AGENT_CAPACITY": "8",
        "RCTL_AGENT_CLOUD": "aws",
        "RCTL_AGENT_DRAIN_TIMEOUT": "2.5",
        "RCTL_AGENT_NODE_ID": "node-7",
        "RCTL_AGENT_STATE_DIR": "/tmp/x",
        "RCTL_AGENT_LOG_LEVEL": "DEBUG",
    }
    s = parse_settings(["--capacity", "3"], env)
    assert s.servers == ["a:1", "b:2"]
    assert s.capacity == 3  # the flag beats the environment
    assert (s.cloud, s.drain_timeout, s.node_id) == ("aws", 2.5, "node-7")
    assert str(s.state_dir) == "/tmp/x" and s.log_level == "debug"


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(UsageError, match="RCTL_AGENT_CAPACITY must be an integer"):
        parse_settings(["--insecure"], {"RCTL_AGENT_SERVERS": "a:1", "RCTL_AGENT_CAPACITY": "0"})


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "RCTL_AGENT_" in capsys.readouterr().out


def test_bad_flag_from_console_script() -> None:
    p = subprocess.run(
        [*agent_cmd(), "--capacity", "0", "--servers", "h:1"],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=30,
    )
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr


def test_unreachable_servers_exit_1_with_one_line(tmp_path: Path) -> None:
    addrs = f"{dead_addr()},{dead_addr()}"
    p = subprocess.run(
        [
            *agent_cmd(),
            "--insecure",
            "--log-level",
            "error",  # the failure is the only line; --insecure's warning is hidden
            "--servers",
            addrs,
            "--state-dir",
            str(tmp_path),
            "--connect-timeout",
            "0.5",
        ],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=30,
    )
    assert p.returncode == 1
    assert p.stderr.count("\n") == 1, p.stderr
    assert p.stderr.startswith(
        f"rctl-agent: no rctl server reachable at {addrs.replace(',', ', ')}"
    )
    assert "check --servers" in p.stderr


# ---- node id ------------------------------------------------------------


def test_node_id_created_once_and_reused(tmp_path: Path) -> None:
    state = tmp_path / "deep" / "state"
    first = load_or_create_node_id(state)
    assert re.fullmatch(r"n-[0-9a-f]{12}", first)
    assert load_or_create_node_id(state) == first
    assert (state / "node-id").read_text().strip() == first


def test_malformed_saved_node_id_is_refused(tmp_path: Path) -> None:
    (tmp_path / "node-id").write_text("-nope\n")
    with pytest.raises(ValueError, match="invalid node id"):
        load_or_create_node_id(tmp_path)


def run_until_registered(cluster: FakeCluster, argv: list[str], registers: int) -> str:
    """Start the console script, wait for its registration, SIGTERM it; return its id."""
    proc = subprocess.Popen(
        [*agent_cmd(), *argv],
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    try:
        cluster.wait_for(
            lambda: len(cluster.calls_of("Node.Register")) >= registers, what="registration"
        )
        cluster.wait_for(lambda: len(cluster.calls_of("Node.Heartbeat")) >= 1, what="heartbeat")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    return str(cluster.calls_of("Node.Register")[registers - 1].args["id"])


def test_node_id_persists_across_restarts(cluster: FakeCluster, tmp_path: Path) -> None:
    argv = ["--insecure", "--servers", servers(cluster), "--state-dir", str(tmp_path / "st")]
    first = run_until_registered(cluster, argv, 1)
    second = run_until_registered(cluster, argv, 2)
    assert first == second
    assert re.fullmatch(r"n-[0-9a-f]{12}", first)
    assert (tmp_path / "st" / "node-id").read_text().strip() == first


# ---- SIGTERM drain, end to end -------------------------------------------


def test_sigterm_drains_finishes_task_and_deregisters(cluster: FakeCluster, tmp_path: Path) -> None:
    node = "n-sigterm"
    cluster.add_task("t1", "shell", {"cmd": "sleep 0.5; echo done"}, node=node)
    argv = [
        "--insecure",
        "--executors",
        "sleep,shell",
        "--servers",
        servers(cluster),
        "--node-id",
        node,
        "--state-dir",
        str(tmp_path),
        "--drain-timeout",
        "10",
        "--capacity",
        "2",
    ]
    proc = subprocess.Popen(
        [*agent_cmd(), *argv], stderr=subprocess.PIPE, text=True, env=clean_env()
    )
    try:
        cluster.wait_for(lambda: cluster.tasks["t1"]["status"] == "running", what="t1 running")
        proc.send_signal(signal.SIGTERM)
        cluster.wait_for(
            lambda: any(c.args.get("draining") for c in cluster.calls_of("Node.Heartbeat")),
            what="draining heartbeat",
        )
        assert cluster.tasks["t1"]["status"] == "running"  # still finishing
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert cluster.tasks["t1"]["status"] == "complete"
    assert cluster.tasks["t1"]["result"]["output"] == "done\n"
    methods = [c.method for c in cluster.calls if c.method in ("Task.Complete", "Node.Deregister")]
    assert methods == ["Task.Complete", "Node.Deregister"]
    assert node not in cluster.nodes
