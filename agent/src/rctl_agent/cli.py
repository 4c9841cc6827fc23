"""The ``rctl-agent`` command line.

Every flag can also come from the environment as ``RCTL_AGENT_<FLAG>``
(upper case, dashes as underscores, e.g. ``RCTL_AGENT_DRAIN_TIMEOUT``,
``RCTL_AGENT_INSECURE=1``); a flag on the command line wins.  Exit status: 0
after a clean stop, 1 when the agent cannot go on (cluster unreachable,
state directory or TLS files unusable), 2 for usage errors.  Failures print
one line on stderr.

Safety defaults: mutual TLS is required (``--tls-ca``/``--tls-cert``/
``--tls-key``) unless ``--insecure`` is given; only the ``sleep`` executor is
enabled (``--executors``); a root agent runs tasks as ``nobody``
(``--run-as``); tasks get an allow-listed environment (``--task-env``).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import NoReturn

from . import __version__
from .agent import Agent
from .client import ClusterClient
from .config import AgentConfig, AgentError
from .executors import BUILTIN_TYPES, DEFAULT_ENABLED, ExecutorRegistry, plugin_types
from .process import DEFAULT_RUN_AS, ENV_NAME_RE, ProcessPolicy, TaskUser
from .state import ID_RE, default_state_dir, load_or_create_node_id
from .tls import ClientTLS, TLSConfigError
from .wire import parse_address

PROG = "rctl-agent"
ENV_PREFIX = "RCTL_AGENT_"
SHARED_ENV = frozenset({"tls_ca", "tls_cert", "tls_key"})
"""Flags also read from RCTL_<FLAG>, the names the rctl CLI and server use."""
LOG_LEVELS = ("debug", "info", "warning", "error")
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")

log = logging.getLogger("rctl_agent")


class UsageError(Exception):
    """Bad flags or environment; the message names the flag."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


