"""A scriptable fake rctl cluster speaking the docs/rpc.md wire protocol.

Each :class:`FakeServer` is a real TCP server on 127.0.0.1 (an ephemeral
port) that reads the 0x02 connection byte and length-prefixed msgpack
frames, and answers every request in its own thread (so responses may come
back out of order, matched by ``seq``).  All servers of a
:class:`FakeCluster` share one manifest of nodes and tasks:

* one server is the leader (switchable with :meth:`FakeCluster.set_leader`);
* writes reaching a follower are "forwarded" (applied to the shared state,
  recorded as handled by the leader) or answered ``unavailable`` without one;
* ``Node.Heartbeat`` at a follower answers ``not_leader`` + ``leader_addr``;
* ``Status.Get`` answers locally, with docs/rpc.md's blocking: with
  ``known_leader`` it is held until the server names a leader with another
  id (or ``max_wait_ms``, or the server dies); :meth:`FakeCluster.set_leader`
  is an election (the term goes up) and wakes such calls at once.  A server
  names the cluster's leader, or the one in its ``believes`` (at
  ``believes_term``: a server that has not heard of the election);
  ``ignores_wait`` makes it answer at once, as a server without
  ``known_leader`` (an older version) would;
* per server: ``close_on_accept`` (close each connection at once, as a
  server refusing the client's certificate does), ``mode`` ("ok",
  "unavailable", "drop": close the connection on each request,
  "blackhole": never answer), ``delay`` seconds before
  answering (the value when the request arrives), ``die_after`` (a set of
  methods: apply it, then crash without answering), :meth:`FakeServer.kill`
  / :meth:`FakeServer.revive`.

What tests can wait on (``FakeCluster.wait_for``; every change below
notifies ``FakeCluster.cond``): ``FakeCluster.calls`` (each call, recorded
when it is handled, i.e. after any ``delay``), ``FakeServer.received`` (the
method of each request, recorded as it arrives, before any ``delay``) and
``FakeCluster.held`` (per server, the ``Status.Get`` calls it holds now:
from then on an election or a kill ends them, they cannot miss it).

Reports are counted only when they change state (``applied``), so a
duplicate report is visible as received twice but applied once.

TLS mode (``FakeCluster(tls=server_context(...))``): every accepted
connection starts with a real TLS handshake that requires a client
certificate from the CA; the 0x02 byte and frames follow inside TLS.  As the
real server does, a client holding an agent certificate
(``spiffe://rctl/agent/<id>``) may act only for that node id
(``permission_denied`` otherwise).  Each call records the identity it came
with, and failed handshakes are kept in ``FakeServer.tls_errors``.  In TLS
mode requests are answered one at a time, in order, on the connection's own
thread (an ``ssl.SSLSocket`` must not be written by one thread while another
reads it), so ``delay``, ``blackhole`` and a held ``Status.Get`` hold up
the whole connection.
"""

from __future__ import annotations

import socket
import ssl
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

HEADER = struct.Struct(">I")
AGENT_URI = "spiffe://rctl/agent/"
STATUS_METHODS = {"Status.Get", "Status.Members"}  # any agent may call them
AGENT_METHODS = {
    "Node.Register",
    "Node.Heartbeat",
    "Node.Deregister",
    "Task.Start",
    "Task.Complete",
    "Task.Fail",
}


