"""Checks docs/rpc.md against a live 3-server cluster, through a client
written from that document alone (docclient.py).

Every documented method and result field is exercised. Where the server
disagreed with the document in a way that looked like a server bug, the
case is described in FINDINGS.md (S1-S4, since fixed in the server).

Run: ``agent/.venv/bin/pytest -q e2e/docclient`` (``make test-docclient``).
``RCTL_BIN`` names the binary (default: ../../bin/rctl from this file).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, cast

import pytest
from docclient import (
    CODES,
    MAX_FRAME,
    PROTO_RPC,
    Client,
    Connection,
    ProtocolError,
    Result,
    RpcError,
    TLSConfig,
    decode,
    encode,
    frame,
    open_socket,
    server_uri_san,
    snapshot_save,
)

HERE = Path(__file__).resolve().parent
RCTL = Path(
    os.environ.get("RCTL_BIN", str(HERE / ".." / ".." / "bin" / "rctl"))
).resolve()

NS_PER_S = 1_000_000_000
TASK_STATUSES = {"pending", "assigned", "running", "complete", "failed", "cancelled"}
TASK_KEYS = {
    "id",
    "type",
    "payload",
    "cloud",
    "max_attempts",
    "status",
    "node_id",
    "attempts",
    "result",
    "created_at",
    "updated_at",
    "create_index",
    "modify_index",
    "history",
}
NODE_KEYS = {
    "id",
    "address",
    "cloud",
    "region",
    "capacity",
    "meta",
    "status",
    "registered_at",
    "updated_at",
    "create_index",
    "modify_index",
}
META_KEYS = {"index", "known_leader", "last_contact_ms"}
# Tasks that no node may run: the scheduler places a task only on a node
# with the task's cloud label, and no test node has this one.
PARKED = "nowhere"
BOOT_SECRET = "boot-secret-0123456789"


# --------------------------------------------------------------------------
# the cluster: real processes from bin/rctl
# --------------------------------------------------------------------------


def free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@dataclass
class Server:
    id: str
    addr: str
    data: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None


@dataclass
class Cluster:
    root: Path
    servers: dict[str, Server] = field(default_factory=dict)

    @property
    def addrs(self) -> list[str]:
        return [s.addr for s in self.servers.values()]

    def live(self) -> list[Server]:
        return [
            s
            for s in self.servers.values()
            if s.proc is not None and s.proc.poll() is None
        ]

    def start(self, extra: Mapping[str, list[str]] | None = None) -> None:
        peers = ",".join(f"{s.id}={s.addr}" for s in self.servers.values())
        for s in self.servers.values():
            s.data.mkdir(parents=True, exist_ok=True)
            args = [
                str(RCTL),
                "serve",
                "--node-id",
                s.id,
                "--data-dir",
                str(s.data),
                "--bind",
                s.addr,
                "--peers",
                peers,
                "--cloud",
                "local",
                "--region",
                "dev",
                "--leader-placement",
                "off",
                *(extra or {}).get(s.id, ["--insecure"]),
            ]
            with s.log.open("ab") as log:
                s.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)

    def kill9(self, sid: str) -> None:
        p = self.servers[sid].proc
        assert p is not None
        os.kill(p.pid, signal.SIGKILL)
        p.wait(10)

    def stop(self) -> None:
        for s in self.servers.values():
            if s.proc is not None and s.proc.poll() is None:
                os.kill(s.proc.pid, signal.SIGTERM)
        for s in self.servers.values():
            if s.proc is None:
                continue
            try:
                s.proc.wait(4)
            except subprocess.TimeoutExpired:
                os.kill(s.proc.pid, signal.SIGKILL)
                s.proc.wait(5)

    def logs(self) -> str:
        out = []
        for s in self.servers.values():
            if s.log.exists():
                out.append(
                    f"--- {s.id} ---\n" + s.log.read_text(errors="replace")[-3000:]
                )
        return "\n".join(out)


def make_cluster(root: Path, n: int) -> Cluster:
    if not RCTL.exists():
        pytest.skip(f"{RCTL} missing: run make build")
    c = Cluster(root)
    for i, port in enumerate(free_ports(n), 1):
        sid = f"s{i}"
        c.servers[sid] = Server(
            sid, f"127.0.0.1:{port}", root / sid, root / f"{sid}.log"
        )
    return c


def wait_for(pred: Callable[[], bool], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while True:
        try:
            if pred():
                return
        except (RpcError, OSError, ProtocolError, TimeoutError):
            pass
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def leader_of(client: Client, servers: list[Server]) -> Server:
    found: list[Server] = []

    def pred() -> bool:
        found.clear()
        for s in servers:
            try:
                if client.status(s.addr)["state"] == "leader":
                    found.append(s)
            except (RpcError, OSError, ProtocolError, TimeoutError):
                continue
        return len(found) == 1

    wait_for(pred, 30, "one leader")
    return found[0]


@dataclass
class Env:
    cluster: Cluster
    client: Client
    # background probes started with the cluster (checked by later tests)
    idle_node_statuses: list[str]
    idle_watch: threading.Thread
    silent_sock: socket.socket
    partial_sock: socket.socket
    opened_at: float

    def leader(self) -> Server:
        return leader_of(self.client, self.cluster.live())

    def follower(self) -> Server:
        lead = self.leader()
        return next(s for s in self.cluster.live() if s.id != lead.id)

    def call(
        self, method: str, args: Mapping[str, Any] | None = None, **kw: Any
    ) -> Result:
        return cast(Result, self.client.call(method, args, **kw))

    def conn(self, s: Server) -> Connection:
        return self.client.conn(s.addr)


def _watch_node(client: Client, node_id: str, start_index: int, out: list[str]) -> None:
    """A blocking-query loop on Node.Get: records each status it sees."""
    idx = start_index
    end = time.monotonic() + 40
    while time.monotonic() < end:
        try:
            r = client.call(
                "Node.Get",
                {"id": node_id, "min_index": idx, "max_wait_ms": 5000},
                timeout_ms=8000,
            )
        except (RpcError, OSError, ProtocolError, TimeoutError):
            time.sleep(0.1)
            continue
        st = r["node"]["status"]
        if not out or out[-1] != st:
            out.append(st)
        if st == "unreachable":
            return
        idx = r["index"]


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    root = Path(tempfile.mkdtemp(prefix="rctl-docclient-"))
    cluster = make_cluster(root, 3)
    cluster.start()
    client = Client(cluster.addrs)
    try:
        leader_of(client, cluster.live())
        # An idle node that never heartbeats: watched from now on, so a later
        # test can check healthy -> degraded -> unreachable.
        reg = client.call(
            "Node.Register", {"id": "idle-1", "capacity": 1, "cloud": "idle"}
        )
        statuses: list[str] = [reg["node"]["status"]]
        watch = threading.Thread(
            target=_watch_node,
            args=(client, "idle-1", reg["index"], statuses),
            daemon=True,
        )
        watch.start()
        # Connection limits: one socket that sends nothing, one that starts
        # a frame and never finishes it (rpc.md "Transport", limits).
        host, port = cluster.addrs[0].rsplit(":", 1)
        silent = socket.create_connection((host, int(port)))
        partial = socket.create_connection((host, int(port)))
        partial.sendall(bytes([PROTO_RPC]) + b"\x00\x00")
        opened = time.monotonic()
        yield Env(cluster, client, statuses, watch, silent, partial, opened)
    finally:
        client.close()
        cluster.stop()
        if os.environ.get("DOCCLIENT_KEEP") is None:
            shutil.rmtree(root, ignore_errors=True)


def expect_error(code: str, fn: Callable[[], object]) -> RpcError:
    with pytest.raises(RpcError) as ei:
        fn()
    err = ei.value
    assert err.code == code, f"expected {code}, got {err.code}: {err.message}"
    assert err.code in CODES
    assert isinstance(err.message, str)
    assert err.message
    return err


def is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_task(t: Mapping[str, Any]) -> None:
    assert set(t) == TASK_KEYS, set(t) ^ TASK_KEYS
    assert isinstance(t["id"], str)
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}", t["id"])
    assert isinstance(t["type"], str)
    assert re.fullmatch(r"[a-z0-9_.-]{1,64}", t["type"])
    assert t["payload"] is None or (
        isinstance(t["payload"], dict)
        and all(
            isinstance(k, str) and isinstance(v, str) for k, v in t["payload"].items()
        )
    )
    assert isinstance(t["cloud"], str)
    assert is_int(t["max_attempts"])
    assert 1 <= t["max_attempts"] <= 100
    assert t["status"] in TASK_STATUSES
    assert isinstance(t["node_id"], str)
    assert is_int(t["attempts"])
    assert t["attempts"] >= 0
    for k in ("created_at", "updated_at", "create_index", "modify_index"):
        assert is_int(t[k]), k
        assert t[k] > 0, k
    assert t["updated_at"] >= t["created_at"]
    assert t["modify_index"] >= t["create_index"]
    now = time.time_ns()
    assert abs(t["created_at"] - now) < 3600 * NS_PER_S  # unix ns
    if t["status"] in ("complete", "failed"):
        res = t["result"]
        assert isinstance(res, dict)
        assert set(res) == {"exit_code", "output", "error"}
        assert is_int(res["exit_code"])
        assert isinstance(res["output"], str)
        assert isinstance(res["error"], str)
    if t["history"] is not None:
        assert isinstance(t["history"], list)
        assert 1 <= len(t["history"]) <= 32
        for ev in t["history"]:
            assert set(ev) == {"time", "index", "status", "node_id", "message"}
            assert is_int(ev["time"])
            assert is_int(ev["index"])
            assert ev["status"] in TASK_STATUSES
            assert isinstance(ev["node_id"], str)
            assert isinstance(ev["message"], str)
        idxs = [ev["index"] for ev in t["history"]]
        assert idxs == sorted(idxs)  # newest last
        assert t["history"][-1]["status"] == t["status"]


def check_meta(r: Mapping[str, Any]) -> None:
    assert is_int(r["index"])
    assert isinstance(r["known_leader"], bool)
    assert is_int(r["last_contact_ms"])


def check_node_info(n: Mapping[str, Any]) -> None:
    assert set(n) == NODE_KEYS | {"heartbeat_age_ms", "active_tasks"}
    check_node(n, info=True)


def check_node(n: Mapping[str, Any], info: bool = False) -> None:
    if not info:
        assert set(n) == NODE_KEYS
    assert isinstance(n["id"], str)
    assert isinstance(n["address"], str)
    for k in ("cloud", "region"):
        assert isinstance(n[k], str)
        assert re.fullmatch(r"[a-z0-9_.-]{0,64}", n[k])
    assert is_int(n["capacity"])
    assert 1 <= n["capacity"] <= 65536
    assert n["meta"] is None or isinstance(n["meta"], dict)
    assert n["status"] in {"healthy", "degraded", "unreachable"}
    for k in ("registered_at", "updated_at", "create_index", "modify_index"):
        assert is_int(n[k])
        assert n[k] > 0
    if info:
        assert is_int(n["heartbeat_age_ms"])
        assert n["heartbeat_age_ms"] >= -1
        assert is_int(n["active_tasks"])


def check_servers(servers: object, cluster: Cluster) -> None:
    assert isinstance(servers, list)
    got = {(s["id"], s["address"]) for s in servers}
    want = {(s.id, s.addr) for s in cluster.servers.values()}
    assert want <= got


# --------------------------------------------------------------------------
# transport and framing
# --------------------------------------------------------------------------


def test_framing_by_hand(env: Env) -> None:
    """The protocol byte, one length-prefixed frame each way, seq echoed."""
    with open_socket(env.cluster.addrs[0], PROTO_RPC) as s:
        s.settimeout(10)
        big = 2**64 - 1  # seq is a uint64
        s.sendall(frame({"seq": big, "method": "Status.Get", "args": None}))
        (n,) = struct.unpack(">I", s.recv(4, socket.MSG_WAITALL))
        body = s.recv(n, socket.MSG_WAITALL)
        assert len(body) == n
        msg = decode(body)
    assert set(msg) == {"seq", "error", "result"}
    assert msg["seq"] == big
    assert msg["error"] is None
    assert isinstance(msg["result"], dict)


def test_other_first_bytes_are_closed(env: Env) -> None:
    host, port = env.cluster.addrs[0].rsplit(":", 1)
    # a TLS ClientHello to an --insecure server, and an unknown protocol byte
    for first in (b"\x16\x03\x01\x00\x05hello", b"\x04"):
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(first)
            try:
                data = s.recv(100)
            except ConnectionResetError:
                data = b""
            assert data == b""


def test_pipelining_and_out_of_order_responses(env: Env) -> None:
    c = Connection(env.cluster.addrs[0])
    try:
        # more than the 256 served at once: the rest queue, all are answered
        rs = c.pipeline([("Status.Get", None)] * 300)
        assert len(rs) == 300
        assert all(r.error is None for r in rs)
        assert len({r.seq for r in rs}) == 300
        # a blocking query sent first is answered after a call sent later
        idx = c.call("Task.List", {"limit": 1})["index"]
        slow = c.send(
            "Task.List", {"limit": 1, "min_index": idx + 10**9, "max_wait_ms": 700}
        )
        fast = c.send("Status.Get", None)
        fast.result(10)
        assert not slow.done()
        assert slow.result(10)["index"] >= idx
        assert slow.arrived_at > fast.arrived_at
    finally:
        c.close()


def test_malformed_requests(env: Env) -> None:
    addr = env.cluster.addrs[0]
    c = Connection(addr)
    try:
        e = expect_error("invalid_argument", lambda: c.call("No.SuchMethod", {}))
        assert "No.SuchMethod" in e.message
        expect_error("invalid_argument", lambda: c.send_raw({"seq": 5}, 5).result(10))
        # args of the wrong shape / wrong field types
        bad_args = {"seq": 6, "method": "Task.Get", "args": "x"}
        expect_error(
            "invalid_argument", lambda: c.send_raw(bad_args, 6, "Task.Get").result(10)
        )
        expect_error("invalid_argument", lambda: c.call("Task.Add", {"type": 5}))
        # omitted args take their zero value: Task.Get without id
        expect_error("invalid_argument", lambda: c.call("Task.Get", None))
        # negative timeout
        expect_error(
            "invalid_argument", lambda: c.call("Status.Get", None, timeout_ms=-1)
        )
        # unknown keys are ignored, in the request and in args (FINDINGS D2)
        slot = c.send("Task.Get", {"id": "no-such", "colour": "red"}, extra={"x": 1})
        expect_error("not_found", lambda: slot.result(10))
        # the connection still works after all these
        assert c.call("Status.Get", None)["id"]
    finally:
        c.close()
    # a body that is not a request map: the server closes the connection
    for body in (
        encode([1, 2, 3]),
        b"\xc1",
        encode({"seq": "x", "method": "Status.Get"}),
    ):
        c = Connection(addr)
        try:
            c.send_bytes(struct.pack(">I", len(body)) + body)
            assert c.wait_closed(10)
            assert c.closed
        finally:
            c.close()
    # a frame announced above 16 MiB: disconnected without reading it
    c = Connection(addr)
    try:
        c.send_bytes(struct.pack(">I", MAX_FRAME + 1))
        assert c.wait_closed(10)
    finally:
        c.close()


def test_frame_of_exactly_16_mib_is_accepted(env: Env) -> None:
    """A body at the 16 MiB limit is read; the call fails on its content."""
    c = Connection(env.cluster.addrs[0])
    try:
        req = {"seq": 1, "method": "Operator.SnapshotInspect", "args": {"data": b""}}
        base = len(encode(req))
        pad = MAX_FRAME - base - 3  # bin 32 header grows by 3 bytes vs bin 8
        req["args"] = {"data": b"x" * pad}
        assert len(encode(req)) == MAX_FRAME
        # read and answered (not disconnected); the arguments are refused
        # (FINDINGS D9: an 8 MiB limit applies to arguments)
        e = expect_error("invalid_argument", lambda: c.send_raw(req, 1).result(30))
        assert e.message
        assert c.call("Status.Get", None)["id"]
    finally:
        c.close()


# --------------------------------------------------------------------------
# Status
# --------------------------------------------------------------------------


def test_status_get_every_field(env: Env) -> None:
    states = {}
    for s in env.cluster.live():
        st = env.client.status(s.addr)
        assert set(st) == {
            "id",
            "address",
            "cloud",
            "region",
            "state",
            "leader_id",
            "leader_addr",
            "term",
            "commit_index",
            "applied_index",
            "last_index",
            "last_contact_ms",
            "last_leader_change_ms",
            "num_peers",
            "version",
            "commit_p99_ms",
            "log_sync_p99_ms",
        }
        assert st["id"] == s.id
        assert st["address"] == s.addr
        assert (st["cloud"], st["region"]) == ("local", "dev")
        assert st["state"] in {"leader", "follower", "candidate", "shutdown"}
        for k in ("term", "commit_index", "applied_index", "last_index", "num_peers"):
            assert is_int(st[k])
            assert st[k] > 0
        assert st["num_peers"] == 3
        assert st["applied_index"] <= st["last_index"]
        assert isinstance(st["version"], str)
        assert st["version"]
        assert (
            abs(st["last_leader_change_ms"] - time.time() * 1000) < 3600_000
        )  # unix ms
        states[s.id] = st
    lead = [st for st in states.values() if st["state"] == "leader"]
    assert len(lead) == 1
    assert lead[0]["last_contact_ms"] == 0
    for st in states.values():  # floats in ms, -1 without a sample
        for k in ("commit_p99_ms", "log_sync_p99_ms"):
            assert isinstance(st[k], float | int)
            assert st[k] == -1 or st[k] > 0
        if st["state"] == "follower":
            assert st["commit_p99_ms"] == -1  # followers commit nothing
    # every server stored the log entries of the writes before this test
    assert all(st["log_sync_p99_ms"] > 0 for st in states.values())
    for st in states.values():
        assert st["leader_id"] == lead[0]["id"]
        assert st["leader_addr"] == lead[0]["address"]
        if st["state"] == "follower":
            assert st["last_contact_ms"] >= 0


def test_operator_rtt_every_field(env: Env) -> None:
    """Operator.RTT as docs/rpc.md describes it: every ordered pair through
    one server, its own row only with local, samples bounded."""
    s = env.follower()
    r = env.call("Operator.RTT", {"samples": 2}, addr=s.addr)
    assert set(r) == {"from", "timing", "max_rtt_ms", "pairs", "warnings"}
    assert r["from"] == s.id
    assert r["timing"] == "lan"
    assert r["max_rtt_ms"] == 20
    pairs = [(p["from"], p["to"]) for p in r["pairs"]]
    ids = ["s1", "s2", "s3"]
    assert pairs == [(a, b) for a in ids for b in ids if a != b]  # sorted
    for p in r["pairs"]:
        assert set(p) == {
            "from",
            "to",
            "from_cloud",
            "to_cloud",
            "samples",
            "min_ms",
            "median_ms",
            "max_ms",
            "error",
        }
        assert (p["from_cloud"], p["to_cloud"]) == ("local", "local")
        assert p["error"] == ""
        assert p["samples"] == 2
        assert 0 < p["min_ms"] <= p["median_ms"] <= p["max_ms"]
    assert all(isinstance(w, str) for w in r["warnings"])
    local = env.call("Operator.RTT", {"local": True}, addr=s.addr)
    assert {p["from"] for p in local["pairs"]} == {s.id}
    assert len(local["pairs"]) == 2
    assert all(p["samples"] == 5 for p in local["pairs"])  # 0 means 5

    def rtt_with(samples: int) -> Callable[[], object]:
        return lambda: env.call("Operator.RTT", {"samples": samples}, addr=s.addr)

    for bad in (-1, 21):
        expect_error("invalid_argument", rtt_with(bad))


def test_status_get_blocking(env: Env) -> None:
    s = env.follower()
    st = env.client.status(s.addr)
    t0 = time.monotonic()
    r = env.client.call(
        "Status.Get",
        {"min_index": st["applied_index"] + 10**9, "max_wait_ms": 400},
        addr=s.addr,
    )
    assert time.monotonic() - t0 >= 0.35
    assert r["applied_index"] >= st["applied_index"]
    # unblocks when the applied index passes min_index
    c = Connection(s.addr)
    try:
        st = c.call("Status.Get", None)
        slot = c.send(
            "Status.Get", {"min_index": st["applied_index"], "max_wait_ms": 20000}
        )
        env.call("Task.Add", {"id": "status-bump", "type": "sleep", "cloud": PARKED})
        r = slot.result(20)
        assert r["applied_index"] > st["applied_index"]
    finally:
        c.close()


def test_status_get_known_leader(env: Env) -> None:
    # "block until the server knows a leader whose id differs from it"
    lead = env.leader()
    s = env.follower()
    r = env.client.call(
        "Status.Get", {"known_leader": "nobody", "max_wait_ms": 20000}, addr=s.addr
    )
    assert (r["leader_id"], r["leader_addr"]) == (lead.id, lead.addr)  # at once
    t0 = time.monotonic()
    r = env.client.call(
        "Status.Get", {"known_leader": lead.id, "max_wait_ms": 400}, addr=s.addr
    )
    assert time.monotonic() - t0 >= 0.35  # still that leader: held to max_wait_ms
    assert r["leader_id"] == lead.id


def test_status_get_await_silence(env: Env) -> None:
    # "on a follower whose last word from its leader is less than that many
    # ms old, hold the reply until it is older ... or until the leader is
    # heard from again (last_contact_ms below it) ... never longer than
    # await_silence_ms. Any other server answers at once."
    lead = env.leader()
    s = env.follower()
    t0 = time.monotonic()
    r = env.client.call("Status.Get", {"await_silence_ms": 300}, addr=s.addr)
    assert time.monotonic() - t0 < 2.0  # held at most 300 ms (+ the call)
    assert r["leader_id"] == lead.id
    assert 0 <= r["last_contact_ms"] < 300  # a live leader is heard again
    t0 = time.monotonic()
    r = env.client.call("Status.Get", {"await_silence_ms": 5000}, addr=lead.addr)
    assert time.monotonic() - t0 < 1.0 and r["state"] == "leader"  # at once
    bads: list[dict[str, object]] = [
        {"await_silence_ms": -1},
        {"await_silence_ms": 60001},
        {"await_silence_ms": 100, "min_index": 1},
        {"await_silence_ms": 100, "known_leader": lead.id},
    ]
    for bad in bads:

        def held(args: dict[str, object] = bad) -> object:
            return env.client.call("Status.Get", args, addr=s.addr)

        expect_error("invalid_argument", held)


def test_status_members_every_field(env: Env) -> None:
    lead = env.leader()
    for s in env.cluster.live():
        r = env.call("Status.Members", None, addr=s.addr)
        assert set(r) == {"from", "members", "warnings"}
        assert r["from"] == lead.id  # built by the leader unless stale
        assert isinstance(r["warnings"], list)
        assert all(isinstance(w, str) for w in r["warnings"])
        ms = {m["id"]: m for m in r["members"]}
        assert set(ms) == {"s1", "s2", "s3"}
        for m in ms.values():
            assert set(m) == {
                "id",
                "address",
                "cloud",
                "region",
                "suffrage",
                "state",
                "leader",
                "last_contact_ms",
                "lag",
                "term",
                "rtt_ms",
                "commit_p99_ms",
                "log_sync_p99_ms",
            }
            assert m["address"] == env.cluster.servers[m["id"]].addr
            assert (m["cloud"], m["region"]) == ("local", "dev")
            assert m["suffrage"] == "voter"
            assert m["state"] in {
                "leader",
                "follower",
                "candidate",
                "unreachable",
                "unknown",
            }
            assert m["leader"] is (m["id"] == lead.id)
            assert is_int(m["last_contact_ms"])
            assert m["last_contact_ms"] >= -1
            assert is_int(m["lag"])
            assert m["lag"] >= -1
            assert is_int(m["term"])
            for k in ("rtt_ms", "commit_p99_ms", "log_sync_p99_ms"):
                assert isinstance(m[k], float | int)
                assert m[k] == -1 or m[k] >= 0
            if m["id"] != lead.id:
                assert m["rtt_ms"] > 0  # the leader's probe, timed
        assert ms[lead.id]["state"] == "leader"
        assert ms[lead.id]["last_contact_ms"] == 0
        assert ms[lead.id]["rtt_ms"] == 0
    # stale: the contacted server builds the list itself
    f = env.follower()
    r = env.call("Status.Members", {"stale": True}, addr=f.addr)
    assert r["from"] == f.id
    assert {m["id"] for m in r["members"]} == {"s1", "s2", "s3"}
    for m in r["members"]:
        if m["id"] == f.id:
            assert m["state"] == "follower"
        else:  # FINDINGS D13: a stale list knows only the contacted server
            assert (m["state"], m["lag"], m["last_contact_ms"]) == ("unknown", -1, -1)


# --------------------------------------------------------------------------
# Tasks
# --------------------------------------------------------------------------


def test_task_add_result_and_defaults(env: Env) -> None:
    before = time.time_ns()
    r = env.call(
        "Task.Add", {"type": "sleep", "payload": {"seconds": "1"}, "cloud": PARKED}
    )
    assert set(r) == {"task", "index"}
    t = r["task"]
    check_task(t)
    assert re.fullmatch(r"t-[0-9a-f]{16}", t["id"])  # generated id
    assert t["type"] == "sleep"
    assert t["payload"] == {"seconds": "1"}
    assert t["cloud"] == PARKED
    assert t["max_attempts"] == 3  # default
    assert t["status"] == "pending"
    assert t["node_id"] == ""
    assert t["attempts"] == 0
    assert t["result"] is None
    assert t["history"] is None  # nil until the first transition
    assert t["create_index"] == t["modify_index"] == r["index"]
    assert before - NS_PER_S < t["created_at"] < time.time_ns() + NS_PER_S
    assert t["created_at"] == t["updated_at"]
    g = env.call("Task.Get", {"id": t["id"]})
    assert g["task"] == t


def test_task_add_identical_readd_and_conflict(env: Env) -> None:
    args = {
        "id": "idem-1",
        "type": "sleep",
        "payload": {"a": "b"},
        "cloud": PARKED,
        "max_attempts": 5,
    }
    first = env.call("Task.Add", args)
    again = env.call("Task.Add", args)
    assert again["task"] == first["task"]  # changes nothing
    # the re-add is acknowledged at an index >= the task's (FINDINGS: it is a
    # new log entry, not the task's modify_index)
    assert again["index"] > first["task"]["modify_index"]
    # default 0 means 3: re-adding with the default equal to 3 explicitly
    base = {"id": "idem-2", "type": "sleep", "cloud": PARKED}
    env.call("Task.Add", base)
    assert (
        env.call("Task.Add", {**base, "max_attempts": 3})["task"]["max_attempts"] == 3
    )
    for change in (
        {"type": "shell"},
        {"payload": {"a": "c"}},
        {"cloud": "other"},
        {"max_attempts": 4},
    ):
        e = expect_error("conflict", partial(env.call, "Task.Add", {**args, **change}))
        assert "idem-1" in e.message
    assert env.call("Task.Get", {"id": "idem-1"})["task"] == first["task"]


def test_task_add_limits(env: Env) -> None:
    ok_id = "a" + "Z9._:-" * 21  # 127 chars of the allowed alphabet
    ok_id = ok_id + "x"  # 128
    assert len(ok_id) == 128
    okpayload = {f"k{i:03d}": "v" for i in range(63)}
    okpayload["K" * 128] = "v" * 65536
    good = {
        "id": ok_id,
        "type": "a" * 64,
        "payload": okpayload,
        "cloud": PARKED,
        "max_attempts": 100,
    }
    t = env.call("Task.Add", good)["task"]
    assert t["id"] == ok_id
    assert len(t["payload"]) == 64
    assert t["max_attempts"] == 100
    env.call("Task.Add", {"id": "under_score_ok", "type": "sleep", "cloud": PARKED})
    bad: list[dict[str, Any]] = [
        {"id": "b" * 129},
        {"id": "_lead"},
        {"id": "-lead"},
        {"id": "sp ace"},
        {"id": "slash/x"},
        {"type": ""},
        {"type": "t" * 65},
        {"type": "Shell"},
        {"payload": {f"k{i}": "v" for i in range(65)}},
        {"payload": {"k" * 129: "v"}},
        {"payload": {"k": "v" * 65537}},
        {"max_attempts": 101},
        {"max_attempts": -1},
        {"cloud": "AWS"},
        {"cloud": "c" * 65},
    ]
    for i, b in enumerate(bad):
        args = {"id": f"limit-bad-{i}", "type": "sleep", "cloud": PARKED, **b}
        expect_error("invalid_argument", partial(env.call, "Task.Add", args))
        if args["id"].startswith("limit-bad-"):
            expect_error(
                "not_found", partial(env.call, "Task.Get", {"id": f"limit-bad-{i}"})
            )


def test_task_add_batch(env: Env) -> None:
    tasks = [{"id": f"batch-{i}", "type": "sleep", "cloud": PARKED} for i in range(5)]
    tasks.insert(2, {"type": "shell", "cloud": PARKED})  # id generated
    r = env.call("Task.AddBatch", {"tasks": tasks})
    assert set(r) == {"tasks", "index"}
    got = r["tasks"]
    assert len(got) == 6
    for want, t in zip(tasks, got, strict=True):
        check_task(t)
        assert t["type"] == want["type"]
        if "id" in want:
            assert t["id"] == want["id"]
    assert re.fullmatch(r"t-[0-9a-f]{16}", got[2]["id"])
    # one log entry
    assert {t["create_index"] for t in got} == {r["index"]}
    # resend with every id set: a no-op
    fixed = [{**w, "id": t["id"]} for w, t in zip(tasks, got, strict=True)]
    r2 = env.call("Task.AddBatch", {"tasks": fixed})
    assert [t["modify_index"] for t in r2["tasks"]] == [t["modify_index"] for t in got]
    # all or nothing, naming the element
    bad = [{"id": "batch-new-1", "type": "sleep"}, {"id": "batch-new-2", "type": "BAD"}]
    e = expect_error(
        "invalid_argument", lambda: env.call("Task.AddBatch", {"tasks": bad})
    )
    assert "1" in e.message
    expect_error("not_found", lambda: env.call("Task.Get", {"id": "batch-new-1"}))
    clash = [{"id": "batch-new-3", "type": "sleep"}, {"id": "batch-0", "type": "shell"}]
    expect_error("conflict", lambda: env.call("Task.AddBatch", {"tasks": clash}))
    expect_error("not_found", lambda: env.call("Task.Get", {"id": "batch-new-3"}))
    # the same id twice in one batch: fine if identical (FINDINGS D5)
    same = [{"id": "batch-dup", "type": "sleep", "cloud": PARKED}] * 2
    r3 = env.call("Task.AddBatch", {"tasks": same})
    assert [t["id"] for t in r3["tasks"]] == ["batch-dup", "batch-dup"]
    differ = [
        {"id": "batch-dup2", "type": "sleep", "cloud": PARKED},
        {"id": "batch-dup2", "type": "shell", "cloud": PARKED},
    ]
    expect_error(
        "invalid_argument", lambda: env.call("Task.AddBatch", {"tasks": differ})
    )
    # sizes: 1..1000
    expect_error("invalid_argument", lambda: env.call("Task.AddBatch", {"tasks": []}))
    expect_error("invalid_argument", lambda: env.call("Task.AddBatch", None))
    many = [{"type": "sleep", "cloud": PARKED}] * 1001
    expect_error("invalid_argument", lambda: env.call("Task.AddBatch", {"tasks": many}))
    big = [{"id": f"kbatch-{i}", "type": "bulk", "cloud": PARKED} for i in range(1000)]
    r = env.call("Task.AddBatch", {"tasks": big})
    assert len(r["tasks"]) == 1000


def test_task_get_and_query_meta(env: Env) -> None:
    t = env.call("Task.Add", {"id": "get-1", "type": "sleep", "cloud": PARKED})["task"]
    for s in env.cluster.live():
        g = env.call("Task.Get", {"id": "get-1"}, addr=s.addr)
        assert set(g) == {"task"} | META_KEYS
        check_meta(g)
        assert g["index"] == t["modify_index"]
        assert g["known_leader"] is True
        assert g["last_contact_ms"] == 0  # linearizable: served by the leader
        assert g["task"] == t
    f = env.follower()
    wait_for(
        lambda: (
            env.call("Task.Get", {"id": "get-1", "stale": True}, addr=f.addr)["index"]
            == t["modify_index"]
        ),
        10,
        "follower applies get-1",
    )
    g = env.call("Task.Get", {"id": "get-1", "stale": True}, addr=f.addr, retry=False)
    check_meta(g)
    assert g["known_leader"] is True
    assert g["last_contact_ms"] >= 0
    e = expect_error("not_found", lambda: env.call("Task.Get", {"id": "no-such-task"}))
    assert "no-such-task" in e.message
    expect_error(
        "invalid_argument",
        lambda: env.call("Task.Get", {"id": "get-1", "max_wait_ms": -1}),
    )


def test_blocking_queries(env: Env) -> None:
    # a table never written has index 0, and min_index 0 does not block
    # (FINDINGS D10): make sure the task table has an index
    env.call("Task.Add", {"id": "block-0", "type": "sleep", "cloud": PARKED})
    c = Connection(env.follower().addr)
    try:
        r = c.call("Task.List", {"limit": 1})
        idx = r["index"]
        assert idx > 0
        # max_wait_ms passes: a normal answer, same index
        t0 = time.monotonic()
        r = c.call("Task.List", {"limit": 1, "min_index": idx, "max_wait_ms": 400})
        assert time.monotonic() - t0 >= 0.35
        assert r["index"] == idx
        # a write unblocks it with a greater index
        slot = c.send(
            "Task.List",
            {"limit": 1, "min_index": idx, "max_wait_ms": 30000},
            timeout_ms=40000,
        )
        time.sleep(0.1)
        assert not slot.done()
        w = env.call("Task.Add", {"id": "block-1", "type": "sleep", "cloud": PARKED})
        r = slot.result(30)
        assert r["index"] > idx
        assert r["index"] >= w["index"]
        # Node.List's index covers the task table too (FINDINGS D4); idle-1's
        # status changes must be over so that only our write can wake it
        env.idle_watch.join(40)
        n = c.call("Node.List", None)
        slot = c.send("Node.List", {"min_index": n["index"], "max_wait_ms": 30000})
        time.sleep(0.1)
        assert not slot.done()
        w = env.call("Task.Add", {"id": "block-2", "type": "sleep", "cloud": PARKED})
        assert slot.result(30)["index"] >= w["index"]
        # Task.Get blocks on the task's modify_index
        g = c.call("Task.Get", {"id": "block-1"})
        slot = c.send(
            "Task.Get", {"id": "block-1", "min_index": g["index"], "max_wait_ms": 30000}
        )
        time.sleep(0.1)
        assert not slot.done()
        env.call("Task.Cancel", {"id": "block-1", "reason": "wake"})
        g2 = slot.result(30)
        assert g2["index"] > g["index"]
        assert g2["task"]["status"] == "cancelled"
        # timeout_ms below max_wait_ms (against the doc's advice): through a
        # follower the answer is either normal or deadline_exceeded (FINDINGS D11)
        t0 = time.monotonic()
        try:
            r = c.call(
                "Task.List",
                {"limit": 1, "min_index": 10**12, "max_wait_ms": 20000},
                timeout_ms=500,
            )
            check_meta(r)
        except RpcError as e:
            assert e.code == "deadline_exceeded"
        assert 0.4 <= time.monotonic() - t0 < 10
        # caps: a huge max_wait_ms is accepted (capped), negative refused
        expect_error(
            "invalid_argument",
            lambda: c.call("Task.List", {"limit": 1, "max_wait_ms": -5}),
        )
        assert c.call("Task.List", {"limit": 1, "max_wait_ms": 10**12})["index"] > 0
        assert c.call("Status.Get", None, timeout_ms=10**9)["id"]
    finally:
        c.close()


def walk(env: Env, cursor: str = "", **args: Any) -> tuple[list[str], int]:
    ids: list[str] = []
    pages = 0
    while True:
        r = env.call("Task.List", {**args, "cursor": cursor})
        pages += 1
        ids += [t["id"] for t in r["tasks"]]
        cursor = r["next_cursor"]
        if cursor == "":
            return ids, pages


def test_task_list_paging_and_filters(env: Env) -> None:
    ids = [f"pg-{i:02d}" for i in range(23)]
    env.call(
        "Task.AddBatch",
        {"tasks": [{"id": i, "type": "pagetest", "cloud": PARKED} for i in ids[:10]]},
    )
    for i in ids[10:]:
        env.call("Task.Add", {"id": i, "type": "pagetest", "cloud": PARKED})
    r = env.call("Task.List", {"type": "pagetest", "limit": 5})
    assert set(r) == {"tasks", "counts", "next_cursor"} | META_KEYS
    check_meta(r)
    assert isinstance(r["next_cursor"], str)
    assert r["next_cursor"]
    assert len(r["tasks"]) == 5
    for t in r["tasks"]:
        check_task(t)
    # counts: every status, for the whole manifest
    assert set(r["counts"]) == TASK_STATUSES
    full, _ = walk(env, limit=10000)
    assert sum(r["counts"].values()) == len(full)
    # in (create_index, id) order, each exactly once
    got, pages = walk(env, type="pagetest", limit=7)
    assert got == ids
    assert pages >= 4
    rev, _ = walk(env, type="pagetest", limit=7, reverse=True)
    assert rev == ids[::-1]
    ts = [t for t in env.call("Task.List", {"limit": 10000})["tasks"]]
    keys = [(t["create_index"], t["id"]) for t in ts]
    assert keys == sorted(keys)
    # limit 0 means 1,000
    r = env.call("Task.List", {"limit": 0})
    assert len(r["tasks"]) == min(1000, len(full))
    # the other filters may change along a walk; reverse may not
    p1 = env.call("Task.List", {"type": "pagetest", "limit": 3})
    p2 = env.call(
        "Task.List", {"limit": 3, "cursor": p1["next_cursor"], "status": "pending"}
    )
    assert all(t["status"] == "pending" for t in p2["tasks"])
    e = expect_error(
        "invalid_argument",
        lambda: env.call("Task.List", {"cursor": p1["next_cursor"], "reverse": True}),
    )
    assert "reverse" in e.message
    cur = p1["next_cursor"]
    altered = cur[:-1] + ("A" if cur[-1] != "A" else "B")
    expect_error("invalid_argument", lambda: env.call("Task.List", {"cursor": altered}))
    expect_error(
        "invalid_argument", lambda: env.call("Task.List", {"cursor": "made-up"})
    )
    # tasks added and removed during a walk: the others neither repeat nor shift
    first = env.call("Task.List", {"type": "pagetest", "limit": 5})
    env.call("Task.Cancel", {"id": "pg-07"})
    env.call("Task.Add", {"id": "pg-new", "type": "pagetest", "cloud": PARKED})
    rest, _ = walk(env, type="pagetest", limit=5, cursor=first["next_cursor"])
    seen = [t["id"] for t in first["tasks"]] + rest
    assert seen == ids + ["pg-new"]
    seen_pending, _ = walk(env, type="pagetest", status="pending", limit=4)
    assert "pg-07" not in seen_pending
    # status / node_id filters
    r = env.call("Task.List", {"status": "cancelled", "limit": 10000})
    assert "pg-07" in [t["id"] for t in r["tasks"]]
    assert all(t["status"] == "cancelled" for t in r["tasks"])
    assert env.call("Task.List", {"node_id": "nobody-holds-this"})["tasks"] == []


def test_walk_tolerates_page_with_start_cursor(env: Env) -> None:
    """``walk_tasks`` helper: follows next_cursor until ""."""
    got = [
        t["id"]
        for t in env.client.walk_tasks(page=4, type="pagetest", status="pending")
    ]
    assert got == [f"pg-{i:02d}" for i in range(23) if i != 7] + ["pg-new"]


def test_task_list_argument_errors(env: Env) -> None:
    for args in (
        {"limit": -1},
        {"limit": 10001},
        {"status": "bogus"},
        {"type": "t" * 65},
        {"node_id": "n" * 129},
        {"max_wait_ms": -1},
    ):
        expect_error("invalid_argument", partial(env.call, "Task.List", args))
    assert (
        len(
            env.call(
                "Task.List", {"limit": 10000, "type": "t" * 64, "node_id": "n" * 128}
            )["tasks"]
        )
        == 0
    )


def test_task_cancel(env: Env) -> None:
    env.call("Task.Add", {"id": "cancel-1", "type": "sleep", "cloud": PARKED})
    r = env.call("Task.Cancel", {"id": "cancel-1", "reason": "not needed"})
    assert set(r) == {"task", "index"}
    t = r["task"]
    check_task(t)
    assert t["status"] == "cancelled"
    assert t["modify_index"] == r["index"]
    assert t["history"][-1]["message"] == "not needed"
    assert t["history"][-1]["index"] == r["index"]
    again = env.call("Task.Cancel", {"id": "cancel-1", "reason": "again"})
    assert again["task"]["modify_index"] == t["modify_index"]  # no-op
    assert again["task"]["history"] == t["history"]
    expect_error("not_found", lambda: env.call("Task.Cancel", {"id": "no-such-task"}))


# --------------------------------------------------------------------------
# Nodes and the task life cycle
# --------------------------------------------------------------------------


def heartbeat(env: Env, node_id: str, **args: Any) -> Result:
    return env.call("Node.Heartbeat", {"node_id": node_id, **args})


def test_node_register_heartbeat_and_reports(env: Env) -> None:
    cl = env.cluster
    r = env.call(
        "Node.Register",
        {
            "id": "w-1",
            "address": "10.9.0.1:7000",
            "cloud": "lab",
            "region": "r-1",
            "capacity": 2,
            "meta": {"executors": "sleep"},
        },
    )
    assert set(r) == {
        "node",
        "index",
        "heartbeat_interval_ms",
        "ttl_ms",
        "follow_spread_ms",
        "leader_id",
        "leader_addr",
        "servers",
    }
    n = r["node"]
    check_node(n)
    assert (n["id"], n["address"], n["cloud"], n["region"], n["capacity"]) == (
        "w-1",
        "10.9.0.1:7000",
        "lab",
        "r-1",
        2,
    )
    assert n["meta"] == {"executors": "sleep"}
    assert n["status"] == "healthy"
    assert n["create_index"] == n["modify_index"] == r["index"]
    assert is_int(r["heartbeat_interval_ms"])
    assert r["heartbeat_interval_ms"] > 0
    assert r["ttl_ms"] > r["heartbeat_interval_ms"]
    # a handful of nodes spread their first heartbeat to a new leader over
    # nodes / 40,000 s: nothing; never more than a quarter interval
    assert is_int(r["follow_spread_ms"])
    assert 0 <= r["follow_spread_ms"] <= r["heartbeat_interval_ms"] // 4
    lead = env.leader()
    assert (r["leader_id"], r["leader_addr"]) == (lead.id, lead.addr)
    check_servers(r["servers"], cl)

    # a follower refuses heartbeats, naming the leader
    f = env.follower()
    e = expect_error(
        "not_leader",
        lambda: env.call(
            "Node.Heartbeat", {"node_id": "w-1"}, addr=f.addr, retry=False
        ),
    )
    assert (e.leader_id, e.leader_addr) == (lead.id, lead.addr)

    add = env.call(
        "Task.AddBatch",
        {
            "tasks": [
                {"id": "job-a", "type": "sleep", "cloud": "lab"},
                {"id": "job-b", "type": "sleep", "cloud": "lab"},
                {"id": "job-c", "type": "sleep", "cloud": "lab"},
            ]
        },
    )
    assert add["index"] > 0

    def held() -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], heartbeat(env, "w-1", running=[])["tasks"])

    wait_for(lambda: len(held()) == 2, 10, "two tasks assigned to w-1 (capacity 2)")
    hb = heartbeat(env, "w-1", running=[])
    assert set(hb) == {
        "status",
        "heartbeat_interval_ms",
        "ttl_ms",
        "follow_spread_ms",
        "tasks",
        "leader_id",
        "leader_addr",
        "servers",
        "index",
    }
    assert hb["status"] == "healthy"
    assert hb["ttl_ms"] == r["ttl_ms"]
    assert hb["follow_spread_ms"] == r["follow_spread_ms"]
    assert (hb["leader_id"], hb["leader_addr"]) == (lead.id, lead.addr)
    check_servers(hb["servers"], cl)
    for t in hb["tasks"]:
        check_task(t)
        assert t["status"] == "assigned"
        assert t["node_id"] == "w-1"
        assert t["attempts"] == 1
        assert t["history"][-1]["status"] == "assigned"
    held_ids = sorted(t["id"] for t in hb["tasks"])
    first, second = held_ids
    third = ({"job-a", "job-b", "job-c"} - set(held_ids)).pop()
    assert env.call("Task.Get", {"id": third})["task"]["status"] == "pending"

    # NodeInfo in Node.List / Node.Get
    nl = env.call("Node.List", None)
    assert set(nl) == {"nodes"} | META_KEYS
    check_meta(nl)
    info = {x["id"]: x for x in nl["nodes"]}["w-1"]
    check_node_info(info)
    assert info["active_tasks"] == 2
    assert 0 <= info["heartbeat_age_ms"] < 60_000
    ng = env.call("Node.Get", {"id": "w-1"})
    assert set(ng) == {"node", "tasks"} | META_KEYS
    check_node_info(ng["node"])
    assert sorted(t["id"] for t in ng["tasks"]) == held_ids
    stale = env.call("Node.List", {"stale": True}, addr=f.addr, retry=False)
    for x in stale["nodes"]:
        assert x["heartbeat_age_ms"] == -1  # not the leader
    expect_error("not_found", lambda: env.call("Node.Get", {"id": "no-such-node"}))

    # Task.Start: assigned -> running; a repeat is a no-op; others conflict
    s = env.call("Task.Start", {"task_id": first, "node_id": "w-1"})
    assert set(s) == {"task", "index"}
    assert s["task"]["status"] == "running"
    assert s["task"]["modify_index"] == s["index"]
    s2 = env.call("Task.Start", {"task_id": first, "node_id": "w-1"})
    assert s2["task"]["modify_index"] == s["task"]["modify_index"]
    expect_error(
        "conflict", lambda: env.call("Task.Start", {"task_id": first, "node_id": "w-2"})
    )
    expect_error(
        "not_found",
        lambda: env.call("Task.Start", {"task_id": "nope", "node_id": "w-1"}),
    )
    # a pending task cannot complete
    expect_error(
        "conflict",
        lambda: env.call(
            "Task.Complete",
            {"task_id": third, "node_id": "w-1", "result": {"exit_code": 0}},
        ),
    )
    # heartbeat index is the same counter as the reports' index
    hb2 = heartbeat(env, "w-1", running=[first])
    assert hb2["index"] >= s["index"]

    # Task.Complete keeps the last 64 KiB of the output's UTF-8 bytes
    out = "a" + "é" * 40000  # 80,001 bytes
    res = {"exit_code": 0, "output": out, "error": "warn"}
    c = env.call("Task.Complete", {"task_id": first, "node_id": "w-1", "result": res})
    t = c["task"]
    check_task(t)
    assert t["status"] == "complete"
    assert t["result"]["exit_code"] == 0
    assert t["result"]["error"] == "warn"
    kept = t["result"]["output"].encode()
    assert 65536 - 4 <= len(kept) <= 65536
    assert out.encode().endswith(kept)
    again = env.call(
        "Task.Complete", {"task_id": first, "node_id": "w-1", "result": res}
    )
    assert again["task"]["modify_index"] == t["modify_index"]
    expect_error(
        "conflict",
        lambda: env.call(
            "Task.Fail",
            {"task_id": first, "node_id": "w-1", "result": {"exit_code": 1}},
        ),
    )
    expect_error("conflict", lambda: env.call("Task.Cancel", {"id": first}))
    expect_error(
        "not_found",
        lambda: env.call(
            "Task.Complete", {"task_id": "nope", "node_id": "w-1", "result": {}}
        ),
    )

    # Task.Fail straight from assigned
    fr = env.call(
        "Task.Fail",
        {
            "task_id": second,
            "node_id": "w-1",
            "result": {"exit_code": 3, "output": "", "error": "boom"},
        },
    )
    assert fr["task"]["status"] == "failed"
    assert fr["task"]["result"] == {"exit_code": 3, "output": "", "error": "boom"}
    assert [h["status"] for h in fr["task"]["history"]] == ["assigned", "failed"]
    fr2 = env.call(
        "Task.Fail",
        {
            "task_id": second,
            "node_id": "w-1",
            "result": {"exit_code": 3, "output": "", "error": "boom"},
        },
    )
    assert fr2["task"]["modify_index"] == fr["task"]["modify_index"]
    # the same kind of report with another result: a no-op, the first result
    # is kept (FINDINGS D6); the other kind of report is a conflict
    fr3 = env.call(
        "Task.Fail",
        {"task_id": second, "node_id": "w-1", "result": {"exit_code": 9}},
    )
    assert fr3["task"]["modify_index"] == fr["task"]["modify_index"]
    assert fr3["task"]["result"]["exit_code"] == 3
    expect_error(
        "conflict",
        lambda: env.call(
            "Task.Complete",
            {"task_id": second, "node_id": "w-1", "result": {"exit_code": 0}},
        ),
    )
    c3 = env.call(
        "Task.Complete",
        {"task_id": first, "node_id": "w-1", "result": {"exit_code": 7}},
    )
    assert c3["task"]["result"]["exit_code"] == 0

    # the third task now comes to w-1; draining takes no new work
    wait_for(lambda: [t["id"] for t in held()] == [third], 10, f"{third} assigned")
    hb = heartbeat(env, "w-1", draining=True, running=[])
    env.call("Task.Add", {"id": "job-d", "type": "sleep", "cloud": "lab"})
    time.sleep(0.5)
    hb = heartbeat(env, "w-1", draining=True, running=[])
    assert [t["id"] for t in hb["tasks"]] == [third]
    assert env.call("Task.Get", {"id": "job-d"})["task"]["status"] == "pending"

    # Node.Register again (agent restart) requeues what the node held
    rr = env.call("Node.Register", {"id": "w-1", "cloud": "lab", "capacity": 1})
    t3 = env.call("Task.Get", {"id": third})["task"]
    assert any(
        h["status"] == "pending" and h["index"] >= rr["index"] for h in t3["history"]
    )
    assert t3["attempts"] >= 1
    # Node.Deregister requeues too; the node is gone
    env.call("Task.Cancel", {"id": "job-d"})
    wait_for(lambda: [t["id"] for t in held()] == [third], 10, f"{third} reassigned")
    d = env.call("Node.Deregister", {"node_id": "w-1"})
    assert set(d) == {"index"}
    t3 = env.call("Task.Get", {"id": third})["task"]
    assert t3["status"] == "pending"
    assert t3["node_id"] == ""
    expect_error("not_found", lambda: env.call("Node.Get", {"id": "w-1"}))
    expect_error("not_found", lambda: heartbeat(env, "w-1"))
    expect_error("not_found", lambda: env.call("Node.Deregister", {"node_id": "w-1"}))
    env.call("Task.Cancel", {"id": third})


def test_attempts_exhausted_fails_the_task(env: Env) -> None:
    env.call("Node.Register", {"id": "w-2", "cloud": "lab2", "capacity": 1})
    env.call(
        "Task.Add", {"id": "once", "type": "sleep", "cloud": "lab2", "max_attempts": 1}
    )
    wait_for(
        lambda: env.call("Task.Get", {"id": "once"})["task"]["status"] == "assigned",
        10,
        "once assigned",
    )
    env.call("Node.Deregister", {"node_id": "w-2"})
    t = env.call("Task.Get", {"id": "once"})["task"]
    check_task(t)
    assert t["status"] == "failed"
    assert t["attempts"] == 1
    assert t["result"]["exit_code"] == -1  # FINDINGS D12
    assert t["result"]["output"] == ""
    assert t["result"]["error"]


def test_node_register_errors(env: Env) -> None:
    for args in (
        {"id": "", "capacity": 1},
        {"id": "_x", "capacity": 1},
        {"id": "n-cap0", "capacity": 0},
        {"id": "n-cap", "capacity": 65537},
        {"id": "n-up", "capacity": 1, "cloud": "AWS"},
        {"id": "n-up", "capacity": 1, "region": "US-East-1"},
    ):
        expect_error("invalid_argument", partial(env.call, "Node.Register", args))
    r = env.call("Node.Register", {"id": "n-max", "capacity": 65536, "cloud": PARKED})
    assert r["node"]["capacity"] == 65536
    env.call("Node.Deregister", {"node_id": "n-max"})


def test_node_status_degraded_then_unreachable(env: Env) -> None:
    """idle-1 registered at start and never heartbeats (watched by a
    blocking Node.Get loop since then)."""
    env.idle_watch.join(40)
    assert env.idle_node_statuses == ["healthy", "degraded", "unreachable"]
    info = env.call("Node.Get", {"id": "idle-1"})["node"]
    assert info["status"] == "unreachable"


# --------------------------------------------------------------------------
# GC
# --------------------------------------------------------------------------


def test_task_gc(env: Env) -> None:
    env.call("Task.Add", {"id": "gc-me", "type": "sleep", "cloud": PARKED})
    env.call("Task.Cancel", {"id": "gc-me"})
    time.sleep(0.01)
    r = env.call("Task.GC", {"older_than_ms": 1})
    assert set(r) == {"retired", "index"}
    assert r["retired"] >= 1
    assert r["index"] > 0
    e = expect_error("not_found", lambda: env.call("Task.Get", {"id": "gc-me"}))
    assert "retired" in e.message
    assert "cancelled" in e.message
    # the id may be used again
    t = env.call("Task.Add", {"id": "gc-me", "type": "shell", "cloud": PARKED})["task"]
    assert t["type"] == "shell"
    # nothing to retire
    r = env.call("Task.GC", {"older_than_ms": 3_600_000})
    assert r == {"retired": 0, "index": 0}  # FINDINGS D8
    for v in (0, -1, 100 * 366 * 86_400_000):
        expect_error(
            "invalid_argument", partial(env.call, "Task.GC", {"older_than_ms": v})
        )
    assert (
        env.call("Task.GC", {"older_than_ms": 100 * 365 * 86_400_000})["retired"] == 0
    )


# --------------------------------------------------------------------------
# Operator
# --------------------------------------------------------------------------


def peers(env: Env, s: Server | None = None) -> Result:
    return env.call("Operator.RaftPeers", None, addr=s.addr if s else None)


def test_operator_raft_peers(env: Env) -> None:
    lead = env.leader()
    for s in env.cluster.live():
        r = peers(env, s)
        assert set(r) == {"peers", "index"}
        assert is_int(r["index"])
        ps = {p["id"]: p for p in r["peers"]}
        assert set(ps) == {"s1", "s2", "s3"}
        for p in ps.values():
            assert set(p) == {"id", "address", "suffrage", "leader"}
            assert p["address"] == env.cluster.servers[p["id"]].addr
            assert p["suffrage"] == "voter"
            assert p["leader"] is (p["id"] == lead.id)


def test_operator_raft_peers_index_is_the_configuration_index(env: Env) -> None:
    before = peers(env, env.leader())["index"]
    assert before > 0  # the bootstrap configuration counts
    j = env.call(
        "Operator.Join", {"id": "idx-probe", "address": "127.0.0.1:9", "voter": False}
    )
    try:
        assert before < peers(env, env.leader())["index"] < j["index"]
    finally:
        env.call("Operator.RemovePeer", {"id": "idx-probe"})


def test_operator_join_and_remove_peer(env: Env) -> None:
    args = {
        "id": "ghost",
        "address": "127.0.0.1:9",
        "voter": False,
        "cloud": "local",
        "region": "far",
    }
    j = env.call("Operator.Join", args)
    assert set(j) == {"index"}
    assert j["index"] > 0
    j2 = env.call("Operator.Join", args)  # already in: a no-op
    assert is_int(j2["index"])
    ps = {p["id"]: p for p in peers(env)["peers"]}
    assert ps["ghost"]["suffrage"] == "nonvoter"
    assert ps["ghost"]["address"] == "127.0.0.1:9"
    ms = {m["id"]: m for m in env.call("Status.Members", None)["members"]}
    assert (ms["ghost"]["cloud"], ms["ghost"]["region"]) == ("local", "far")
    assert ms["ghost"]["suffrage"] == "nonvoter"
    assert ms["ghost"]["state"] in {"unreachable", "unknown"}
    assert ms["ghost"]["lag"] == -1
    e = expect_error(
        "conflict",
        lambda: env.call(
            "Operator.Join", {"id": "other", "address": "127.0.0.1:9", "voter": False}
        ),
    )
    assert "ghost" in e.message
    for bad in ({"id": "", "address": "127.0.0.1:8"}, {"id": "x", "address": ""}):
        expect_error(
            "invalid_argument",
            partial(env.call, "Operator.Join", {**bad, "voter": False}),
        )
    e = expect_error(
        "invalid_argument", lambda: env.call("Operator.TransferLeader", {"id": "ghost"})
    )
    r = env.call("Operator.RemovePeer", {"id": "ghost"})
    assert set(r) == {"index"}
    assert r["index"] > j["index"]
    assert "ghost" not in {p["id"] for p in peers(env)["peers"]}
    expect_error("not_found", lambda: env.call("Operator.RemovePeer", {"id": "ghost"}))


def test_operator_join_refused_changes_nothing(env: Env) -> None:
    bad = {"id": "bad-label", "address": "127.0.0.1:7", "voter": False, "cloud": "AWS"}
    expect_error("invalid_argument", lambda: env.call("Operator.Join", bad))
    try:
        assert "bad-label" not in {p["id"] for p in peers(env, env.leader())["peers"]}
    finally:
        try:
            env.call("Operator.RemovePeer", {"id": "bad-label"})
        except RpcError as e:
            assert e.code == "not_found"


def test_operator_server_labels(env: Env) -> None:
    s1 = env.cluster.servers["s1"]
    r = env.call(
        "Operator.ServerLabels",
        {
            "server": {
                "id": "s1",
                "address": s1.addr,
                "cloud": "local",
                "region": "west",
            }
        },
    )
    assert set(r) == {"index"}
    assert r["index"] > 0
    ms = {m["id"]: m for m in env.call("Status.Members", None)["members"]}
    assert ms["s1"]["region"] == "west"
    # Status.Get reports the server's own --region (FINDINGS D15)
    assert env.client.status(s1.addr)["region"] == "dev"
    expect_error(
        "invalid_argument",
        lambda: env.call(
            "Operator.ServerLabels",
            {"server": {"id": "s1", "address": s1.addr, "cloud": "BAD"}},
        ),
    )
    expect_error("invalid_argument", lambda: env.call("Operator.ServerLabels", {}))
    env.call(
        "Operator.ServerLabels",
        {"server": {"id": "s1", "address": s1.addr, "cloud": "local", "region": "dev"}},
    )
    ms = {m["id"]: m for m in env.call("Status.Members", None)["members"]}
    assert ms["s1"]["region"] == "dev"


def test_operator_transfer_leader(env: Env) -> None:
    lead = env.leader()
    target = next(s for s in env.cluster.live() if s.id != lead.id)
    r = env.call("Operator.TransferLeader", {"id": target.id})
    assert set(r) == {"leader_id", "leader_addr"}
    assert (r["leader_id"], r["leader_addr"]) == (target.id, target.addr)
    assert env.client.status(target.addr)["state"] == "leader"
    r = env.call("Operator.TransferLeader", {"id": ""})
    assert r["leader_id"] != target.id
    assert env.cluster.servers[r["leader_id"]].addr == r["leader_addr"]
    expect_error(
        "not_found",
        lambda: env.call("Operator.TransferLeader", {"id": "no-such-server"}),
    )
    # naming the current leader: success, nothing moves (FINDINGS D14)
    term = env.client.status(r["leader_addr"])["term"]
    same = env.call("Operator.TransferLeader", {"id": r["leader_id"]})
    assert same == r
    assert env.client.status(r["leader_addr"])["term"] == term
    # the leader is where Status says
    wait_for(lambda: env.leader().id == r["leader_id"], 10, "leader settles")


def test_snapshot_stream_and_inspect(env: Env) -> None:
    lead = env.leader()
    f = env.follower()
    head, data = snapshot_save(f.addr)
    assert head["error"]["code"] == "not_leader"
    assert head["error"]["leader_addr"] == lead.addr
    assert data == b""
    head, data = snapshot_save(f.addr, stale=True)
    assert head["error"] is None
    assert data.startswith(b"RCTLSNAP")
    head, data = snapshot_save(lead.addr)
    assert head["error"] is None
    assert is_int(head["index"])
    assert head["index"] > 0
    r = env.call("Operator.SnapshotInspect", {"data": data})
    assert set(r) >= {"tokens", "retired", "acl_bootstrapped"}  # FINDINGS D7
    assert isinstance(r["acl_bootstrapped"], bool)
    documented = {
        "version",
        "index",
        "tasks",
        "tasks_by_status",
        "nodes",
        "servers",
        "size",
        "sha256",
    }
    assert documented <= set(r)
    assert r["index"] == head["index"]
    assert r["size"] == len(data)
    assert set(r["tasks_by_status"]) == TASK_STATUSES
    assert r["tasks"] == sum(r["tasks_by_status"].values())
    counts = env.call("Task.List", {"limit": 1})["counts"]
    assert r["tasks"] <= sum(counts.values()) + 5
    assert is_int(r["nodes"])
    assert r["servers"] >= 3
    assert is_int(r["version"])
    assert re.fullmatch(r"[0-9a-f]{64}", r["sha256"])
    # FINDINGS D7: sha256 is the trailer, the hash of all but the last 32 bytes
    assert r["sha256"] == hashlib.sha256(data[:-32]).hexdigest() == data[-32:].hex()
    for bad in (b"", b"junk", data[:-1], data[:-1] + bytes([data[-1] ^ 1])):
        expect_error(
            "invalid_argument",
            partial(env.call, "Operator.SnapshotInspect", {"data": bad}),
        )


def test_arguments_over_8_mib_are_refused(env: Env) -> None:
    """Undocumented before (FINDINGS D9): a request's args over 8 MiB are
    refused with invalid_argument, whatever the method; nothing is written."""
    big = "v" * 65536
    tasks = [
        {"id": f"huge-{i}", "type": "sleep", "cloud": PARKED, "payload": {"k": big}}
        for i in range(130)
    ]
    e = expect_error(
        "invalid_argument", lambda: env.call("Task.AddBatch", {"tasks": tasks})
    )
    assert "8388608" in e.message
    expect_error("not_found", lambda: env.call("Task.Get", {"id": "huge-0"}))
    # just under: accepted
    r = env.call("Task.AddBatch", {"tasks": tasks[:120]})
    assert len(r["tasks"]) == 120
    retire_all(env, "huge-")


def retire_all(env: Env, prefix: str) -> None:
    """Cancels the tasks whose id starts with prefix and retires every
    finished task (keeps later snapshots small)."""
    ids = [
        t["id"] for t in env.client.walk_tasks(page=200) if t["id"].startswith(prefix)
    ]
    env.client.conn(env.leader().addr).pipeline(
        [("Task.Cancel", {"id": i}) for i in ids], wait=60
    )
    env.call("Task.GC", {"older_than_ms": 1})


def test_snapshot_inspect_accepts_a_snapshot_over_8_mib(env: Env) -> None:
    big = "w" * 65536
    try:
        inspect_big_snapshot(env, big)
    finally:
        retire_all(env, "bulk-")


def inspect_big_snapshot(env: Env, big: str) -> None:
    for part in range(2):
        tasks = [
            {
                "id": f"bulk-{part}-{i}",
                "type": "sleep",
                "cloud": PARKED,
                "payload": {"k": big},
            }
            for i in range(80)
        ]
        env.call("Task.AddBatch", {"tasks": tasks})
    head, data = snapshot_save(env.leader().addr)
    assert head["error"] is None
    assert 8 * 1024 * 1024 < len(data) < MAX_FRAME - 1024
    r = env.call("Operator.SnapshotInspect", {"data": data})
    assert r["size"] == len(data)


# --------------------------------------------------------------------------
# ACL in --insecure mode (everyone may call everything)
# --------------------------------------------------------------------------


def test_acl_methods_insecure(env: Env) -> None:
    secret = BOOT_SECRET
    lead = env.leader()
    # a table never written has index 0; min_index 0 does not block, 1 does
    # and the first write wakes it (FINDINGS D10)
    lc = Connection(lead.addr)
    try:
        assert lc.call("ACL.TokenList", None)["index"] == 0
        t0 = time.monotonic()
        lc.call("ACL.TokenList", {"min_index": 0, "max_wait_ms": 20000})
        assert time.monotonic() - t0 < 5
        waiting = lc.send("ACL.TokenList", {"min_index": 1, "max_wait_ms": 20000})
        time.sleep(0.1)
        assert not waiting.done()
        expect_error(
            "invalid_argument", lambda: env.call("ACL.Bootstrap", {"secret": "short"})
        )
        b = env.call("ACL.Bootstrap", {"secret": secret})
        woke = waiting.result(20)
        assert woke["index"] >= b["index"]
    finally:
        lc.close()
    assert set(b) == {"token", "secret", "index"}
    tok = b["token"]
    assert set(tok) == {
        "accessor_id",
        "role",
        "description",
        "create_time",
        "create_index",
    }
    assert tok["role"] == "management"
    assert b["secret"] == secret
    assert tok["create_index"] == b["index"]
    assert abs(tok["create_time"] - time.time_ns()) < 3600 * NS_PER_S
    # idempotent with the same secret; otherwise conflict
    b2 = env.call("ACL.Bootstrap", {"secret": secret})
    assert b2["token"] == tok
    expect_error(
        "conflict",
        lambda: env.call("ACL.Bootstrap", {"secret": "another-secret-000000"}),
    )
    expect_error("conflict", lambda: env.call("ACL.Bootstrap", {}))

    c = env.call("ACL.TokenCreate", {"role": "reader", "description": "dash"})
    assert set(c) == {"token", "secret", "index"}
    assert c["token"]["role"] == "reader"
    assert len(c["secret"]) >= 16
    fixed = {
        "role": "operator",
        "description": "ci",
        "secret": "ci-secret-0123456789",
        "accessor_id": "a-ci",
    }
    c2 = env.call("ACL.TokenCreate", fixed)
    assert c2["token"]["accessor_id"] == "a-ci"
    assert env.call("ACL.TokenCreate", fixed)["token"] == c2["token"]
    expect_error(
        "conflict", lambda: env.call("ACL.TokenCreate", {**fixed, "role": "reader"})
    )
    expect_error(
        "conflict",
        lambda: env.call("ACL.TokenCreate", {**fixed, "accessor_id": "a-other"}),
    )
    expect_error(
        "invalid_argument", lambda: env.call("ACL.TokenCreate", {"role": "root"})
    )

    lead = env.leader()
    lst = env.call("ACL.TokenList", None, addr=lead.addr)
    assert "tokens" in lst
    assert is_int(lst["index"])
    ts = {t["accessor_id"]: t for t in lst["tokens"]}
    assert {tok["accessor_id"], c["token"]["accessor_id"], "a-ci"} <= set(ts)
    for t in ts.values():
        assert set(t) == {
            "accessor_id",
            "role",
            "description",
            "create_time",
            "create_index",
        }
    assert lst["index"] >= c2["index"]

    rv = env.call("ACL.TokenRevoke", {"accessor_id": "a-ci"})
    assert set(rv) == {"index"}
    assert "a-ci" not in {
        t["accessor_id"]
        for t in env.call("ACL.TokenList", None, addr=lead.addr)["tokens"]
    }
    expect_error(
        "not_found", lambda: env.call("ACL.TokenRevoke", {"accessor_id": "a-ci"})
    )
    # on --insecure any token, even a made-up one, is ignored
    assert env.call("Status.Get", None)["id"]
    with Connection(lead.addr, token="made-up-token") as conn:
        assert conn.call("Task.List", {"limit": 1})["index"] > 0


def test_acl_token_list_index_through_follower(env: Env) -> None:
    env.call("ACL.Bootstrap", {"secret": BOOT_SECRET})  # idempotent
    lead = env.leader()
    f = env.follower()
    want = env.call("ACL.TokenList", None, addr=lead.addr)["index"]
    assert want > 0
    got = env.call("ACL.TokenList", None, addr=f.addr, retry=False)
    assert got["index"] == want


# --------------------------------------------------------------------------
# failover: kill -9 the leader while writing
# --------------------------------------------------------------------------


def known_leader(get: Callable[[], Result]) -> bool:
    return get()["known_leader"] is True


def test_leader_killed_mid_run(env: Env) -> None:
    lead = env.leader()
    if lead.id == "s1":  # s1 holds the connection-limit probes: keep it alive
        env.call("Operator.TransferLeader", {"id": "s2"})
        lead = env.leader()
        assert lead.id == "s2"
    acked: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()
    retries: list[int] = []

    def writer() -> None:
        wc = Client(env.cluster.addrs)
        try:
            i = 0
            while not stop.is_set() and i < 2000:
                tid = f"fo-{i:04d}"
                try:
                    wc.call(
                        "Task.Add",
                        {
                            "id": tid,
                            "type": "sleep",
                            "cloud": PARKED,
                            "payload": {"n": str(i)},
                        },
                        deadline=45,
                    )
                except (RpcError, OSError, ProtocolError, TimeoutError) as e:
                    errors.append(e)
                    return
                acked.append(tid)
                retries.append(wc.last_stats.attempts - 1)
                i += 1
        finally:
            wc.close()

    th = threading.Thread(target=writer, daemon=True)
    th.start()
    wait_for(lambda: len(acked) >= 20, 30, "writes before the kill")
    before = len(acked)
    env.cluster.kill9(lead.id)
    killed_at = time.monotonic()
    wait_for(lambda: len(acked) >= before + 30, 45, "writes after the kill")
    stop.set()
    th.join(60)
    assert not errors, errors
    assert sum(retries) >= 1  # the client did have to retry
    new = env.leader()
    assert new.id != lead.id
    st = env.client.status(new.addr)
    assert st["leader_id"] == new.id
    # nothing acknowledged is lost; every acknowledged task is whole
    got = {
        t["id"]: t
        for t in env.client.walk_tasks(page=500, type="sleep", status="pending")
        if t["id"].startswith("fo-")
    }
    assert set(acked) <= set(got)
    for tid in acked:
        assert got[tid]["payload"] == {"n": str(int(tid[3:]))}
    # ids are unique and in order of acknowledgement
    order = sorted(acked, key=lambda i: (got[i]["create_index"], i))
    assert order == acked
    # stale reads on the survivors, heartbeats find the new leader
    for s in env.cluster.live():
        stale_get = partial(
            env.call,
            "Task.Get",
            {"id": acked[-1], "stale": True},
            addr=s.addr,
            retry=False,
        )
        wait_for(partial(known_leader, stale_get), 10, f"{s.id} applies {acked[-1]}")
    env.call("Node.Register", {"id": "after-failover", "capacity": 1, "cloud": PARKED})
    hb = env.call("Node.Heartbeat", {"node_id": "after-failover"})
    assert hb["leader_id"] == new.id
    assert time.monotonic() - killed_at < 60
    members = {m["id"]: m for m in env.call("Status.Members", None)["members"]}
    assert members[lead.id]["state"] in {"unreachable", "unknown"}
    assert members[new.id]["state"] == "leader"


def test_connection_limits(env: Env) -> None:
    """First byte within 10 s; a started frame within 20 s (rpc.md limits).
    Both sockets were opened when the cluster started."""
    assert env.cluster.servers["s1"] in env.cluster.live()
    for sock, limit in ((env.silent_sock, 10), (env.partial_sock, 20)):
        remaining = env.opened_at + limit + 15 - time.monotonic()
        sock.settimeout(max(remaining, 1))
        try:
            data = sock.recv(100)
        except ConnectionResetError:
            data = b""
        closed_after = time.monotonic() - env.opened_at
        assert data == b"", data
        assert closed_after >= limit - 1
        sock.close()


# --------------------------------------------------------------------------
# mutual TLS (docs/security.md) on a separate one-server cluster
# --------------------------------------------------------------------------


def rctl(*args: str) -> str:
    return subprocess.run(
        [str(RCTL), *args], check=True, capture_output=True, text=True, timeout=60
    ).stdout


@pytest.fixture(scope="module")
def tls_env() -> Iterator[tuple[Cluster, Path]]:
    root = Path(tempfile.mkdtemp(prefix="rctl-docclient-tls-"))
    cluster = make_cluster(root, 1)
    ca, certs = root / "ca", root / "certs"
    rctl("tls", "ca", "create", "--dir", str(ca))
    rctl(
        "tls",
        "cert",
        "create",
        "--ca-dir",
        str(ca),
        "--role",
        "server",
        "--name",
        "s1",
        "--host",
        "127.0.0.1",
        "--out",
        str(certs),
    )
    rctl(
        "tls",
        "cert",
        "create",
        "--ca-dir",
        str(ca),
        "--role",
        "operator",
        "--name",
        "alice",
        "--out",
        str(certs),
    )
    rctl(
        "tls",
        "cert",
        "create",
        "--ca-dir",
        str(ca),
        "--role",
        "agent",
        "--name",
        "w-7",
        "--out",
        str(certs),
    )
    tls = [
        "--tls-ca",
        str(ca / "ca.crt"),
        "--tls-cert",
        str(certs / "s1.crt"),
        "--tls-key",
        str(certs / "s1.key"),
    ]
    cluster.start({"s1": tls})
    try:
        yield cluster, root
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def tls_for(root: Path, name: str) -> TLSConfig:
    return TLSConfig(
        str(root / "ca" / "ca.crt"),
        str(root / "certs" / f"{name}.crt"),
        str(root / "certs" / f"{name}.key"),
    )


def test_mutual_tls_and_authorization(tls_env: tuple[Cluster, Path]) -> None:
    cluster, root = tls_env
    addr = cluster.addrs[0]
    op = Client([addr], tls=tls_for(root, "alice"))
    try:
        # Status.Get is open to agent certificates (and reader tokens)
        probe = Client([addr], tls=tls_for(root, "w-7"))
        try:
            wait_for(
                lambda: probe.status(addr)["state"] == "leader", 30, "TLS server leads"
            )
        finally:
            probe.close()
        # the server's certificate: DNS SAN server.rctl, URI SAN of server s1
        with open_socket(
            addr, PROTO_RPC, tls_for(root, "alice"), expect_server_id="s1"
        ) as s:
            assert isinstance(s, ssl.SSLSocket)
            assert server_uri_san(s) == "spiffe://rctl/server/s1"
            assert s.version() == "TLSv1.3"
        # plaintext RPC to a TLS server: one permission_denied, then closed
        c = Connection(addr)
        try:
            e = expect_error("permission_denied", lambda: c.call("Status.Get", None))
            assert "TLS" in e.message
            assert c.wait_closed(10)
        finally:
            c.close()
        # an operator certificate without a token: reads and writes refused
        expect_error("permission_denied", lambda: op.call("Task.List", {"limit": 1}))
        expect_error(
            "permission_denied",
            lambda: op.call("Task.Add", {"id": "x", "type": "sleep"}),
        )
        expect_error("permission_denied", lambda: op.call("Status.Get", None))
        b = op.call("ACL.Bootstrap", {"secret": "mgmt-secret-0123456789"})
        mgmt = Client([addr], tls=tls_for(root, "alice"), token=b["secret"])
        reader = Client(
            [addr],
            tls=tls_for(root, "alice"),
            token=mgmt.call("ACL.TokenCreate", {"role": "reader"})["secret"],
        )
        operator = Client(
            [addr],
            tls=tls_for(root, "alice"),
            token=mgmt.call("ACL.TokenCreate", {"role": "operator"})["secret"],
        )
        agent = Client([addr], tls=tls_for(root, "w-7"))
        try:
            assert reader.call("Task.List", {"limit": 1})["index"] >= 0
            assert reader.call("Operator.RaftPeers", None)["peers"][0]["id"] == "s1"
            e = expect_error(
                "permission_denied",
                lambda: reader.call("Task.Add", {"id": "r-1", "type": "sleep"}),
            )
            assert e.message
            t = operator.call(
                "Task.Add", {"id": "op-1", "type": "sleep", "cloud": PARKED}
            )["task"]
            assert t["id"] == "op-1"
            expect_error(
                "permission_denied", lambda: operator.call("ACL.TokenList", None)
            )
            expect_error(
                "permission_denied",
                lambda: operator.call("Operator.TransferLeader", {"id": ""}),
            )
            assert len(mgmt.call("ACL.TokenList", None)["tokens"]) == 3
            # an agent acts for its own node only
            r = agent.call(
                "Node.Register", {"id": "w-7", "capacity": 1, "cloud": "lab"}
            )
            assert r["node"]["id"] == "w-7"
            expect_error(
                "permission_denied",
                lambda: agent.call("Node.Register", {"id": "w-8", "capacity": 1}),
            )
            expect_error(
                "permission_denied", lambda: agent.call("Task.List", {"limit": 1})
            )
            assert agent.call("Status.Get", None)["id"] == "s1"
            # a refused call changes nothing
            expect_error("not_found", lambda: mgmt.call("Task.Get", {"id": "r-1"}))
            # snapshot streams need management
            head, _ = snapshot_save(
                addr, token=reader.token, tls=tls_for(root, "alice")
            )
            assert head["error"]["code"] == "permission_denied"
            head, data = snapshot_save(
                addr, token=mgmt.token, tls=tls_for(root, "alice")
            )
            assert head["error"] is None
            assert data.startswith(b"RCTLSNAP")
        finally:
            for cl in (mgmt, reader, operator, agent):
                cl.close()
    finally:
        op.close()