@dataclass
class Settings:
    """Validated command-line settings."""

    servers: list[str]
    node_id: str | None
    cloud: str
    region: str
    capacity: int
    state_dir: Path
    log_level: str
    drain_timeout: float
    connect_timeout: float
    tls_files: tuple[Path, Path, Path] | None = None
    """CA, certificate and key; None with ``insecure``."""
    tls_names: tuple[str, str, str] = ("--tls-ca", "--tls-cert", "--tls-key")
    """Where each TLS file was named (flag or environment variable)."""
    insecure: bool = False
    executors: tuple[str, ...] = DEFAULT_ENABLED
    run_as: TaskUser | None = None
    """The user tasks switch to (a root agent); None: the agent's own user."""
    task_env: tuple[str, ...] = ()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (every default is None: env and defaults apply later)."""
    p = _Parser(
        prog=PROG,
        description="rctl node agent: registers this machine with an rctl cluster, "
        "heartbeats to the leader and runs the tasks assigned to it.",
        epilog=f"Every flag can also be set as {ENV_PREFIX}<FLAG>, e.g. {ENV_PREFIX}SERVERS, "
        f"{ENV_PREFIX}TLS_CA, {ENV_PREFIX}INSECURE=1.",
    )
    p.add_argument("--servers", help="comma-separated host:port of rctl servers (required)")
    p.add_argument(
        "--node-id",
        help="node id (default: the TLS certificate's, else created once and kept in --state-dir)",
    )
    p.add_argument("--cloud", help="cloud label, e.g. aws (default: none)")
    p.add_argument("--region", help="region label (default: none)")
    p.add_argument("--capacity", help="tasks run at once, 1-65536 (default: 4)")
    p.add_argument("--state-dir", help=f"state directory (default: {default_state_dir()})")
    p.add_argument("--log-level", help=f"one of {', '.join(LOG_LEVELS)} (default: info)")
    p.add_argument(
        "--drain-timeout",
        help="seconds running tasks get to finish on SIGTERM before they are failed (default: 30)",
    )
    p.add_argument(
        "--connect-timeout",
        help="seconds to keep trying to register at start before giving up (default: 60)",
    )
    tls = p.add_argument_group(
        "security",
        "Mutual TLS needs all three --tls-* files (made with `rctl tls cert create --role "
        "agent`); without them the agent refuses to start unless --insecure is given.",
    )
    tls.add_argument("--tls-ca", help="CA certificate that server certificates must chain to")
    tls.add_argument("--tls-cert", help="this agent's certificate (its URI SAN names the node id)")
    tls.add_argument("--tls-key", help="the private key of --tls-cert")
    tls.add_argument(
        "--insecure",
        action="store_const",
        const="1",
        help="speak plaintext, unauthenticated (development only; "
        "only the --servers addresses are used)",
    )
    tls.add_argument(
        "--executors",
        help=f"comma-separated task types this agent runs (built in: "
        f"{', '.join(BUILTIN_TYPES)}; plugins by name) (default: {','.join(DEFAULT_ENABLED)})",
    )
    tls.add_argument(
        "--run-as",
        help=f"user that tasks run as when the agent is root (default: {DEFAULT_RUN_AS}; "
        "root only when named); an agent that is not root runs tasks as itself",
    )
    tls.add_argument(
        "--task-env",
        help="comma-separated environment variables copied to tasks besides "
        "PATH, LANG, LC_ALL, TZ, HOME, USER, LOGNAME (default: none)",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


def _seconds(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{name} must be a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"{name} must be a non-negative number of seconds, got {text!r}")
    return value


def _names(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def parse_settings(
    argv: Sequence[str] | None, env: Mapping[str, str], *, euid: int | None = None
) -> Settings:
    """Parse flags, fill gaps from ``env``, validate; raise UsageError.

    ``euid`` is the user the agent runs as (default: this process's).
    """
    ns = vars(build_parser().parse_args(argv))

    def get(dest: str, default: str | None = None) -> tuple[str, str | None]:
        flag = "--" + dest.replace("_", "-")
        if ns.get(dest) is not None:
            return flag, ns[dest]
        env_name = ENV_PREFIX + dest.upper()
        if env.get(env_name):
            return env_name, env[env_name]
        # The TLS files are also read from the names every rctl command
        # uses (RCTL_TLS_CA, ...), after the agent's own.
        shared = "RCTL_" + dest.upper()
        if dest in SHARED_ENV and env.get(shared):
            return shared, env[shared]
        return flag, default

    name, text = get("servers")
    servers = [s.strip() for s in (text or "").split(",") if s.strip()]
    if not servers:
        raise UsageError(f"--servers is required (or set {ENV_PREFIX}SERVERS), e.g. 10.0.1.5:50051")
    for addr in servers:
        try:
            parse_address(addr)
        except ValueError as e:
            raise UsageError(f"{name}: {e}") from None

    name, node_id = get("node_id")
    if node_id is not None and not ID_RE.match(node_id):
        raise UsageError(
            f"{name} {node_id!r} is not a valid id (1-128 of A-Z a-z 0-9 . _ : -, "
            "starting with a letter or digit)"
        )

    name, text = get("capacity", "4")
    assert text is not None
    try:
        capacity = int(text)
    except ValueError:
        capacity = 0
    if not 1 <= capacity <= 65536:
        raise UsageError(f"{name} must be an integer between 1 and 65536, got {text!r}")

    name, level = get("log_level", "info")
    assert level is not None
    if level.lower() not in LOG_LEVELS:
        raise UsageError(f"{name} must be one of {', '.join(LOG_LEVELS)}, got {level!r}")

    state_text = get("state_dir")[1]
    drain_name, drain_text = get("drain_timeout", "30")
    conn_name, conn_text = get("connect_timeout", "60")
    assert drain_text is not None and conn_text is not None
    drain_timeout = _seconds(drain_name, drain_text)
    connect_timeout = _seconds(conn_name, conn_text)

    name, text = get("executors")
    executors = tuple(dict.fromkeys(_names(text))) if text is not None else DEFAULT_ENABLED
    if not executors:
        raise UsageError(f"{name} must name at least one executor, e.g. sleep")
    known = [*BUILTIN_TYPES, *(t for t in plugin_types() if t not in BUILTIN_TYPES)]
    unknown = [t for t in executors if t not in known]
    if unknown:
        raise UsageError(
            f"{name}: unknown executor {', '.join(map(repr, unknown))} (known: {', '.join(known)})"
        )

    run_as = _run_as(*get("run_as"), os.geteuid() if euid is None else euid)

    name, text = get("task_env")
    task_env = tuple(dict.fromkeys(_names(text)))
    bad = [n for n in task_env if not ENV_NAME_RE.match(n)]
    if bad:
        raise UsageError(f"{name}: {bad[0]!r} is not an environment variable name")

    insecure_name, insecure_text = get("insecure")
    insecure = False
    if insecure_text is not None:
        if insecure_text.lower() not in TRUE_WORDS + FALSE_WORDS:
            raise UsageError(f"{insecure_name} must be 1 or 0, got {insecure_text!r}")
        insecure = insecure_text.lower() in TRUE_WORDS
    tls = [get(dest) for dest in ("tls_ca", "tls_cert", "tls_key")]
    given = [n for n, v in tls if v]
    tls_files: tuple[Path, Path, Path] | None = None
    if given and len(given) < 3:
        missing = [n for n, v in tls if not v]
        raise UsageError(
            f"{', '.join(given)} given without {', '.join(missing)}: "
            "mutual TLS needs all three files"
        )
    if given and insecure:
        raise UsageError(f"{insecure_name} cannot be combined with {', '.join(given)}")
    if given:
        ca, cert, key = (Path(v).expanduser() for _, v in tls if v)
        tls_files = (ca, cert, key)
    elif not insecure:
        raise UsageError(
            "no TLS certificates: pass --tls-ca, --tls-cert and --tls-key "
            "(make them with `rctl tls cert create --role agent`), "
            "or --insecure to speak plaintext"
        )

    return Settings(
        servers=servers,
        node_id=node_id,
        cloud=get("cloud", "")[1] or "",
        region=get("region", "")[1] or "",
        capacity=capacity,
        state_dir=Path(state_text).expanduser() if state_text else default_state_dir(),
        log_level=level.lower(),
        drain_timeout=drain_timeout,
        connect_timeout=connect_timeout,
        tls_files=tls_files,
        tls_names=(tls[0][0], tls[1][0], tls[2][0]),
        insecure=insecure,
        executors=executors,
        run_as=run_as,
        task_env=task_env,
    )


def _run_as(name: str, who: str | None, euid: int) -> TaskUser | None:
    """The user tasks switch to; None when the agent (not root) runs them as itself."""
    if euid == 0:
        try:
            return TaskUser.lookup(who or DEFAULT_RUN_AS)
        except LookupError as e:
            hint = "create it or pass --run-as USER" if who is None else "pass an existing user"
            raise UsageError(f"{name}: {e} (tasks of a root agent run as it); {hint}") from None
    if who is None:
        return None
    try:
        user = TaskUser.lookup(who)
    except LookupError as e:
        raise UsageError(f"{name}: {e}") from None
    if user.uid != euid:
        raise UsageError(
            f"{name} {who}: an agent that is not root runs tasks as itself (uid {euid}) and "
            f"cannot switch to {user.name}; drop {name} or start the agent as root"
        )
    return None


def _fail(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the agent; return the exit status."""
    try:
        settings = parse_settings(argv, os.environ)
    except UsageError as e:
        _fail(f"{e} (see {PROG} --help)")
        return 2
    logging.basicConfig(
        stream=sys.stderr,
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    tls: ClientTLS | None = None
    if settings.tls_files is not None:
        try:
            tls = ClientTLS.load(*settings.tls_files, names=settings.tls_names)
        except TLSConfigError as e:
            _fail(str(e))
            return 1
    node_id = settings.node_id
    if tls is not None:
        if node_id is not None and node_id != tls.node_id:
            _fail(
                f"--node-id {node_id} does not match the node id {tls.node_id} of the "
                f"certificate {tls.cert_file}; drop --node-id or use that node's certificate"
            )
            return 2
        if not ID_RE.match(tls.node_id):
            _fail(f"the certificate {tls.cert_file} names an invalid node id {tls.node_id!r}")
            return 1
        node_id = tls.node_id
    if node_id is None:
        try:
            node_id = load_or_create_node_id(settings.state_dir)
        except (OSError, ValueError) as e:
            _fail(
                f"cannot keep the node id in {settings.state_dir}: {e}; "
                "set --state-dir or --node-id"
            )
            return 1
    process = ProcessPolicy(user=settings.run_as, pass_env=settings.task_env)
    _log_safety(settings, process)
    config = AgentConfig(
        node_id=node_id,
        capacity=settings.capacity,
        cloud=settings.cloud,
        region=settings.region,
        drain_timeout=settings.drain_timeout,
        register_timeout=settings.connect_timeout,
    )
    client = ClusterClient(
        settings.servers, connect_timeout=min(3.0, max(settings.connect_timeout, 0.1)), tls=tls
    )
    executors = ExecutorRegistry(enabled=settings.executors, process=process)
    agent = Agent(config, client, executors=executors)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        agent.request_stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        agent.run()
    except AgentError as e:
        _fail(str(e))
        return 1
    return 0


def _log_safety(settings: Settings, process: ProcessPolicy) -> None:
    """One line per weakened default, once at startup."""
    if settings.insecure:
        log.warning(
            "--insecure: talking plaintext to the servers, unauthenticated and "
            "unencrypted; only the --servers addresses are used"
        )
    user = process.effective_user()
    if settings.run_as is not None and settings.run_as.is_root:
        log.warning("--run-as %s: tasks run as root", settings.run_as.name)
    log.info(
        "executors: %s; tasks run as %s",
        ", ".join(settings.executors),
        f"{user.name} (uid {user.uid})" if user is not None else f"uid {os.geteuid()}",
    )
