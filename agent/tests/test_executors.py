from __future__ import annotations

import os
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from conftest import wait_until

from rctl_agent import executors as ex
from rctl_agent.executors import (
    OUTPUT_LIMIT,
    ExecutorError,
    ExecutorRegistry,
    ShellExecutor,
    SleepExecutor,
    TaskResult,
    TaskSpec,
    tail_text,
)


def shell(cmd: str, **payload: str) -> TaskSpec:
    return TaskSpec(id="t1", type="shell", payload={"cmd": cmd, **payload})


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its reaper counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def wait_gone(pid: int, timeout: float = 3.0) -> bool:
    return wait_until(lambda: not pid_alive(pid), timeout, f"process {pid} to be gone")


def test_shell_exit_code_and_combined_output() -> None:
    r = ShellExecutor().run(shell("echo out; echo err >&2; exit 3"), threading.Event())
    assert r.exit_code == 3
    assert "out\n" in r.output and "err\n" in r.output
    assert not r.ok and r.error == ""


def test_shell_success_and_task_env() -> None:
    r = ShellExecutor().run(shell('printf "%s" "$RCTL_TASK_ID"'), threading.Event())
    assert r.ok and r.output == "t1"


def test_shell_keeps_last_64k_of_output() -> None:
    cmd = "head -c 200000 /dev/zero | tr '\\0' a; printf END"
    r = ShellExecutor().run(shell(cmd), threading.Event())
    assert r.ok
    assert len(r.output.encode()) == OUTPUT_LIMIT
    assert r.output.endswith("aEND")


def test_shell_timeout_kills_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    cmd = f"sleep 30 & echo $! > {pidfile}; echo started; wait"
    start = time.monotonic()
    r = ShellExecutor(kill_grace=1).run(shell(cmd, timeout="0.3"), threading.Event())
    assert time.monotonic() - start < 3
    assert r.error == "timed out after 0.3 s"
    assert r.exit_code != 0 and "started" in r.output
    assert wait_gone(int(pidfile.read_text()))  # the grandchild died with the group


def test_shell_cancel_kills_and_escalates_to_sigkill(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    cmd = f"trap '' TERM; echo $$ > {pidfile}; while :; do sleep 0.05; done"
    cancel = threading.Event()

    def cancel_once_trapped() -> None:
        try:  # the pid is written after the trap: SIGTERM is ignored from then on
            wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), 5, "the pid")
        finally:
            cancel.set()

    threading.Thread(target=cancel_once_trapped, daemon=True).start()
    start = time.monotonic()
    r = ShellExecutor(kill_grace=0.3).run(shell(cmd), cancel)
    assert time.monotonic() - start < 3
    assert r.error == "cancelled" and r.exit_code == -9
    assert wait_gone(int(pidfile.read_text()))


def test_shell_leftover_background_process_killed_at_exit(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    r = ShellExecutor().run(shell(f"sleep 30 >/dev/null & echo $! > {pidfile}"), threading.Event())
    assert r.ok
    assert wait_gone(int(pidfile.read_text()))


@pytest.mark.parametrize(
    "payload",
    [{}, {"cmd": "  "}, {"cmd": "true", "timeout": "soon"}, {"cmd": "true", "timeout": "-1"}],
)
def test_shell_bad_payload(payload: dict[str, str]) -> None:
    with pytest.raises(ExecutorError):
        ShellExecutor().run(TaskSpec("t", "shell", payload), threading.Event())


def test_sleep_executor() -> None:
    r = SleepExecutor().run(TaskSpec("t", "sleep", {"seconds": "0.01"}), threading.Event())
    assert r == TaskResult(0)
    cancel = threading.Event()
    cancel.set()
    r = SleepExecutor().run(TaskSpec("t", "sleep", {"seconds": "30"}), cancel)
    assert r.error == "cancelled"
    with pytest.raises(ExecutorError):
        SleepExecutor().run(TaskSpec("t", "sleep", {}), threading.Event())


def test_tail_text_cuts_on_character_boundary() -> None:
    text = "é" * 10  # 2 bytes each
    assert tail_text(text, 5) == "éé"
    assert tail_text(b"ok\xff", 10) == "ok\ufffd"
    assert tail_text("short") == "short"


def test_result_to_wire_truncates_output() -> None:
    wire = TaskResult(1, "x" * (OUTPUT_LIMIT + 10), "boom").to_wire()
    assert wire == {"exit_code": 1, "output": "x" * OUTPUT_LIMIT, "error": "boom"}


def test_task_spec_from_wire() -> None:
    spec = TaskSpec.from_wire({"id": "a", "type": "shell", "payload": {"cmd": "x"}, "attempts": 2})
    assert spec == TaskSpec("a", "shell", {"cmd": "x"}, 2)


# ---- plugins ------------------------------------------------------------


class EchoExecutor:
    """A plugin executor: echoes its payload's ``text``."""

    def run(self, task: TaskSpec, cancel: threading.Event) -> TaskResult:
        return TaskResult(0, output=task.payload.get("text", ""))


def broken_factory() -> Any:
    raise RuntimeError("plugin exploded")


@pytest.fixture
def plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register entry points in the rctl_agent.executors group."""
    eps = metadata.EntryPoints(
        [
            metadata.EntryPoint("echo", f"{__name__}:EchoExecutor", ex.ENTRY_POINT_GROUP),
            metadata.EntryPoint("broken", f"{__name__}:broken_factory", ex.ENTRY_POINT_GROUP),
            metadata.EntryPoint("notexec", "builtins:object", ex.ENTRY_POINT_GROUP),
        ]
    )

    def entry_points(**params: Any) -> metadata.EntryPoints:
        assert params == {"group": ex.ENTRY_POINT_GROUP}
        return eps

    monkeypatch.setattr(ex.metadata, "entry_points", entry_points)


@pytest.mark.usefixtures("plugins")
def test_plugin_executor_from_entry_point() -> None:
    reg = ExecutorRegistry(enabled=["sleep", "echo"])
    executor = reg.get("echo")
    assert isinstance(executor, EchoExecutor)
    assert reg.get("echo") is executor  # instantiated once
    r = executor.run(TaskSpec("t", "echo", {"text": "hi"}), threading.Event())
    assert r == TaskResult(0, "hi")


@pytest.mark.usefixtures("plugins")
@pytest.mark.parametrize(
    ("ttype", "match"),
    [("nosuch", "no executor for task type"), ("broken", "failed to load"), ("notexec", "no run")],
)
def test_plugin_errors(ttype: str, match: str) -> None:
    with pytest.raises(ExecutorError, match=match):
        ExecutorRegistry(enabled=[ttype]).get(ttype)


def test_builtins_win_and_plugins_can_be_disabled() -> None:
    reg = ExecutorRegistry(load_plugins=False, enabled=["shell", "sleep", "echo"])
    assert isinstance(reg.get("shell"), ShellExecutor)
    assert isinstance(reg.get("sleep"), SleepExecutor)
    with pytest.raises(ExecutorError):
        reg.get("echo")
