"""Task result reports, resent until some server acknowledges them.

docs/rpc.md makes ``Task.Complete`` and ``Task.Fail`` idempotent: a repeat of
the same report by the same node succeeds without change.  The
:class:`Reporter` therefore keeps every report in a FIFO queue and sends it
again (through the leader-following client, so after a failover it reaches
the new leader) until a server acknowledges it.  ``conflict`` and
``not_found`` mean the task was taken from this node: the report is dropped
and logged.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from .client import ClusterClient, ClusterUnavailable
from .executors import TaskResult
from .wire import RpcError, TransportError

log = logging.getLogger(__name__)

COMPLETE = "Task.Complete"
FAIL = "Task.Fail"


@dataclass(frozen=True)
class Report:
    """One result to deliver: ``method`` is Task.Complete or Task.Fail."""

    task_id: str
    method: str
    result: TaskResult

    @classmethod
    def for_result(cls, task_id: str, result: TaskResult) -> Report:
        """Complete for a successful result, Fail otherwise."""
        return cls(task_id, COMPLETE if result.ok else FAIL, result)


class Reporter:
    """Delivers :class:`Report` objects from a background thread.

    :param client: the cluster client (its shared backoff paces resends).
    :param node_id: this node's id, sent with every report.
    :param timeout: seconds per attempt (a write; sized for a WAN).
    :param on_acked: called with (report, index) once a server acknowledged it.
    :param on_dropped: called with (report, error) when it was refused for good.
    """

    def __init__(
        self,
        client: ClusterClient,
        node_id: str,
        *,
        timeout: float = 5.0,
        on_acked: Callable[[Report, int], None] | None = None,
        on_dropped: Callable[[Report, RpcError], None] | None = None,
    ) -> None:
        self._client = client
        self._node_id = node_id
        self._timeout = timeout
        self._on_acked = on_acked
        self._on_dropped = on_dropped
        self._queue: OrderedDict[str, Report] = OrderedDict()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="rctl-reporter", daemon=True)

    def start(self) -> None:
        """Start the sending thread."""
        self._thread.start()

    def submit(self, report: Report) -> None:
        """Queue a report (replacing an unsent one for the same task)."""
        with self._cond:
            self._queue[report.task_id] = report
            self._cond.notify_all()

    def pending(self) -> list[str]:
        """Task ids whose report is not acknowledged yet."""
        with self._cond:
            return list(self._queue)

    def is_pending(self, task_id: str) -> bool:
        """Whether ``task_id`` has an unacknowledged report."""
        with self._cond:
            return task_id in self._queue

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the queue to empty; True if it did."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue, timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread after its current attempt (unsent reports stay queued)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._stopping or bool(self._queue))
                if self._stopping:
                    return
                report = next(iter(self._queue.values()))
            self._send(report)

    def _send(self, report: Report) -> None:
        args = {
            "task_id": report.task_id,
            "node_id": self._node_id,
            "result": report.result.to_wire(),
        }
        try:
            reply = self._client.call(
                report.method, args, timeout=self._timeout, budget=self._timeout
            )
        except ClusterUnavailable as e:
            log.debug("%s for task %s not acknowledged yet: %s", report.method, report.task_id, e)
            return  # stays first in the queue; the client's backoff paces the resend
        except TransportError as e:  # only for non-idempotent calls; kept for safety
            log.debug("%s for task %s: %s", report.method, report.task_id, e)
            return
        except RpcError as e:
            self._remove(report)
            if e.code in ("conflict", "not_found"):
                log.warning(
                    "dropping %s for task %s: the task is no longer held by this node (%s)",
                    report.method,
                    report.task_id,
                    e,
                )
            else:
                log.error("dropping %s for task %s: refused (%s)", report.method, report.task_id, e)
            if self._on_dropped is not None:
                self._on_dropped(report, e)
            return
        self._remove(report)
        index = reply.get("index") if isinstance(reply, dict) else None
        log.info("%s acknowledged for task %s", report.method, report.task_id)
        if self._on_acked is not None:
            self._on_acked(report, index if isinstance(index, int) else 0)

    def _remove(self, report: Report) -> None:
        with self._cond:
            if self._queue.get(report.task_id) is report:
                del self._queue[report.task_id]
            self._cond.notify_all()
