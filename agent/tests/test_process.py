"""Executors are opt-in; tasks run unprivileged with an allow-listed environment.

End to end through the real ``rctl-agent`` command and a fake cluster: a
task's own output shows which user ran it and what environment it saw.
"""

from __future__ import annotations

import os
import pwd
import threading
from pathlib import Path

import pytest
from conftest import AgentProcess, clean_env
from fakeserver import FakeCluster

from rctl_agent.cli import UsageError, parse_settings
from rctl_agent.executors import (
    ExecutorDisabled,
    ExecutorError,
    ExecutorRegistry,
    ShellExecutor,
    TaskSpec,
)
from rctl_agent.process import SAFE_PATH, ProcessPolicy, TaskUser

NODE = "n-proc"
root_only = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root: checks that a root agent switches users for tasks"
)


def run_task(
    cluster: FakeCluster,
    tmp_path: Path,
    cmd: str,
    flags: list[str],
    env: dict[str, str] | None = None,
) -> tuple[dict[str, object], str]:
    """Run one shell task through the real agent; return (task, agent stderr)."""
    cluster.add_task("t1", "shell", {"cmd": cmd}, node=NODE)
    argv = ["--insecure", "--servers", ",".join(s.addr for s in cluster.servers)]
    argv += ["--node-id", NODE, "--state-dir", str(tmp_path / "state"), *flags]
    with AgentProcess(argv, env) as agent:
        cluster.wait_for(
            lambda: cluster.tasks["t1"]["status"] in ("complete", "failed"), what="t1 ended"
        )
        assert agent.stop() == 0, agent.stderr
    return dict(cluster.tasks["t1"]), agent.stderr


def output(task: dict[str, object]) -> str:
    result = task["result"]
    assert isinstance(result, dict), task
    return str(result["output"])


# ---- executors are opt-in ----------------------------------------------------


