from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import AgentRunner
from fakeserver import FakeCluster, FakeError

from rctl_agent.agent import LOST_ERROR
from rctl_agent.executors import (
    ExecutorRegistry,
    ShellExecutor,
    SleepExecutor,
    TaskResult,
    TaskSpec,
)

NODE = "n-test"
StartAgent = Callable[..., AgentRunner]


class ProbeExecutor:
    """Records how many tasks run at once; each takes ``seconds`` (payload)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.max_running = 0
        self.ran: list[str] = []

    def run(self, task: TaskSpec, cancel: threading.Event) -> TaskResult:
        with self.lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
            self.ran.append(task.id)
        try:
            cancel.wait(float(task.payload.get("seconds", "0.1")))
        finally:
            with self.lock:
                self.running -= 1
        return TaskResult(0, output=f"ran {task.id}")


def registry(**extra: Any) -> ExecutorRegistry:
    return ExecutorRegistry(
        {"shell": ShellExecutor(kill_grace=0.5), "sleep": SleepExecutor(), **extra},
        load_plugins=False,
    )


def status(cluster: FakeCluster, tid: str) -> str:
    return str(cluster.tasks[tid]["status"])


def pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (ProcessLookupError, FileNotFoundError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def test_runs_assigned_task_and_reports_complete(
    cluster: FakeCluster, start_agent: StartAgent
) -> None:
    cluster.add_task("t1", "shell", {"cmd": "echo hello; sleep 0.3"}, node=NODE)
    runner = start_agent(executors=registry())
    cluster.wait_for(lambda: status(cluster, "t1") == "complete", what="t1 complete")
    task = cluster.tasks["t1"]
    assert task["result"] == {"exit_code": 0, "output": "hello\n", "error": ""}
    assert cluster.applied[("Task.Start", "t1")] == 1
    assert cluster.applied[("Task.Complete", "t1")] == 1
    # while it ran, heartbeats said so
    assert any("t1" in c.args["running"] for c in cluster.calls_of("Node.Heartbeat"))
    reg = cluster.calls_of("Node.Register")[0].args
    assert reg["id"] == NODE and reg["capacity"] == 4 and "agent_version" in reg["meta"]
    assert runner.stop() is None


def test_failures_are_reported_with_result(cluster: FakeCluster, start_agent: StartAgent) -> None:
    cluster.add_task("exit3", "shell", {"cmd": "echo no >&2; exit 3"}, node=NODE)
    cluster.add_task("weird", "no-such-type", node=NODE)
    cluster.add_task("badpayload", "sleep", {"seconds": "x"}, node=NODE)
    start_agent(executors=registry())
    for tid in ("exit3", "weird", "badpayload"):
        cluster.wait_for(lambda tid=tid: status(cluster, tid) == "failed", what=f"{tid} failed")
    assert cluster.tasks["exit3"]["result"] == {"exit_code": 3, "output": "no\n", "error": ""}
    assert "no executor for task type 'no-such-type'" in cluster.tasks["weird"]["result"]["error"]
    assert "seconds" in cluster.tasks["badpayload"]["result"]["error"]


def test_start_conflict_means_not_run(cluster: FakeCluster, start_agent: StartAgent) -> None:
    probe = ProbeExecutor()

    def refuse(args: dict[str, Any]) -> Any:
        raise FakeError("conflict", "the node does not hold the task")

    cluster.overrides["Task.Start"] = refuse
    cluster.add_task("t1", "probe", node=NODE)
    start_agent(executors=registry(probe=probe))
    cluster.wait_for(lambda: len(cluster.calls_of("Task.Start")) >= 1, what="Task.Start")
    cluster.wait_for(lambda: len(cluster.calls_of("Node.Heartbeat")) >= 5, what="heartbeats")
    assert probe.ran == []
    assert not cluster.calls_of("Task.Complete") and not cluster.calls_of("Task.Fail")


def test_never_more_than_capacity_in_flight(cluster: FakeCluster, start_agent: StartAgent) -> None:
    probe = ProbeExecutor()
    for i in range(6):
        cluster.add_task(f"t{i}", "probe", {"seconds": "0.15"}, node=NODE)
    start_agent(executors=registry(probe=probe), capacity=2)
    cluster.wait_for(
        lambda: all(status(cluster, f"t{i}") == "complete" for i in range(6)),
        what="all complete",
    )
    assert probe.max_running == 2
    assert sorted(probe.ran) == [f"t{i}" for i in range(6)]


def test_task_removed_from_heartbeat_is_killed_without_report(
    cluster: FakeCluster, start_agent: StartAgent, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pid"
    cluster.add_task("t1", "shell", {"cmd": f"echo $$ > {pidfile}; exec sleep 30"}, node=NODE)
    runner = start_agent(executors=registry())
    cluster.wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() != "", what="pid")
    pid = int(pidfile.read_text())
    cluster.set_status("t1", "cancelled")
    cluster.wait_for(lambda: pid_gone(pid), what="process killed")
    cluster.wait_for(lambda: runner.agent.local_tasks() == [], what="worker gone")
    # The worker submits any report in the same step that removes it, and a
    # report leaves the queue only once its call was answered (so recorded):
    # a report would show in one of the two now.  Then a full heartbeat
    # round: a reply built after the worker went is reconciled (the agent
    # sends a heartbeat only after handling the previous reply), so a report
    # made on reconciling (a lost task) would show too.
    assert runner.agent.reporter.pending() == []
    assert not cluster.calls_of("Task.Complete") and not cluster.calls_of("Task.Fail")
    gone = len(cluster.calls_of("Node.Heartbeat"))
    cluster.wait_for(
        lambda: len(cluster.calls_of("Node.Heartbeat")) >= gone + 2,
        what="a heartbeat answered and reconciled after the worker went",
    )
    assert runner.agent.reporter.pending() == []
    assert not cluster.calls_of("Task.Complete") and not cluster.calls_of("Task.Fail")


def test_report_resent_after_failover_counted_once(
    cluster: FakeCluster, start_agent: StartAgent
) -> None:
    s0, s1, _ = cluster.servers
    s0.die_after = {"Task.Complete"}  # applies the report, then crashes before answering
    cluster.add_task("t1", "sleep", {"seconds": "0.05"}, node=NODE)
    runner = start_agent(executors=registry())
    cluster.wait_for(lambda: not s0.alive, what="leader crash")
    cluster.set_leader(s1)
    cluster.wait_for(
        lambda: len(cluster.calls_of("Task.Complete", handled_by="s1")) >= 1,
        what="Complete resent to the new leader",
    )
    cluster.wait_for(lambda: runner.agent.reporter.pending() == [], what="report acknowledged")
    assert cluster.applied[("Task.Complete", "t1")] == 1
    assert len(cluster.calls_of("Task.Complete")) >= 2
    assert status(cluster, "t1") == "complete"
    cluster.wait_for(
        lambda: cluster.calls_of("Node.Heartbeat")[-1].server == "s1", what="heartbeats at s1"
    )


def test_leader_change_mid_run(
    cluster: FakeCluster, start_agent: StartAgent, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    start_agent(executors=registry())
    cluster.wait_for(lambda: len(cluster.calls_of("Node.Heartbeat")) >= 3, what="heartbeats")
    cluster.set_leader(cluster.servers[2])
    n = len(cluster.calls_of("Node.Heartbeat", handled_by="s2"))
    cluster.wait_for(
        lambda: len(cluster.calls_of("Node.Heartbeat", handled_by="s2")) >= n + 5,
        what="heartbeats at the new leader",
    )
    changes = [r.getMessage() for r in caplog.records if "following leader" in r.getMessage()]
    assert [m.split()[2] for m in changes] == ["s0", "s2"]


def test_unknown_node_registers_again(cluster: FakeCluster, start_agent: StartAgent) -> None:
    start_agent(executors=registry())
    cluster.wait_for(lambda: len(cluster.calls_of("Node.Heartbeat")) >= 2, what="heartbeats")
    with cluster.lock:
        del cluster.nodes[NODE]
    cluster.wait_for(lambda: len(cluster.calls_of("Node.Register")) == 2, what="re-register")
    cluster.wait_for(lambda: NODE in cluster.nodes, what="node back")


def test_running_task_lost_by_a_previous_run_is_failed(
    cluster: FakeCluster, start_agent: StartAgent
) -> None:
    cluster.add_task("t1", "sleep", {"seconds": "1"}, node=NODE)
    cluster.set_status("t1", "running")
    start_agent(executors=registry())
    cluster.wait_for(lambda: status(cluster, "t1") == "failed", what="t1 failed")
    assert cluster.tasks["t1"]["result"]["error"] == LOST_ERROR
    assert not cluster.calls_of("Task.Start")


def test_stale_listing_does_not_restart_or_fail_finished_task(
    cluster: FakeCluster, start_agent: StartAgent
) -> None:
    cluster.add_task("t1", "sleep", {"seconds": "0.01"}, node=NODE)
    runner = start_agent(executors=registry())
    cluster.wait_for(lambda: status(cluster, "t1") == "complete", what="complete")
    cluster.wait_for(lambda: runner.agent.reporter.pending() == [], what="acked")
    stale = dict(cluster.tasks["t1"], status="running")
    runner.agent._reconcile([stale], index=1)  # a reply built before the report
    assert runner.agent.local_tasks() == [] and runner.agent.reporter.pending() == []
    assert not cluster.calls_of("Task.Fail")


def test_stop_drains_finishes_in_flight_then_deregisters(
    cluster: FakeCluster, start_agent: StartAgent
) -> None:
    probe = ProbeExecutor()
    cluster.add_task("t1", "probe", {"seconds": "0.4"}, node=NODE)
    runner = start_agent(executors=registry(probe=probe))
    cluster.wait_for(lambda: probe.running == 1, what="t1 running")
    runner.agent.request_stop()
    cluster.wait_for(
        lambda: any(c.args["draining"] for c in cluster.calls_of("Node.Heartbeat")),
        what="draining heartbeat",
    )
    cluster.add_task("t2", "probe", node=NODE)  # must not be taken while draining
    runner.thread.join(10)
    assert runner.error is None and not runner.thread.is_alive()
    assert status(cluster, "t1") == "complete"
    assert probe.ran == ["t1"]
    assert len(cluster.calls_of("Node.Deregister")) == 1
    assert status(cluster, "t2") == "pending"  # requeued by the deregistration


def test_drain_timeout_kills_the_rest_and_leaves_them_to_requeue(
    cluster: FakeCluster, start_agent: StartAgent, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pid"
    cluster.add_task("t1", "shell", {"cmd": f"echo $$ > {pidfile}; exec sleep 30"}, node=NODE)
    runner = start_agent(executors=registry(), drain_timeout=0.3)
    cluster.wait_for(lambda: status(cluster, "t1") == "running", what="t1 running")
    cluster.wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() != "", what="pid")
    pid = int(pidfile.read_text())  # the task's process runs: the drain has it to kill
    start = time.monotonic()
    runner.agent.request_stop()
    runner.thread.join(10)
    assert runner.error is None
    assert time.monotonic() - start < 5
    assert pid_gone(pid)
    # No failure report: the deregistration requeues the killed task.
    assert not [c for c in cluster.calls_of("Task.Fail") if c.args["task_id"] == "t1"]
    assert len(cluster.calls_of("Node.Deregister")) == 1
    assert status(cluster, "t1") == "pending"


def test_unreachable_cluster_at_start_is_an_error(start_agent: StartAgent) -> None:
    from socket import socket

    s = socket()
    s.bind(("127.0.0.1", 0))
    addr = f"127.0.0.1:{s.getsockname()[1]}"
    s.close()
    runner = start_agent([addr], register_timeout=0.3)
    runner.thread.join(5)
    assert runner.error is not None
    assert "no rctl server reachable at" in str(runner.error)


# Heartbeat tries are counted over this window after the leader is lost:
# six times the backoff cap of the tests' client (fast_policy, 0.1 s), so
# paced retries make about 8 tries in it (at least 3: they go on), while a
# hot loop would make hundreds (more than 30).
NO_LEADER_WINDOW = 0.6


def test_no_leader_means_paced_retries_not_a_hot_loop(
    cluster: FakeCluster, start_agent: StartAgent
) -> None:
    start_agent(executors=registry())
    cluster.wait_for(lambda: len(cluster.calls_of("Node.Heartbeat")) >= 2, what="heartbeats")
    cluster.set_leader(None)  # an election that takes a while
    since = time.monotonic()
    until = since + NO_LEADER_WINDOW
    # The window is over once a heartbeat arrives after it (which also shows
    # that the tries go on); the calls carry their arrival times.
    cluster.wait_for(
        lambda: cluster.calls_of("Node.Heartbeat")[-1].at > until,
        what=f"a heartbeat try {NO_LEADER_WINDOW} s after the leader was lost",
    )
    during = [c for c in cluster.calls_of("Node.Heartbeat") if since < c.at <= until]
    assert 3 <= len(during) <= 30, len(during)  # backoff capped at 0.1 s here: about 8 tries
    cluster.set_leader(cluster.servers[1])
    cluster.wait_for(
        lambda: cluster.calls_of("Node.Heartbeat")[-1].handled_by == "s1", what="new leader"
    )


def test_cut_off_agent_fences_its_tasks_before_the_ttl(
    cluster: FakeCluster, start_agent: StartAgent, tmp_path: Path
) -> None:
    """With no heartbeat acknowledged for ttl - interval, running tasks stop
    (the leader is about to give them to other nodes); reached again while
    the leader still lists them, the agent starts them over."""
    pidfile = tmp_path / "pid"
    cluster.add_task("t1", "shell", {"cmd": f"echo $$ >> {pidfile}; exec sleep 30"}, node=NODE)
    runner = start_agent(executors=registry())
    cluster.wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() != "", what="pid")
    first = int(pidfile.read_text().split()[0])

    leader = cluster.leader
    cluster.set_leader(None)  # no server can take a heartbeat (lost quorum, partition)
    cut = time.monotonic()
    cluster.wait_for(lambda: pid_gone(first), timeout=5, what="task fenced")
    fenced_after = time.monotonic() - cut
    assert fenced_after < cluster.ttl_ms / 1000, f"fenced after {fenced_after:.2f}s, past the TTL"
    assert not cluster.calls_of("Task.Complete") and not cluster.calls_of("Task.Fail")

    cluster.set_leader(leader)  # the leader is back and still lists t1 here
    cluster.wait_for(lambda: len(pidfile.read_text().split()) == 2, what="task started again")
    assert runner.agent.local_tasks() == ["t1"]
