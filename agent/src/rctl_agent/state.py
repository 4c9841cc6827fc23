"""The agent's state directory: where its node id survives restarts."""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
"""Node and task ids (docs/rpc.md): 1-128 chars, starting with a letter or digit."""

NODE_ID_FILE = "node-id"


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/rctl-agent``, else ``~/.local/state/rctl-agent``."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return Path(base) / "rctl-agent"


def new_node_id() -> str:
    """A fresh id: ``n-`` and 12 hex digits."""
    return "n-" + secrets.token_hex(6)


def load_or_create_node_id(state_dir: Path) -> str:
    """Return the node id saved in ``state_dir``, creating and saving one if none.

    The file is written atomically (temp file + rename), so a crash never
    leaves a half-written id.  Raises OSError if the directory is unusable
    and ValueError if the saved id is malformed.
    """
    path = state_dir / NODE_ID_FILE
    try:
        saved = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        saved = ""
    if saved:
        if not ID_RE.match(saved):
            raise ValueError(f"{path} holds an invalid node id {saved!r}; fix or remove it")
        return saved
    node_id = new_node_id()
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{NODE_ID_FILE}.{os.getpid()}.tmp")
    tmp.write_text(node_id + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return node_id
