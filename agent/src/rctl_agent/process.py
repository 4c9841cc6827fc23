"""How task processes start: which user they run as and what environment they get.

A task is code someone put into the manifest; it gets neither the agent's
privileges nor its environment:

* **User.**  When the agent runs as root, task processes switch to the
  run-as user (``--run-as``, default ``nobody``): its uid, its primary gid,
  no supplementary groups, ``HOME`` set to its home directory.  Running tasks
  as root takes an explicit ``--run-as root``.  An agent that is not root
  cannot switch users; its tasks run as itself.
* **Environment.**  An allow-list, not the agent's environment: ``PATH``
  (:data:`SAFE_PATH` when the agent has none), ``LANG``, ``LC_ALL`` and ``TZ``
  copied from the agent when set; ``HOME``, ``USER`` and ``LOGNAME`` of the
  user the task runs as; the names given with ``--task-env``, copied from the
  agent's environment when set there; and the variables the executor sets
  for the task (``RCTL_TASK_ID``, ``RCTL_TASK_ATTEMPT``), which win.
* **Working directory.**  The user's home directory if it exists, else ``/``.
"""

from __future__ import annotations

import os
import pwd
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""``PATH`` for tasks when the agent's environment has none."""

BASE_ENV = ("PATH", "LANG", "LC_ALL", "TZ")
"""Variables every task gets from the agent's environment (when set)."""

ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
"""What ``--task-env`` accepts as a variable name."""

DEFAULT_RUN_AS = "nobody"


@dataclass(frozen=True)
class TaskUser:
    """A local user tasks run as."""

    name: str
    uid: int
    gid: int
    home: str

    @classmethod
    def lookup(cls, who: str) -> TaskUser:
        """The user named ``who`` (or with that numeric uid); raise LookupError."""
        try:
            pw = pwd.getpwuid(int(who)) if who.isdigit() else pwd.getpwnam(who)
        except (KeyError, OverflowError):
            raise LookupError(f"no such user {who!r}") from None
        return cls(pw.pw_name, pw.pw_uid, pw.pw_gid, pw.pw_dir)

    @classmethod
    def current(cls) -> TaskUser | None:
        """The user this process runs as (None if it has no passwd entry)."""
        try:
            return cls.lookup(str(os.geteuid()))
        except LookupError:
            return None

    @property
    def is_root(self) -> bool:
        return self.uid == 0


@dataclass(frozen=True)
class ProcessPolicy:
    """How task subprocesses start (see module doc).

    :param user: the user tasks run as; None: the agent's own user.  A user
        other than the agent's is switched to only when the agent is root.
    :param pass_env: extra variable names copied from the agent's environment.
    """

    user: TaskUser | None = None
    pass_env: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in self.pass_env:
            if not ENV_NAME_RE.match(name):
                raise ValueError(f"{name!r} is not an environment variable name")

    def effective_user(self) -> TaskUser | None:
        """The user task processes end up running as."""
        if self.user is not None and os.geteuid() == 0:
            return self.user
        return TaskUser.current()

    def environment(
        self, task_vars: Mapping[str, str], source: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """The environment of a task process.

        :param task_vars: what the executor sets for this task (wins over all).
        :param source: the agent's environment (default ``os.environ``).
        """
        src = os.environ if source is None else source
        env = {name: src[name] for name in BASE_ENV if name in src}
        env.setdefault("PATH", SAFE_PATH)
        user = self.effective_user()
        if user is not None:
            env.update(HOME=user.home, USER=user.name, LOGNAME=user.name)
        env.update({name: src[name] for name in self.pass_env if name in src})
        env.update(task_vars)
        return env

    def popen_kwargs(self) -> dict[str, Any]:
        """``subprocess.Popen`` arguments for the user and working directory."""
        kwargs: dict[str, Any] = {}
        user = self.effective_user()
        if self.user is not None and os.geteuid() == 0:
            kwargs.update(user=self.user.uid, group=self.user.gid, extra_groups=[])
        home = user.home if user is not None else ""
        kwargs["cwd"] = home if home and os.path.isdir(home) else "/"
        return kwargs
