"""Executors: what runs a task of a given ``type``.

An executor is any object with ``run(task, cancel) -> TaskResult``.  It is
called in its own thread, once per task; it must return soon after
``cancel`` is set (the agent sets it when the leader takes the task away or
when a drain times out).  Whatever it raises becomes a ``Task.Fail``.

Built-in types:

``shell``
    payload ``cmd`` (required): run with ``/bin/sh -c`` in its own process
    group, as the run-as user with an allow-listed environment
    (:mod:`rctl_agent.process`); ``timeout`` (seconds, default 3600).  The
    result's ``exit_code`` is the shell's exit status (negative: killed by
    that signal) and ``output`` the last 64 KiB of stdout and stderr combined.
``sleep``
    payload ``seconds``: wait that long (tests and smoke checks).

Other types come from plugins: entry points in the group
``rctl_agent.executors`` whose name is the task type and whose object is a
zero-argument callable (usually a class) returning an executor.

Executors are opt-in: a registry runs only the types it is told to enable
(the agent's ``--executors``, default ``sleep``); a task of another type is
refused with :class:`ExecutorDisabled` before anything runs.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import IO, Any, Protocol, runtime_checkable

from .process import ProcessPolicy

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "rctl_agent.executors"
BUILTIN_TYPES = ("shell", "sleep")
DEFAULT_ENABLED = ("sleep",)
"""Executors an agent runs unless told otherwise: never ``shell``."""
OUTPUT_LIMIT = 64 * 1024
"""Bytes of output kept (the server keeps the last 64 KiB too)."""


def tail_text(data: bytes | str, limit: int = OUTPUT_LIMIT) -> str:
    """Return the last ``limit`` bytes of ``data`` as text (bad UTF-8 replaced)."""
    raw = data.encode("utf-8", "replace") if isinstance(data, str) else data
    if len(raw) <= limit and isinstance(data, str):
        return data
    raw = raw[-limit:]
    # Skip continuation bytes of a character cut in half by the limit.
    start = 0
    while start < min(4, len(raw)) and raw[start] & 0xC0 == 0x80:
        start += 1
    return raw[start:].decode("utf-8", "replace")


@dataclass(frozen=True)
class TaskSpec:
    """The parts of a manifest Task an executor needs."""

    id: str
    type: str
    payload: Mapping[str, str] = field(default_factory=dict)
    attempts: int = 0

    @classmethod
    def from_wire(cls, task: Mapping[str, Any]) -> TaskSpec:
        """Build from a Task map of a heartbeat reply."""
        payload = task.get("payload") or {}
        attempts = task.get("attempts")
        return cls(
            id=str(task.get("id", "")),
            type=str(task.get("type", "")),
            payload={str(k): str(v) for k, v in payload.items()}
            if isinstance(payload, dict)
            else {},
            attempts=attempts if isinstance(attempts, int) else 0,
        )


@dataclass(frozen=True)
class TaskResult:
    """What a task ended with; ``ok`` decides Task.Complete vs Task.Fail."""

    exit_code: int
    output: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        """True for exit code 0 without an error."""
        return self.exit_code == 0 and not self.error

    def to_wire(self) -> dict[str, Any]:
        """The ``result`` map of Task.Complete / Task.Fail."""
        return {"exit_code": self.exit_code, "output": tail_text(self.output), "error": self.error}


@runtime_checkable
class Executor(Protocol):
    """Runs tasks of one type (see module doc)."""

    def run(self, task: TaskSpec, cancel: threading.Event) -> TaskResult:
        """Run ``task`` to its end, or until ``cancel`` is set; never block past that."""
        ...


class ExecutorError(Exception):
    """A task cannot run as given (bad payload, unknown type, broken plugin)."""


class ExecutorDisabled(ExecutorError):
    """The task's type is not among the executors this agent runs."""