def test_shell_is_disabled_by_default_and_nothing_runs(
    cluster: FakeCluster, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    task, _ = run_task(cluster, tmp_path, f"touch {marker}", [])
    assert task["status"] == "failed"
    assert task["result"] == {
        "exit_code": -1,
        "output": "",
        "error": "executor shell is disabled on this agent; start it with --executors sleep,shell",
    }
    assert not marker.exists()
    assert cluster.calls_of("Task.Start") == []  # refused before it was started
    assert cluster.calls_of("Node.Register")[0].args["meta"]["executors"] == "sleep"


def test_enabled_shell_runs(cluster: FakeCluster, tmp_path: Path) -> None:
    task, _ = run_task(cluster, tmp_path, "echo hello", ["--executors", "sleep,shell"])
    assert task["status"] == "complete" and output(task) == "hello\n"
    assert cluster.calls_of("Node.Register")[0].args["meta"]["executors"] == "sleep,shell"


def test_registry_refuses_disabled_types() -> None:
    reg = ExecutorRegistry()
    assert reg.enabled == ("sleep",)
    with pytest.raises(ExecutorDisabled, match="^executor shell is disabled on this agent; "):
        reg.get("shell")
    with pytest.raises(ExecutorError, match="no executor for task type 'nosuch'"):
        reg.get("nosuch")
    assert isinstance(ExecutorRegistry(enabled=["shell"]).get("shell"), ShellExecutor)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (
            ["--executors", "sleep,bogus"],
            "--executors: unknown executor 'bogus' (known: shell, sleep",
        ),
        (["--executors", " , "], "--executors must name at least one executor"),
        (["--task-env", "OK,BAD-NAME"], "--task-env: 'BAD-NAME' is not an environment variable"),
        (["--run-as", "no-such-user-here"], "--run-as: no such user 'no-such-user-here'"),
    ],
)
def test_bad_safety_flags(argv: list[str], needle: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_settings(["--insecure", "--servers", "h:1", *argv], {}, euid=0)
    assert needle in str(info.value)


def test_safety_defaults_and_environment() -> None:
    s = parse_settings(["--insecure", "--servers", "h:1"], {}, euid=0)
    assert s.executors == ("sleep",)
    assert s.run_as is not None and s.run_as.name == "nobody"
    assert s.task_env == ()
    env = {
        "RCTL_AGENT_EXECUTORS": "shell,sleep",
        "RCTL_AGENT_RUN_AS": "root",
        "RCTL_AGENT_TASK_ENV": "FOO, BAR",
    }
    s = parse_settings(["--insecure", "--servers", "h:1"], env, euid=0)
    assert s.executors == ("shell", "sleep")
    assert s.run_as is not None and s.run_as.uid == 0
    assert s.task_env == ("FOO", "BAR")


def test_agent_that_is_not_root_cannot_switch_users() -> None:
    base = ["--insecure", "--servers", "h:1"]
    nobody = pwd.getpwnam("nobody").pw_uid  # the agent's (injected) user
    with pytest.raises(UsageError, match="an agent that is not root runs tasks as itself"):
        parse_settings([*base, "--run-as", "root"], {}, euid=nobody)
    # unset, or naming the agent's own user, is fine: tasks run as the agent
    assert parse_settings(base, {}, euid=nobody).run_as is None
    assert parse_settings([*base, "--run-as", "nobody"], {}, euid=nobody).run_as is None


# ---- the user tasks run as -----------------------------------------------------

ID_CMD = 'id -u; id -g; id -G; echo "$HOME"; echo "$USER"; pwd'


@root_only
def test_root_agent_runs_shell_tasks_as_nobody_by_default(
    cluster: FakeCluster, tmp_path: Path
) -> None:
    nobody = pwd.getpwnam("nobody")
    task, err = run_task(cluster, tmp_path, ID_CMD, ["--executors", "sleep,shell"])
    assert task["status"] == "complete", task
    uid, gid, groups, home, user, cwd = output(task).splitlines()
    assert uid == "65534" == str(nobody.pw_uid)
    assert gid == str(nobody.pw_gid)
    assert groups == str(nobody.pw_gid)  # supplementary groups cleared
    assert (home, user) == (nobody.pw_dir, "nobody")
    assert cwd == (nobody.pw_dir if os.path.isdir(nobody.pw_dir) else "/")
    assert "tasks run as nobody (uid 65534)" in err
    assert "tasks run as root" not in err


@root_only
def test_root_agent_runs_tasks_as_root_only_when_told(cluster: FakeCluster, tmp_path: Path) -> None:
    flags = ["--executors", "sleep,shell", "--run-as", "root"]
    task, err = run_task(cluster, tmp_path, ID_CMD, flags)
    uid, gid, groups, home, user, _ = output(task).splitlines()
    assert (uid, gid, groups, home, user) == ("0", "0", "0", pwd.getpwnam("root").pw_dir, "root")
    assert err.count("--run-as root: tasks run as root") == 1


@root_only
def test_shell_executor_switches_to_the_policy_user() -> None:
    nobody = TaskUser.lookup("nobody")
    executor = ShellExecutor(process=ProcessPolicy(user=nobody))
    r = executor.run(TaskSpec("t", "shell", {"cmd": "id -u; id -G"}), threading.Event())
    assert r.ok and r.output == f"{nobody.uid}\n{nobody.gid}\n"


# ---- the environment tasks get -------------------------------------------------


def test_task_environment_is_an_allow_list(cluster: FakeCluster, tmp_path: Path) -> None:
    env = clean_env(
        RCTL_TOKEN="s3cret-token",
        AWS_SECRET_ACCESS_KEY="s3cret-key",
        PASSED_ON="yes",
        LANG="C.UTF-8",
        TZ="UTC",
    )
    flags = ["--executors", "sleep,shell", "--task-env", "PASSED_ON,NOT_SET_ANYWHERE"]
    if os.geteuid() == 0:
        flags += ["--run-as", "nobody"]
    task, _ = run_task(cluster, tmp_path, "env", flags, env)
    assert task["status"] == "complete", task
    seen = dict(line.split("=", 1) for line in output(task).splitlines() if "=" in line)
    assert "s3cret" not in output(task)
    assert "RCTL_TOKEN" not in seen and "AWS_SECRET_ACCESS_KEY" not in seen
    assert seen["PASSED_ON"] == "yes" and "NOT_SET_ANYWHERE" not in seen
    assert (seen["LANG"], seen["TZ"]) == ("C.UTF-8", "UTC")
    assert seen["PATH"] == os.environ["PATH"]
    assert (seen["RCTL_TASK_ID"], seen["RCTL_TASK_ATTEMPT"]) == ("t1", "1")
    user = "nobody" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    assert seen["USER"] == seen["LOGNAME"] == user
    assert seen["HOME"] == pwd.getpwnam(user).pw_dir
    allowed = {"PATH", "LANG", "LC_ALL", "TZ", "HOME", "USER", "LOGNAME", "PASSED_ON"}
    allowed |= {"RCTL_TASK_ID", "RCTL_TASK_ATTEMPT", "PWD", "SHLVL", "_", "OLDPWD"}  # sh's own
    assert set(seen) <= allowed, set(seen) - allowed


def test_policy_environment_defaults() -> None:
    policy = ProcessPolicy(pass_env=("EXTRA",))
    env = policy.environment(
        {"RCTL_TASK_ID": "t9", "EXTRA": "task wins"},
        source={"EXTRA": "agent", "SECRET": "x", "LC_ALL": "C"},
    )
    assert env["PATH"] == SAFE_PATH  # the agent had none
    assert env["LC_ALL"] == "C" and env["RCTL_TASK_ID"] == "t9"
    assert env["EXTRA"] == "task wins" and "SECRET" not in env
    with pytest.raises(ValueError):
        ProcessPolicy(pass_env=("NOT-A-NAME",))