def server_context(
    ca: Path, cert: Path, key: Path, *, max_version: ssl.TLSVersion | None = None
) -> ssl.SSLContext:
    """A server-side context that requires and verifies client certificates."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cafile=str(ca))
    ctx.load_cert_chain(str(cert), str(key))
    if max_version is not None:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.maximum_version = max_version
    return ctx


def client_identity(peercert: Any) -> str:
    """ "agent:<id>" for an agent certificate, else the first URI SAN (or "")."""
    uris = [v for k, v in (peercert or {}).get("subjectAltName", ()) if k == "URI"]
    for uri in uris:
        if uri.startswith(AGENT_URI):
            return "agent:" + uri[len(AGENT_URI) :]
    return uris[0] if uris else ""


class FakeError(Exception):
    def __init__(self, code: str, message: str = "", leader_id: str = "", leader_addr: str = ""):
        super().__init__(code)
        self.wire = {
            "code": code,
            "message": message or code,
            "leader_id": leader_id,
            "leader_addr": leader_addr,
        }


@dataclass
class Call:
    server: str  # the server the client talked to
    handled_by: str  # the server whose state change it was (the leader for forwarded writes)
    method: str
    args: dict[str, Any]
    at: float = field(default_factory=time.monotonic)
    identity: str | None = None  # the client certificate's, in TLS mode


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


class FakeServer:
    def __init__(self, cluster: FakeCluster, sid: str) -> None:
        self.cluster = cluster
        self.id = sid
        self.mode = "ok"
        self.delay = 0.0
        self.die_after: set[str] = set()
        self.believes: FakeServer | None = None  # overrides who it names as leader
        self.believes_term: int | None = None  # the term it is at then (default: the cluster's)
        self.ignores_wait = False  # Status.Get answers at once, ignoring known_leader
        self.port = 0
        self.accepts = 0  # TCP connections accepted
        self.close_on_accept = False  # close each connection as soon as it is accepted
        self.received: list[str] = []  # methods of the requests, as they arrive
        self.tls_errors: list[str] = []  # failed TLS handshakes
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.alive = False

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", self.port))
        ls.listen(64)
        self.port = ls.getsockname()[1]
        self._listener = ls
        self.alive = True
        threading.Thread(target=self._accept, args=(ls,), daemon=True).start()

    def kill(self) -> None:
        """Crash: stop listening and drop every connection."""
        with self._lock:
            self.alive = False
            ls, self._listener = self._listener, None
            conns, self._conns = self._conns, set()
        if ls is not None:
            try:
                ls.shutdown(socket.SHUT_RDWR)  # wakes the accept thread: the port is free now
            except OSError:
                pass
            ls.close()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()
        with self.cluster.cond:
            self.cluster.cond.notify_all()  # ends its held Status.Get calls

    def drop_connections(self) -> None:
        """Close every client connection but keep listening (an idle timeout)."""
        with self._lock:
            conns, self._conns = self._conns, set()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    def revive(self) -> None:
        self.start()

    def _accept(self, ls: socket.socket) -> None:
        while True:
            try:
                conn, _ = ls.accept()
            except OSError:
                return
            with self.cluster.cond:
                self.accepts += 1
            with self._lock:
                if not self.alive:
                    conn.close()
                    return
                if self.close_on_accept:
                    conn.close()
                    continue
                self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _handshake(self, conn: socket.socket) -> tuple[socket.socket, str] | None:
        ctx = self.cluster.tls
        assert ctx is not None
        conn.settimeout(5)
        try:
            tconn = ctx.wrap_socket(conn, server_side=True)
        except (OSError, ValueError) as e:
            with self.cluster.cond:
                self.tls_errors.append(str(e))
                self.cluster.cond.notify_all()
            return None
        tconn.settimeout(None)
        with self._lock:
            self._conns.discard(conn)
            self._conns.add(tconn)
        return tconn, client_identity(tconn.getpeercert())

    def _serve(self, conn: socket.socket) -> None:
        wlock = threading.Lock()
        identity: str | None = None
        try:
            if self.cluster.tls is not None:
                done = self._handshake(conn)
                if done is None:
                    return
                conn, identity = done
            if _recv_exact(conn, 1) != b"\x02":
                return
            while True:
                (n,) = HEADER.unpack(_recv_exact(conn, 4))
                if n > 16 * 1024 * 1024:
                    return
                req = msgpack.unpackb(_recv_exact(conn, n), raw=False)
                delay = self.delay  # fixed now: a test may change it once this is received
                with self.cluster.cond:
                    self.received.append(str(req.get("method", "")))
                    self.cluster.cond.notify_all()
                if self.mode == "drop":
                    return
                if identity is not None:  # TLS: one thread per connection
                    self._handle(conn, wlock, req, identity, delay)
                    continue
                threading.Thread(
                    target=self._handle, args=(conn, wlock, req, None, delay), daemon=True
                ).start()
        except (OSError, EOFError, ValueError):
            pass
        finally:
            with self._lock:
                self._conns.discard(conn)
            conn.close()

    def _handle(
        self,
        conn: socket.socket,
        wlock: threading.Lock,
        req: dict[str, Any],
        identity: str | None,
        delay: float,
    ) -> None:
        if delay:
            time.sleep(delay)  # simulated latency, not a wait in a test
        if self.mode == "blackhole" or not self.alive:
            return
        method = req.get("method", "")
        resp: dict[str, Any] = {"seq": req.get("seq"), "error": None, "result": None}
        try:
            if self.mode == "unavailable":
                self.cluster._record(self, self, method, req.get("args") or {}, identity)
                raise FakeError("unavailable", "no quorum")
            resp["result"] = self.cluster._dispatch(self, method, req.get("args") or {}, identity)
        except FakeError as e:
            resp["error"] = e.wire
        if method in self.die_after:
            self.kill()
            return
        body = msgpack.packb(resp, use_bin_type=True)
        try:
            with wlock:
                conn.sendall(HEADER.pack(len(body)) + body)
        except OSError:
            pass


class FakeCluster:
    """Shared manifest + N fake servers; servers[0] leads at first."""

    def __init__(
        self,
        n: int = 3,
        *,
        interval_ms: int = 50,
        ttl_ms: int = 2000,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.tls = tls
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.servers = [FakeServer(self, f"s{i}") for i in range(n)]
        self.leader: FakeServer | None = self.servers[0]
        self.term = 1
        self.interval_ms = interval_ms
        self.ttl_ms = ttl_ms
        self.follow_spread_ms: int | None = None  # sent when set (docs/rpc.md)
        self.index = 1
        self.nodes: dict[str, dict[str, Any]] = {}
        self.tasks: dict[str, dict[str, Any]] = {}
        self.calls: list[Call] = []
        self.held: Counter[str] = Counter()  # server id -> Status.Get calls held there now
        self.applied: Counter[tuple[str, str]] = Counter()
        self.advertise: list[FakeServer] | None = None  # default: every server
        # method -> fn(args) replacing the built-in handler (may raise FakeError)
        self.overrides: dict[str, Any] = {}

    def __enter__(self) -> FakeCluster:
        for s in self.servers:
            s.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for s in self.servers:
            s.kill()

    # ---- scripting ---------------------------------------------------
    def set_leader(self, server: FakeServer | None) -> None:
        """An election: ``server`` leads (None: no leader yet) at a new term."""
        with self.cond:
            if server is not self.leader:
                self.term += 1
            self.leader = server
            self.cond.notify_all()

    def believe(self, server: FakeServer, leader: FakeServer | None, term: int | None) -> None:
        """Make ``server`` name ``leader`` at ``term`` whatever the cluster's
        leader is (``leader`` None: back to the cluster's view)."""
        with self.cond:
            server.believes, server.believes_term = leader, term
            self.cond.notify_all()

    def add_task(
        self,
        tid: str,
        ttype: str = "sleep",
        payload: dict[str, str] | None = None,
        *,
        node: str = "",
    ) -> dict[str, Any]:
        with self.lock:
            self.index += 1
            task = {
                "id": tid,
                "type": ttype,
                "payload": payload or {},
                "cloud": "",
                "max_attempts": 3,
                "status": "assigned" if node else "pending",
                "node_id": node,
                "attempts": 1 if node else 0,
                "result": None,
                "create_index": self.index,
                "modify_index": self.index,
            }
            self.tasks[tid] = task
            return task

    def set_status(self, tid: str, status: str, node: str | None = None) -> None:
        with self.lock:
            self.index += 1
            self.tasks[tid]["status"] = status
            if node is not None:
                self.tasks[tid]["node_id"] = node
            self.tasks[tid]["modify_index"] = self.index

    def calls_of(self, method: str, *, handled_by: str | None = None) -> list[Call]:
        with self.lock:
            return [
                c
                for c in self.calls
                if c.method == method and (handled_by is None or c.handled_by == handled_by)
            ]

    def held_now(self) -> int:
        """How many ``Status.Get`` calls the servers hold now."""
        with self.lock:
            return sum(self.held.values())

    def wait_for(self, pred: Any, timeout: float = 10.0, what: str = "condition") -> None:
        """Poll ``pred`` (under the lock) until true; fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not pred():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
                self.cond.wait(min(left, 0.05))

    # ---- protocol ----------------------------------------------------
    def _record(
        self,
        server: FakeServer,
        by: FakeServer,
        method: str,
        args: dict[str, Any],
        identity: str | None = None,
    ) -> None:
        with self.cond:
            self.calls.append(Call(server.id, by.id, method, args, identity=identity))
            self.cond.notify_all()

    def _servers_list(self) -> list[dict[str, str]]:
        return [{"id": s.id, "address": s.addr} for s in (self.advertise or self.servers)]

    def _leader_fields(self) -> dict[str, Any]:
        ldr = self.leader
        return {
            "leader_id": ldr.id if ldr else "",
            "leader_addr": ldr.addr if ldr else "",
            "servers": self._servers_list(),
        }

    def _authorize(self, identity: str | None, method: str, args: dict[str, Any]) -> None:
        """TLS mode: an agent certificate acts only for its own node id."""
        if identity is None or not identity.startswith("agent:") or method in STATUS_METHODS:
            return
        node = identity[len("agent:") :]
        claimed = args.get("id") if method == "Node.Register" else args.get("node_id")
        if method not in AGENT_METHODS or claimed != node:
            raise FakeError(
                "permission_denied", f"agent certificate for {node} may not call {method}"
            )

    def _dispatch(
        self, server: FakeServer, method: str, args: dict[str, Any], identity: str | None = None
    ) -> Any:
        with self.cond:
            leader = self.leader
            self._authorize(identity, method, args)
            if method == "Status.Get":
                self._record(server, server, method, args, identity)
                return self._status(server, args)
            if method == "Node.Heartbeat":
                self._record(server, server, method, args, identity)
                named = server.believes or leader
                if named is not server:
                    raise FakeError(
                        "not_leader",
                        "not the leader",
                        named.id if named else "",
                        named.addr if named else "",
                    )
                return self._heartbeat(args)
            if leader is None or not leader.alive:
                self._record(server, server, method, args, identity)
                raise FakeError("unavailable", "no leader known")
            self._record(server, leader, method, args, identity)
            if method in self.overrides:
                return self.overrides[method](args)
            handler = {
                "Node.Register": self._register,
                "Node.Deregister": self._deregister,
                "Task.Start": self._start,
                "Task.Complete": lambda a: self._report(a, "complete"),
                "Task.Fail": lambda a: self._report(a, "failed"),
                "Task.Add": self._task_add,
                "Task.Get": self._task_get,
            }.get(method)
            if handler is None:
                raise FakeError("invalid_argument", f"unknown method {method}")
            return handler(args)

    def _named(self, server: FakeServer) -> tuple[FakeServer | None, int]:
        """Who ``server`` names as leader, and at which term."""
        if server.believes is not None:
            return server.believes, server.believes_term or self.term
        return self.leader, self.term

    def _status(self, server: FakeServer, a: dict[str, Any]) -> dict[str, Any]:
        """Status.Get (docs/rpc.md), blocking as documented; the lock is held."""
        known = a.get("known_leader") or ""
        min_index = a.get("min_index") or 0
        wait_ms = a.get("max_wait_ms") or 0
        if not isinstance(wait_ms, int) or wait_ms < 0:
            raise FakeError("invalid_argument", "max_wait_ms must not be negative")
        wait = min(wait_ms or 300_000, 600_000) / 1000
        start = self._named(server)
        deadline = time.monotonic() + wait
        held = False
        try:
            while (known or min_index) and not server.ignores_wait and server.alive:
                named, term = self._named(server)
                if known and named is not None and named.id != known:
                    break
                if min_index and (self.index > min_index or (named, term) != start):
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                if not held:
                    held = True
                    self.held[server.id] += 1
                    self.cond.notify_all()
                self.cond.wait(min(left, 0.5))
        finally:
            if held:
                self.held[server.id] -= 1
                self.cond.notify_all()
        named, term = self._named(server)
        return {
            "id": server.id,
            "address": server.addr,
            "cloud": "",
            "region": "",
            "state": "leader" if named is server else "follower",
            "leader_id": named.id if named else "",
            "leader_addr": named.addr if named else "",
            "term": term,
            "commit_index": self.index,
            "applied_index": self.index,
            "last_index": self.index,
            "last_contact_ms": 0 if named is server else (-1 if named is None else 10),
            "last_leader_change_ms": 0,
            "num_peers": len(self.servers) - 1,
            "version": "fake",
        }

    def _bump(self) -> int:
        self.index += 1
        return self.index

    def _spread_field(self) -> dict[str, Any]:
        if self.follow_spread_ms is None:
            return {}
        return {"follow_spread_ms": self.follow_spread_ms}

    def _register(self, a: dict[str, Any]) -> dict[str, Any]:
        if not a.get("id"):
            raise FakeError("invalid_argument", "id is required")
        node = dict(a, status="healthy", draining=False)
        self.nodes[a["id"]] = node
        return {
            "node": node,
            "index": self._bump(),
            "heartbeat_interval_ms": self.interval_ms,
            "ttl_ms": self.ttl_ms,
            **self._spread_field(),
            **self._leader_fields(),
        }

    def _heartbeat(self, a: dict[str, Any]) -> dict[str, Any]:
        node = self.nodes.get(a.get("node_id", ""))
        if node is None:
            raise FakeError("not_found", "unknown node")
        node["draining"] = bool(a.get("draining"))
        node["running"] = list(a.get("running") or [])
        held = [
            dict(t)
            for t in self.tasks.values()
            if t["node_id"] == node["id"] and t["status"] in ("assigned", "running")
        ]
        return {
            "status": node["status"],
            "heartbeat_interval_ms": self.interval_ms,
            "ttl_ms": self.ttl_ms,
            **self._spread_field(),
            "tasks": held,
            "index": self.index,
            **self._leader_fields(),
        }

    def _deregister(self, a: dict[str, Any]) -> dict[str, Any]:
        nid = a.get("node_id", "")
        if self.nodes.pop(nid, None) is None:
            raise FakeError("not_found", "unknown node")
        for t in self.tasks.values():
            if t["node_id"] == nid and t["status"] in ("assigned", "running"):
                t.update(status="pending", node_id="", modify_index=self._bump())
        return {"index": self._bump()}

    def _task(self, a: dict[str, Any]) -> dict[str, Any]:
        task = self.tasks.get(a.get("task_id", ""))
        if task is None:
            raise FakeError("not_found", "unknown task")
        return task

    def _start(self, a: dict[str, Any]) -> dict[str, Any]:
        t = self._task(a)
        if t["node_id"] != a.get("node_id") or t["status"] not in ("assigned", "running"):
            raise FakeError("conflict", "the node does not hold the task")
        if t["status"] == "assigned":
            t.update(status="running", modify_index=self._bump())
            self.applied[("Task.Start", t["id"])] += 1
        return {"task": dict(t), "index": t["modify_index"]}

    def _report(self, a: dict[str, Any], status: str) -> dict[str, Any]:
        t = self._task(a)
        method = "Task.Complete" if status == "complete" else "Task.Fail"
        same_node = t["node_id"] == a.get("node_id")
        if same_node and t["status"] in ("assigned", "running"):
            t.update(status=status, result=a.get("result"), modify_index=self._bump())
            self.applied[(method, t["id"])] += 1
        elif not (same_node and t["status"] == status):
            raise FakeError("conflict", f"task is {t['status']}")
        return {"task": dict(t), "index": t["modify_index"]}

    def _task_add(self, a: dict[str, Any]) -> dict[str, Any]:
        t = self.add_task(a["id"], a["type"], a.get("payload"))
        return {"task": dict(t), "index": t["modify_index"]}

    def _task_get(self, a: dict[str, Any]) -> dict[str, Any]:
        t = self.tasks.get(a.get("id", ""))
        if t is None:
            raise FakeError("not_found", "unknown task")
        return {"task": dict(t), "index": t["modify_index"]}
