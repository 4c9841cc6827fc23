"""The ``rctl-agent`` command line.

Every flag can also come from the environment as ``RCTL_AGENT_<FLAG>``
(upper case, dashes as underscores, e.g. ``RCTL_AGENT_DRAIN_TIMEOUT``); a flag
on the command line wins.  Exit status: 0 after a clean stop, 1 when the
agent cannot go on (cluster unreachable, state directory unusable), 2 for
usage errors.  Failures print one line on stderr.
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
from .state import ID_RE, default_state_dir, load_or_create_node_id
from .wire import parse_address

PROG = "rctl-agent"
ENV_PREFIX = "RCTL_AGENT_"
LOG_LEVELS = ("debug", "info", "warning", "error")


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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (every default is None: env and defaults apply later)."""
    p = _Parser(
        prog=PROG,
        description="rctl node agent: registers this machine with an rctl cluster, "
        "heartbeats to the leader and runs the tasks assigned to it.",
        epilog=f"Every flag can also be set as {ENV_PREFIX}<FLAG>, e.g. {ENV_PREFIX}SERVERS.",
    )
    p.add_argument("--servers", help="comma-separated host:port of rctl servers (required)")
    p.add_argument("--node-id", help="node id (default: created once and kept in --state-dir)")
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


def parse_settings(argv: Sequence[str] | None, env: Mapping[str, str]) -> Settings:
    """Parse flags, fill gaps from ``env``, validate; raise UsageError."""
    ns = vars(build_parser().parse_args(argv))

    def get(dest: str, default: str | None = None) -> tuple[str, str | None]:
        flag = "--" + dest.replace("_", "-")
        if ns.get(dest) is not None:
            return flag, ns[dest]
        env_name = ENV_PREFIX + dest.upper()
        if env.get(env_name):
            return env_name, env[env_name]
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
    return Settings(
        servers=servers,
        node_id=node_id,
        cloud=get("cloud", "")[1] or "",
        region=get("region", "")[1] or "",
        capacity=capacity,
        state_dir=Path(state_text).expanduser() if state_text else default_state_dir(),
        log_level=level.lower(),
        drain_timeout=_seconds(drain_name, drain_text),
        connect_timeout=_seconds(conn_name, conn_text),
    )


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
    node_id = settings.node_id
    if node_id is None:
        try:
            node_id = load_or_create_node_id(settings.state_dir)
        except (OSError, ValueError) as e:
            _fail(
                f"cannot keep the node id in {settings.state_dir}: {e}; "
                "set --state-dir or --node-id"
            )
            return 1
    config = AgentConfig(
        node_id=node_id,
        capacity=settings.capacity,
        cloud=settings.cloud,
        region=settings.region,
        drain_timeout=settings.drain_timeout,
        register_timeout=settings.connect_timeout,
    )
    client = ClusterClient(
        settings.servers, connect_timeout=min(3.0, max(settings.connect_timeout, 0.1))
    )
    agent = Agent(config, client)

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
