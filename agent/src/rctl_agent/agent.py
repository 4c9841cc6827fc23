"""The node agent's main loop (docs/rpc.md, "Node agent methods").

Threads: the caller's thread runs :meth:`Agent.run` (register, heartbeat,
reconcile, drain); each task runs in a worker thread (Task.Start, then the
executor); a :class:`~rctl_agent.reports.Reporter` thread delivers results;
a watcher thread follows elections (docs/rpc.md, "Following elections"): it
keeps a leader watch (:meth:`ClusterClient.watch_leader`) waiting on a
server other than the leader and, when it names a new leader, brings the
next heartbeat forward to a random point within the ``follow_spread_ms``
the leader hands out (sized to the fleet; ``min(250 ms, interval/4)`` from a
server too old to send it); and the client keeps a connection open to every
server (:meth:`ClusterClient.keep_ready`), so that heartbeat needs no
handshake.

The heartbeat reply's ``tasks`` list is authoritative.  After each reply the
agent starts the ``assigned`` tasks it does not run yet (at most
``capacity`` at once, and none while draining or not ``FOLLOWING``) and
stops, without a report, local work on tasks no longer listed.  A task
listed as ``running`` that this process never ran was lost by an earlier
run of the agent under the same node id: it is reported failed.

Reports race with heartbeats (a reply built before a Complete was applied
still lists the task), so the agent remembers the log index at which each
local task ended and ignores listings of it that are not newer.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import __version__
from .client import ClusterClient, ClusterUnavailable, ConnState
from .config import AgentConfig, AgentError
from .executors import Executor, ExecutorError, ExecutorRegistry, TaskResult, TaskSpec
from .reports import Report, Reporter
from .waker import Waker
from .wire import RpcError

log = logging.getLogger(__name__)

LOST_ERROR = "task lost: the agent restarted while it ran"
WATCH_MAX_WAIT = 60.0  # seconds one leader watch (Status.Get) is held by the server
HEARTBEAT_SPREAD = 0.25  # without follow_spread_ms: within this (and interval/4)
_PENDING = -1  # finished task whose report is not acknowledged yet


@dataclass(eq=False)
class _Local:
    spec: TaskSpec
    cancel: threading.Event = field(default_factory=threading.Event)
    executing: bool = False  # Task.Start acknowledged, executor running
    removed_at: int | None = None  # set: stop without a report
    shutdown: bool = False  # killed by the drain timeout: report nothing
    fenced: bool = False  # stopped because the leader could not be reached


class Agent:
    """One node agent.

    :param config: settings.
    :param client: cluster client (owned: closed when :meth:`run` returns).
    :param executors: executor registry (default: ``sleep`` only).
    :param clock: monotonic seconds; drives heartbeat and drain timing.
    """

    def __init__(
        self,
        config: AgentConfig,
        client: ClusterClient,
        *,
        executors: ExecutorRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.client = client
        self.executors = executors or ExecutorRegistry()
        self._clock = clock
        self._lock = threading.Lock()
        self._waker = Waker()
        self._stop_requests = 0
        self._local: dict[str, _Local] = {}
        self._finished: dict[str, int] = {}
        self._interval = config.default_interval
        self._last_tasks: list[Any] = []
        self._last_index = 0
        self._slot_freed = False
        self._draining = False
        # Set by the watcher after an election: (when, the new leader's id).
        self._heartbeat_soon: tuple[float, str | None] | None = None
        self._heartbeat_leader: str | None = None  # who answered the last heartbeat
        self._watch_stop = threading.Event()
        self._watcher: threading.Thread | None = None
        # Self-fencing: the leader requeues a node's tasks once it has not
        # heard from it for ttl; the agent stops them before that (after
        # ttl - max(ttl/4, interval) without an acknowledged heartbeat), so a
        # task never runs here and on the node it was requeued to at once.
        self._ttl = 0.0
        self._follow_spread: float | None = None  # follow_spread_ms from the leader, seconds
        self._last_ok = clock()
        self._fenced: set[str] = set()
        self.reporter = Reporter(
            client,
            config.node_id,
            timeout=config.write_timeout,
            on_acked=self._acked,
            on_dropped=self._dropped,
        )

    # ---- control -----------------------------------------------------
    def request_stop(self) -> None:
        """Ask for a graceful stop (drain); a second request skips the drain wait.

        Safe to call from a signal handler: it takes no lock.
        """
        self._stop_requests += 1
        self._waker.wake()

    @property
    def draining(self) -> bool:
        """True once a stop was requested and registration had succeeded."""
        return self._draining

    def local_tasks(self) -> list[str]:
        """Ids of tasks with a local worker (starting, running or stopping)."""
        with self._lock:
            return list(self._local)

    def run(self) -> None:
        """Register, heartbeat and run tasks until stopped, then drain and deregister.

        Returns after a clean shutdown (or a stop before registration).
        :raises AgentError: registration or deregistration failed for good.
        """
        self.reporter.start()
        try:
            if not self._register(initial=True):
                return
            self._start_watcher()
            self.client.keep_ready()  # the next leader is reached without a handshake
            self._loop()
            self._finish()
        finally:
            self._watch_stop.set()
            self.reporter.stop()
            self.client.close()  # fails a watch in flight
            if self._watcher is not None:
                self._watcher.join(2.0)
                if self._watcher.is_alive():
                    log.warning("the leader watcher did not stop within 2 s")
            self._waker.close()

    # ---- following elections -----------------------------------------
    def _start_watcher(self) -> None:
        self._watcher = threading.Thread(
            target=self._follow_elections, name="rctl-leader-watch", daemon=True
        )
        self._watcher.start()

    def _follow_elections(self) -> None:
        """Watch for a new leader until the agent stops (draining included:
        draining heartbeats must reach the new leader too)."""
        while not self._watch_stop.is_set():
            spread = self._follow_spread
            if spread is None:
                spread = min(HEARTBEAT_SPREAD, self._interval / 4)
            try:
                changed = self.client.watch_leader(WATCH_MAX_WAIT, spread=spread)
            except Exception:  # a bug here must not end following for good
                log.exception("leader watch failed")
                self._watch_stop.wait(1.0)
                continue
            if changed and not self._watch_stop.is_set():
                # Spread the fleet's first heartbeats to the new leader.
                due = self._clock() + random.uniform(0, spread)
                with self._lock:
                    self._heartbeat_soon = (due, self.client.leader_id)
                self._waker.wake()

    def _take_heartbeat_soon(self) -> float | None:
        """When the watcher wants the next heartbeat, unless one already
        reached the leader it learned of."""
        with self._lock:
            soon, self._heartbeat_soon = self._heartbeat_soon, None
        if soon is None or (soon[1] is not None and soon[1] == self._heartbeat_leader):
            return None
        return soon[0]

    # ---- main loop ---------------------------------------------------
    def _loop(self) -> None:
        next_hb = self._clock()
        drain_deadline = 0.0
        killed_at: float | None = None
        while True:
            now = self._clock()
            soon = self._take_heartbeat_soon()
            if soon is not None and soon < next_hb:
                next_hb = soon
            if self._stop_requests and not self._draining:
                drain_deadline = now + self.config.drain_timeout
                self._begin_drain()
                next_hb = now
            if self._draining:
                if killed_at is None and (self._stop_requests > 1 or now >= drain_deadline):
                    killed_at = now
                    self._kill_remaining()
                left = self.local_tasks()
                if not left:
                    return
                if killed_at is not None and now - killed_at > self.config.stuck_timeout:
                    log.error("tasks %s did not stop after being killed; leaving them", left)
                    return
            fence_at = self._fence_deadline()
            if fence_at is not None and now >= fence_at:
                self._fence(now)
                continue
            if now >= next_hb:
                next_hb = self._heartbeat()
                continue
            if self._slot_freed:
                self._slot_freed = False
                self._reconcile(self._last_tasks, self._last_index)
            wait = next_hb - now
            if fence_at is not None:
                wait = min(wait, max(fence_at - now, 0.0))
            if self._draining:
                wait = min(wait, (drain_deadline if killed_at is None else now + 0.5) - now)
            self._waker.wait(wait)

    def _register(self, *, initial: bool) -> bool:
        """Node.Register until it succeeds; False if a stop came first.

        A retry may register twice: the second one only rewrites the labels
        and marks the node healthy again (harmless).  ``initial`` gives up
        after ``register_timeout`` with AgentError; later calls never give up.
        """
        cfg = self.config
        args = {
            "id": cfg.node_id,
            "address": cfg.address,
            "cloud": cfg.cloud,
            "region": cfg.region,
            "capacity": cfg.capacity,
            "meta": {
                "agent_version": __version__,
                "executors": ",".join(self.executors.enabled),
                **cfg.meta,
            },
        }
        deadline = self._clock() + cfg.register_timeout
        while not self._stop_requests:
            budget = cfg.write_timeout
            if initial:
                budget = min(budget, max(deadline - self._clock(), 0.0))
            try:
                reply = self.client.call(
                    "Node.Register", args, timeout=cfg.write_timeout, budget=budget
                )
            except RpcError as e:
                raise AgentError(
                    f"the cluster refused to register node {cfg.node_id}: {e.message or e.code}"
                ) from e
            except ClusterUnavailable as e:
                if initial and self._clock() >= deadline:
                    raise AgentError(
                        f"no rctl server reachable at {', '.join(self.client.servers)} "
                        f"(tried for {cfg.register_timeout:g} s, last error: {e.last_error}); "
                        "check --servers or the cluster's health"
                    ) from e
                continue
            self._apply_timing(reply)
            log.info(
                "registered node %s (cloud %r, region %r, capacity %d); heartbeat every %.2f s",
                cfg.node_id,
                cfg.cloud,
                cfg.region,
                cfg.capacity,
                self._interval,
            )
            return True
        return False

    def _apply_timing(self, reply: Any) -> None:
        if not isinstance(reply, dict):
            return
        interval = reply.get("heartbeat_interval_ms")
        if isinstance(interval, int) and interval > 0:
            self._interval = interval / 1000
        ttl = reply.get("ttl_ms")
        if isinstance(ttl, int) and ttl > 0:
            self._ttl = ttl / 1000
            self.client.set_lost_after(ttl / 1000)
        spread = reply.get("follow_spread_ms")
        if isinstance(spread, int) and spread >= 0:
            self._follow_spread = min(spread / 1000, self._interval / 4)

    def _fence_deadline(self) -> float | None:
        """When running tasks must stop for lack of leader contact, if any run."""
        if self._ttl <= 0:
            return None
        with self._lock:
            if not any(lt.executing and not lt.fenced for lt in self._local.values()):
                return None
        # Stop a quarter TTL (at least one interval) early: the leader's
        # clock starts at the heartbeat it last received, ours at its reply.
        return self._last_ok + self._ttl - max(self._ttl / 4, self._interval)

    def _fence(self, now: float) -> None:
        """Stop every running task without a report: the leader is about to
        give them to other nodes. If the leader still lists them when it is
        reached again, they start over here."""
        with self._lock:
            victims = [lt for lt in self._local.values() if not lt.fenced]
            for lt in victims:
                lt.fenced = True
                lt.removed_at = self._last_index
                lt.cancel.set()
        log.warning(
            "no heartbeat acknowledged for %.1fs (the leader requeues after %.1fs): "
            "stopping %d running tasks",
            now - self._last_ok,
            self._ttl,
            len(victims),
        )

    def _heartbeat(self) -> float:
        """Send one heartbeat (retried freely: it changes only liveness state);
        return when the next one is due."""
        with self._lock:
            running = sorted(tid for tid, lt in self._local.items() if lt.executing)
        args = {"node_id": self.config.node_id, "draining": self._draining, "running": running}
        timeout = max(self._interval, self.config.min_heartbeat_timeout)
        sent = self._clock()
        fence_at = self._fence_deadline()
        try:
            reply = self.client.call(
                "Node.Heartbeat",
                args,
                timeout=timeout,
                budget=timeout,
                leader_only=True,
                # the loop must be free to fence in time
                limit=None if fence_at is None else max(fence_at - sent, 0.0),
            )
        except RpcError as e:
            if e.code == "not_found" and not self._draining:
                log.warning(
                    "the leader does not know node %s; registering again", self.config.node_id
                )
                self._register(initial=False)
                return self._clock()
            if e.code != "not_found":
                log.error("heartbeat refused: %s", e)
            return self._clock() + self._interval
        except ClusterUnavailable as e:
            log.debug("heartbeat not delivered: %s", e)
            return self._clock()  # the client's shared backoff paces the retry
        self._last_ok = self._clock()
        leader = reply.get("leader_id") if isinstance(reply, dict) else None
        self._heartbeat_leader = leader if isinstance(leader, str) and leader else None
        self._apply_timing(reply)
        tasks = reply.get("tasks") if isinstance(reply, dict) else None
        index = reply.get("index") if isinstance(reply, dict) else None
        self._reconcile(
            tasks if isinstance(tasks, list) else [], index if isinstance(index, int) else 0
        )
        return sent + self._interval

    def _reconcile(self, tasks: list[Any], index: int) -> None:
        listed = {t["id"]: t for t in tasks if isinstance(t, dict) and isinstance(t.get("id"), str)}
        can_start = not self._draining and self.client.state is ConnState.FOLLOWING
        to_start: list[_Local] = []
        with self._lock:
            self._last_tasks, self._last_index = tasks, index
            self._fenced.intersection_update(listed)  # the rest were requeued
            stale = [
                tid
                for tid, done in self._finished.items()
                if tid not in listed and done != _PENDING and done < index
            ]
            for tid in stale:  # a newer listing without it: nothing left to guard
                del self._finished[tid]
            for tid, lt in self._local.items():
                if tid not in listed and lt.removed_at is None:
                    log.info("task %s is no longer held by this node; stopping it", tid)
                    lt.removed_at = index
                    lt.cancel.set()
            for tid, task in listed.items():
                if tid in self._local:
                    continue
                done = self._finished.get(tid)
                if done is not None and (done == _PENDING or index <= done):
                    continue
                status = task.get("status")
                if status == "assigned" or (status == "running" and tid in self._fenced):
                    if not can_start or len(self._local) >= self.config.capacity:
                        continue
                    self._finished.pop(tid, None)
                    self._fenced.discard(tid)
                    lt = _Local(TaskSpec.from_wire(task))
                    self._local[tid] = lt
                    to_start.append(lt)
                elif status == "running":
                    log.warning("task %s is running on this node but not here; failing it", tid)
                    self.reporter.submit(Report.for_result(tid, TaskResult(-1, error=LOST_ERROR)))
                    self._finished[tid] = _PENDING
        for lt in to_start:
            threading.Thread(
                target=self._work, args=(lt,), name=f"rctl-task-{lt.spec.id}", daemon=True
            ).start()

    # ---- drain -------------------------------------------------------
    def _begin_drain(self) -> None:
        # Tasks whose Task.Start is already under way count as in flight: the
        # leader may have marked them running, so they run (or time out) too.
        with self._lock:
            self._draining = True
            busy = len(self._local)
        log.info("stopping: draining %d tasks (up to %g s)", busy, self.config.drain_timeout)

    def _kill_remaining(self) -> None:
        with self._lock:
            for lt in self._local.values():
                if lt.removed_at is None:
                    lt.shutdown = True
                lt.cancel.set()
            n = len(self._local)
        if n:
            log.warning("drain over: killing %d tasks; deregistering requeues them", n)

    def _finish(self) -> None:
        """Flush reports, then Node.Deregister (a resend that finds the node
        already gone gets ``not_found``, which counts as done)."""
        cfg = self.config
        if not self.reporter.flush(cfg.final_flush_timeout):
            log.warning("reports not acknowledged at shutdown: %s", self.reporter.pending())
        try:
            self.client.call(
                "Node.Deregister",
                {"node_id": cfg.node_id},
                timeout=cfg.write_timeout,
                budget=2 * cfg.write_timeout,
            )
        except RpcError as e:
            if e.code != "not_found":
                raise AgentError(f"could not deregister node {cfg.node_id}: {e}") from e
        except ClusterUnavailable as e:
            raise AgentError(f"could not deregister node {cfg.node_id}: {e}") from e
        log.info("deregistered node %s", cfg.node_id)

    # ---- task workers ------------------------------------------------
    def _work(self, lt: _Local) -> None:
        report: Report | None = None
        try:
            try:
                executor: Executor = self.executors.get(lt.spec.type)  # plugins may err
            except ExecutorError as e:
                # Refused before Task.Start: nothing ran (Task.Fail accepts an
                # assigned task).
                log.warning("task %s (type %s) not run: %s", lt.spec.id, lt.spec.type, e)
                report = Report.for_result(lt.spec.id, TaskResult(-1, error=str(e)))
                return
            if not self._start_remote(lt):
                return
            with self._lock:
                if lt.cancel.is_set():
                    return
                lt.executing = True
            log.info("running task %s (type %s)", lt.spec.id, lt.spec.type)
            result = self._execute(lt, executor)
            if lt.removed_at is not None:
                log.info("task %s stopped", lt.spec.id)
                return
            if lt.shutdown and not result.ok:
                # Killed by the drain timeout: not the task's fault. Report
                # nothing; Node.Deregister requeues it for another node.
                log.info("task %s stopped by shutdown; deregistering requeues it", lt.spec.id)
                return
            report = Report.for_result(lt.spec.id, result)
            log.info(
                "task %s ended: exit code %d%s",
                lt.spec.id,
                result.exit_code,
                f", {result.error}" if result.error else "",
            )
        except Exception as e:  # a bug here must still free the slot and report
            log.exception("worker for task %s crashed", lt.spec.id)
            report = Report.for_result(lt.spec.id, TaskResult(-1, error=f"agent error: {e}"))
        finally:
            with self._lock:
                del self._local[lt.spec.id]
                if report is not None:
                    self.reporter.submit(report)
                    self._finished[lt.spec.id] = _PENDING
                elif lt.fenced:
                    self._fenced.add(lt.spec.id)  # may start again once the leader is back
                elif lt.removed_at is not None:
                    self._finished[lt.spec.id] = lt.removed_at
                else:
                    self._finished[lt.spec.id] = self._last_index
                self._slot_freed = True
            self._waker.wake()

    def _start_remote(self, lt: _Local) -> bool:
        """Report Task.Start until acknowledged; False if refused or cancelled.

        A resend after a lost answer repeats the report, a no-op for the same node.
        """
        args = {"task_id": lt.spec.id, "node_id": self.config.node_id}
        while not lt.cancel.is_set():
            try:
                self.client.call(
                    "Task.Start",
                    args,
                    timeout=self.config.write_timeout,
                    budget=self.config.write_timeout,
                )
                return True
            except RpcError as e:
                if e.code in ("conflict", "not_found"):
                    log.info("task %s was taken away before it started (%s)", lt.spec.id, e)
                else:
                    log.error("Task.Start for %s refused: %s", lt.spec.id, e)
                return False
            except ClusterUnavailable as e:
                log.debug("Task.Start for %s not acknowledged yet: %s", lt.spec.id, e)
        return False

    def _execute(self, lt: _Local, executor: Executor) -> TaskResult:
        spec = lt.spec
        try:
            result: object = executor.run(spec, lt.cancel)  # plugins may err
        except ExecutorError as e:
            return TaskResult(-1, error=str(e))
        except Exception as e:
            log.exception("executor for task %s (type %s) raised", spec.id, spec.type)
            return TaskResult(
                -1, error=f"executor for type {spec.type!r} raised {type(e).__name__}: {e}"
            )
        if not isinstance(result, TaskResult):
            return TaskResult(-1, error=f"executor for type {spec.type!r} returned no TaskResult")
        return result

    # ---- reporter callbacks -----------------------------------------
    def _acked(self, report: Report, index: int) -> None:
        with self._lock:
            if self._finished.get(report.task_id) == _PENDING:
                self._finished[report.task_id] = max(index, self._last_index)

    def _dropped(self, report: Report, err: RpcError) -> None:
        with self._lock:
            if self._finished.get(report.task_id) == _PENDING:
                del self._finished[report.task_id]