def _payload_seconds(task: TaskSpec, key: str, default: float | None) -> float:
    text = task.payload.get(key)
    if text is None or text == "":
        if default is None:
            raise ExecutorError(f"{task.type} task needs payload key {key!r}")
        return default
    try:
        value = float(text)
    except ValueError:
        raise ExecutorError(f"payload {key!r} must be a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ExecutorError(f"payload {key!r} must be a non-negative number, got {text!r}")
    return value


class SleepExecutor:
    """``sleep``: waits ``seconds`` (payload); exit 0, or error "cancelled"."""

    def run(self, task: TaskSpec, cancel: threading.Event) -> TaskResult:
        seconds = _payload_seconds(task, "seconds", None)
        if cancel.wait(seconds):
            return TaskResult(exit_code=-1, error="cancelled")
        return TaskResult(exit_code=0)


class _Tail:
    """Drains a pipe in a thread, keeping only the last ``limit`` bytes."""

    def __init__(self, pipe: IO[bytes], limit: int = OUTPUT_LIMIT) -> None:
        self._pipe = pipe
        self._limit = limit
        self._buf = bytearray()
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._drain, name="rctl-output", daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        try:
            fd = self._pipe.fileno()
            while chunk := os.read(fd, 65536):
                with self._lock:
                    self._buf += chunk
                    if len(self._buf) > 2 * self._limit:
                        del self._buf[: -self._limit]
        except (OSError, ValueError):
            pass
        finally:
            self._pipe.close()

    def text(self) -> str:
        with self._lock:
            return tail_text(bytes(self._buf[-self._limit :]), self._limit)


class ShellExecutor:
    """``shell``: ``/bin/sh -c cmd`` in a new process group (see module doc).

    On timeout or cancel the whole group gets SIGTERM, then SIGKILL after
    ``kill_grace`` seconds.  When the shell exits, processes it left behind
    in its group are killed too, so no task outlives its report.

    :param shell: the shell binary.
    :param process: user and environment of the shell (default: the agent's
        user, the allow-listed environment).
    :param default_timeout: seconds when the payload has no ``timeout``.
    :param kill_grace: seconds between SIGTERM and SIGKILL.
    :param poll_interval: seconds between checks for cancel and timeout.
    """

    def __init__(
        self,
        shell: str = "/bin/sh",
        *,
        process: ProcessPolicy | None = None,
        default_timeout: float = 3600.0,
        kill_grace: float = 2.0,
        poll_interval: float = 0.05,
    ) -> None:
        self.shell = shell
        self.process = process or ProcessPolicy()
        self.default_timeout = default_timeout
        self.kill_grace = kill_grace
        self.poll_interval = poll_interval

    def run(self, task: TaskSpec, cancel: threading.Event) -> TaskResult:
        cmd = task.payload.get("cmd", "")
        if not cmd.strip():
            raise ExecutorError("shell task needs a non-empty payload key 'cmd'")
        timeout = _payload_seconds(task, "timeout", self.default_timeout)
        env = self.process.environment(
            {"RCTL_TASK_ID": task.id, "RCTL_TASK_ATTEMPT": str(task.attempts)}
        )
        proc = subprocess.Popen(
            [self.shell, "-c", cmd],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            **self.process.popen_kwargs(),
        )
        assert proc.stdout is not None
        tail = _Tail(proc.stdout)
        deadline = time.monotonic() + timeout
        error = ""
        while True:
            try:
                code = proc.wait(self.poll_interval)
                break
            except subprocess.TimeoutExpired:
                pass
            if cancel.is_set():
                error = "cancelled"
            elif time.monotonic() >= deadline:
                error = f"timed out after {timeout:g} s"
            else:
                continue
            code = self._kill(proc)
            break
        _killpg(proc.pid, signal.SIGKILL)  # leftovers of the shell's group
        tail.thread.join(1.0)
        if not error and code < 0:
            error = f"killed by signal {_signame(-code)}"
        return TaskResult(exit_code=code, output=tail.text(), error=error)

    def _kill(self, proc: subprocess.Popen[bytes]) -> int:
        _killpg(proc.pid, signal.SIGTERM)
        try:
            return proc.wait(self.kill_grace)
        except subprocess.TimeoutExpired:
            _killpg(proc.pid, signal.SIGKILL)
            return proc.wait()


def _killpg(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _signame(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return str(num)


Factory = Callable[[], Executor]


def plugin_types() -> list[str]:
    """Task types offered by installed plugins (entry point names)."""
    return sorted({ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)})


class ExecutorRegistry:
    """Maps the enabled task types to executors: built-ins, explicit ones,
    then plugins.

    Plugins are looked up once, lazily, on the first type not found
    otherwise, and are instantiated on first use.

    :param executors: executors by type; default the built-ins (``shell``
        with ``process``).
    :param load_plugins: whether to consult the ``rctl_agent.executors``
        entry points.
    :param enabled: the task types this registry runs, in the order the
        operator named them.  Default: every type in ``executors`` when it is
        given, else :data:`DEFAULT_ENABLED` (``sleep`` only).
    :param process: user and environment of the built-in ``shell`` executor.
    """

    def __init__(
        self,
        executors: Mapping[str, Executor] | None = None,
        *,
        load_plugins: bool = True,
        enabled: Sequence[str] | None = None,
        process: ProcessPolicy | None = None,
    ) -> None:
        if enabled is None:
            enabled = DEFAULT_ENABLED if executors is None else tuple(executors)
        if executors is None:
            executors = {"shell": ShellExecutor(process=process), "sleep": SleepExecutor()}
        self._executors: dict[str, Executor] = dict(executors)
        self._plugins: dict[str, metadata.EntryPoint] | None = None if load_plugins else {}
        self._lock = threading.Lock()
        self.enabled: tuple[str, ...] = tuple(dict.fromkeys(enabled))

    def register(self, task_type: str, executor: Executor) -> None:
        """Add or replace the executor for ``task_type`` and enable it."""
        with self._lock:
            self._executors[task_type] = executor
            if task_type not in self.enabled:
                self.enabled += (task_type,)

    def _entry_points(self) -> dict[str, metadata.EntryPoint]:
        if self._plugins is None:
            self._plugins = {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
        return self._plugins

    def get(self, task_type: str) -> Executor:
        """Return the executor for ``task_type``; raise ExecutorError if there
        is none, ExecutorDisabled if it is not enabled."""
        with self._lock:
            if task_type not in self.enabled:
                if task_type in self._executors or task_type in self._entry_points():
                    wanted = ",".join((*self.enabled, task_type))
                    raise ExecutorDisabled(
                        f"executor {task_type} is disabled on this agent; "
                        f"start it with --executors {wanted}"
                    )
                raise ExecutorError(f"no executor for task type {task_type!r}")
            found = self._executors.get(task_type)
            if found is not None:
                return found
            ep = self._entry_points().get(task_type)
            if ep is None:
                raise ExecutorError(f"no executor for task type {task_type!r}")
            try:
                factory = ep.load()
                executor = factory()
            except Exception as e:
                raise ExecutorError(
                    f"plugin {ep.value!r} for task type {task_type!r} failed to load: {e}"
                ) from e
            if not isinstance(executor, Executor):
                raise ExecutorError(f"plugin {ep.value!r} did not produce an executor (no run())")
            log.info("loaded executor plugin %s for task type %r", ep.value, task_type)
            self._executors[task_type] = executor
            return executor
