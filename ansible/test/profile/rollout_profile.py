"""Ansible callback for make rollout-test: where a playbook's time goes.

Enabled by ansible/test/rollout-test.sh (ANSIBLE_CALLBACK_PLUGINS,
ANSIBLE_CALLBACKS_ENABLED=rollout_profile). At the end of each playbook it
appends to $RO_PROFILE_FILE the playbook's wall time, each play's, and the
tasks that took longest (wall time from a task's start to the next one's,
summed over its runs: a serial play runs a task once per batch).
ansible-core has no profile_tasks (that is ansible.posix); this is the
part of it the test needs, with no collection to install.
"""

from __future__ import annotations

import os
import resource
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: rollout_profile
type: aggregate
short_description: wall time per playbook, play and task (make rollout-test)
description:
  - Appends a summary to the file named by RO_PROFILE_FILE when a playbook ends.
requirements:
  - enable in ansible.cfg or with ANSIBLE_CALLBACKS_ENABLED
"""

TOP_TASKS = 12
# Actions that run on the controller alone: everything else runs a module
# (on a host, or on the control host for delegate_to: localhost).
CONTROLLER_ONLY = {
    "add_host",
    "assert",
    "debug",
    "fail",
    "group_by",
    "include_role",
    "include_tasks",
    "import_role",
    "import_tasks",
    "meta",
    "set_fact",
}


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "rollout_profile"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self.started = time.monotonic()
        self.task: tuple[str, str, float] | None = None
        self.tasks: dict[tuple[str, str], list[float]] = {}
        self.plays: dict[str, list[float]] = {}
        self.play: tuple[str, float] | None = None
        self.module_runs = 0

    def _end_task(self, now: float) -> None:
        if self.task is not None:
            play, name, began = self.task
            self.tasks.setdefault((play, name), []).append(now - began)
            self.task = None

    def _end_play(self, now: float) -> None:
        self._end_task(now)
        if self.play is not None:
            name, began = self.play
            self.plays.setdefault(name, []).append(now - began)
            self.play = None

    def v2_playbook_on_play_start(self, play) -> None:
        now = time.monotonic()
        self._end_play(now)
        self.play = (play.get_name().strip(), now)

    def v2_playbook_on_task_start(self, task, is_conditional) -> None:
        now = time.monotonic()
        self._end_task(now)
        self.task = (self.play[0] if self.play else "", task.get_name().strip(), now)

    def v2_playbook_on_handler_task_start(self, task) -> None:
        self.v2_playbook_on_task_start(task, False)

    def _count(self, result, item: bool) -> None:
        action = result._task.action.rsplit(".", 1)[-1]
        if action in CONTROLLER_ONLY:
            return
        # A loop reports each item, then the whole: count the items.
        if item or not isinstance(result._result.get("results"), list):
            self.module_runs += 1

    def v2_runner_on_ok(self, result) -> None:
        self._count(result, False)

    def v2_runner_on_failed(self, result, ignore_errors=False) -> None:
        self._count(result, False)

    def v2_runner_item_on_ok(self, result) -> None:
        self._count(result, True)

    def v2_runner_item_on_failed(self, result) -> None:
        self._count(result, True)

    def v2_playbook_on_stats(self, stats) -> None:
        now = time.monotonic()
        self._end_play(now)
        path = os.environ.get("RO_PROFILE_FILE")
        if not path:
            return
        # CPU of the control host's side: ansible-playbook, its workers, ssh
        # clients and the modules run on the control host (delegate_to:
        # localhost); the hosts' side runs under their sshd.
        cpu = sum(
            r.ru_utime + r.ru_stime
            for r in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
        )
        label = os.environ.get("RO_PROFILE_LABEL", "")
        head = (
            f"{now - self.started:7.1f}s  playbook {label}: {self.module_runs} module runs "
            f"(until retries not counted), control host CPU {cpu:.1f}s"
        )
        lines = [head]
        for name, runs in self.plays.items():
            lines.append(f"{sum(runs):7.1f}s    play  {name}" + (f" (x{len(runs)})" if len(runs) > 1 else ""))
        slowest = sorted(self.tasks.items(), key=lambda kv: -sum(kv[1]))[:TOP_TASKS]
        for (play, name), runs in slowest:
            lines.append(f"{sum(runs):7.1f}s    task  {name} (x{len(runs)}; {play})")
        with open(path, "a", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
