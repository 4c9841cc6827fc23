"""A client for rctl's RPC protocol, written from docs/rpc.md alone.

Nothing here was taken from rctl's sources; where the document left a
question open, the answer was found by experiment and is recorded in
FINDINGS.md next to this file.

Layers:

* :class:`Connection` -- one TCP (optionally mutual-TLS) connection: the
  protocol selection byte ``0x02``, length-prefixed msgpack frames, requests
  with sequence numbers, pipelining (responses matched by ``seq``).
* :class:`Client` -- a list of servers; follows ``not_leader`` to
  ``leader_addr``, retries ``unavailable`` with backoff (same call, same
  task ids), retries ``deadline_exceeded`` and lost connections only for
  idempotent calls, as rpc.md's error table advises.
* :func:`snapshot_save` -- a ``0x03`` snapshot stream.
"""

from __future__ import annotations

import itertools
import random
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Self, cast

import msgpack  # type: ignore[import-untyped]

# Protocol selection bytes (rpc.md, "Transport").
PROTO_RAFT: Final = 0x01
PROTO_RPC: Final = 0x02
PROTO_SNAPSHOT: Final = 0x03

MAX_FRAME: Final = 16 * 1024 * 1024  # rpc.md, "Framing"
SERVER_NAME: Final = "server.rctl"  # rpc.md, "Transport" / security.md

# Error codes (rpc.md, "Errors").
NOT_LEADER: Final = "not_leader"
NOT_FOUND: Final = "not_found"
INVALID_ARGUMENT: Final = "invalid_argument"
CONFLICT: Final = "conflict"
UNAVAILABLE: Final = "unavailable"
DEADLINE_EXCEEDED: Final = "deadline_exceeded"
PERMISSION_DENIED: Final = "permission_denied"
INTERNAL: Final = "internal"
CODES: Final = frozenset(
    {
        NOT_LEADER,
        NOT_FOUND,
        INVALID_ARGUMENT,
        CONFLICT,
        UNAVAILABLE,
        DEADLINE_EXCEEDED,
        PERMISSION_DENIED,
        INTERNAL,
    }
)

# Methods that are not safe to resend when their outcome is unknown
# (rpc.md: TransferLeader "Not idempotent"; ACL.Bootstrap / TokenCreate
# without a caller-chosen secret make a new one each time).
_NOT_IDEMPOTENT: Final = frozenset({"Operator.TransferLeader"})

Result = dict[str, Any]


class RpcError(Exception):
    """An ``error`` map from a response (rpc.md, "Errors")."""

    def __init__(
        self,
        code: str,
        message: str,
        leader_id: str = "",
        leader_addr: str = "",
        method: str = "",
    ) -> None:
        super().__init__(
            f"{method}: [{code}] {message}" if method else f"[{code}] {message}"
        )
        self.code = code
        self.message = message
        self.leader_id = leader_id
        self.leader_addr = leader_addr
        self.method = method

    @classmethod
    def from_wire(cls, err: Mapping[str, Any], method: str = "") -> RpcError:
        return cls(
            code=str(err.get("code", "")),
            message=str(err.get("message", "")),
            leader_id=str(err.get("leader_id") or ""),
            leader_addr=str(err.get("leader_addr") or ""),
            method=method,
        )


class ProtocolError(Exception):
    """The peer broke the framing or closed the connection."""


@dataclass(frozen=True)
class TLSConfig:
    """Mutual TLS per docs/security.md: CA, our certificate and key."""

    ca: str
    cert: str
    key: str

    def context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_verify_locations(self.ca)
        ctx.load_cert_chain(self.cert, self.key)
        ctx.check_hostname = True
        ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx


def server_uri_san(sock: ssl.SSLSocket) -> str:
    """The peer certificate's ``spiffe://`` URI SAN ("" if none)."""
    cert = sock.getpeercert()
    if not cert:
        return ""
    for entry in cert.get("subjectAltName", ()):
        kind, value = entry[0], entry[1]
        if kind == "URI" and isinstance(value, str) and value.startswith("spiffe://"):
            return value
    return ""


def encode(value: Any) -> bytes:
    return cast(bytes, msgpack.packb(value, use_bin_type=True))


def decode(body: bytes) -> Any:
    return msgpack.unpackb(body, raw=False, strict_map_key=True)


def frame(value: Any) -> bytes:
    body = encode(value)
    return struct.pack(">I", len(body)) + body


def split_addr(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ProtocolError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def open_socket(
    addr: str,
    proto: int,
    tls: TLSConfig | None = None,
    connect_timeout: float = 3.0,
    expect_server_id: str | None = None,
) -> socket.socket:
    """TCP connect, optional TLS handshake, then the protocol byte."""
    host, port = split_addr(addr)
    raw = socket.create_connection((host, port), timeout=connect_timeout)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock: socket.socket = raw
    try:
        if tls is not None:
            tsock = tls.context().wrap_socket(raw, server_hostname=SERVER_NAME)
            san = server_uri_san(tsock)
            if not san.startswith("spiffe://rctl/server/"):
                raise ssl.SSLError(f"peer is not an rctl server: URI SAN {san!r}")
            if (
                expect_server_id is not None
                and san != f"spiffe://rctl/server/{expect_server_id}"
            ):
                raise ssl.SSLError(f"peer is {san!r}, not server {expect_server_id!r}")
            sock = tsock
        sock.sendall(bytes([proto]))
    except BaseException:
        sock.close()
        raise
    sock.settimeout(None)
    return sock


@dataclass
class Response:
    seq: int
    error: RpcError | None
    result: Any


class Connection:
    """One RPC connection. Thread-safe: several threads may call at once;
    a reader thread dispatches responses by ``seq``."""

    def __init__(
        self,
        addr: str,
        tls: TLSConfig | None = None,
        connect_timeout: float = 3.0,
        token: str = "",
    ) -> None:
        self.addr = addr
        self.token = token
        self._sock = open_socket(addr, PROTO_RPC, tls, connect_timeout)
        self._seq = itertools.count(1)
        self._wlock = threading.Lock()
        self._lock = threading.Lock()
        self._waiting: dict[int, _Slot] = {}
        self._closed: BaseException | None = None
        self._reader = threading.Thread(
            target=self._read_loop, name=f"rpc-{addr}", daemon=True
        )
        self._reader.start()

    # -- wire ------------------------------------------------------------
    def _read_frame(self) -> Any:
        (length,) = struct.unpack(">I", _recv_exact(self._sock, 4))
        if length > MAX_FRAME:
            raise ProtocolError(f"frame of {length} bytes announced")
        return decode(_recv_exact(self._sock, length))

    def _read_loop(self) -> None:
        err: BaseException
        try:
            while True:
                msg = self._read_frame()
                if not isinstance(msg, dict):
                    raise ProtocolError(f"response is not a map: {msg!r}")
                seq = msg.get("seq")
                with self._lock:
                    slot = (
                        self._waiting.pop(seq, None) if isinstance(seq, int) else None
                    )
                if slot is None:
                    continue  # a response we no longer wait for
                slot.put(msg)
        except (OSError, ProtocolError, ValueError, msgpack.UnpackException) as e:
            err = e
        with self._lock:
            self._closed = err
            slots = list(self._waiting.values())
            self._waiting.clear()
        for s in slots:
            s.fail(err)

    def send(
        self,
        method: str,
        args: Mapping[str, Any] | None = None,
        timeout_ms: int | None = None,
        token: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> _Slot:
        """Sends one request; returns a slot to wait on (pipelining)."""
        seq = next(self._seq)
        req: dict[str, Any] = {
            "seq": seq,
            "method": method,
            "args": dict(args) if args is not None else None,
        }
        if timeout_ms is not None:
            req["timeout_ms"] = timeout_ms
        tok = self.token if token is None else token
        if tok:
            req["token"] = tok
        if extra:
            req.update(extra)
        return self.send_raw(req, seq, method)

    def send_raw(self, req: Any, seq: int, method: str = "") -> _Slot:
        """Sends any msgpack value as a request body (for malformed-request tests)."""
        slot = _Slot(seq, method)
        with self._lock:
            if self._closed is not None:
                raise ProtocolError(f"connection to {self.addr} closed: {self._closed}")
            self._waiting[seq] = slot
        data = frame(req)
        try:
            with self._wlock:
                self._sock.sendall(data)
        except OSError:
            with self._lock:
                self._waiting.pop(seq, None)
            raise
        return slot

    def send_bytes(self, data: bytes) -> None:
        with self._wlock:
            self._sock.sendall(data)

    def next_seq(self) -> int:
        return next(self._seq)

    def call(
        self,
        method: str,
        args: Mapping[str, Any] | None = None,
        timeout_ms: int | None = None,
        token: str | None = None,
        wait: float | None = None,
    ) -> Any:
        """One call; raises :class:`RpcError` on an error response."""
        slot = self.send(method, args, timeout_ms, token)
        if wait is None:
            wait = (timeout_ms if timeout_ms else 10_000) / 1000 + 5
        return slot.result(wait)

    def pipeline(
        self, calls: Sequence[tuple[str, Mapping[str, Any] | None]], wait: float = 20.0
    ) -> list[Response]:
        """Sends every call before reading any answer; returns responses in
        request order (they may arrive in any order on the wire)."""
        slots = [self.send(m, a) for m, a in calls]
        return [s.response(wait) for s in slots]

    @property
    def closed(self) -> bool:
        with self._lock:
            return self._closed is not None

    def wait_closed(self, timeout: float) -> bool:
        self._reader.join(timeout)
        return not self._reader.is_alive()

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        self._reader.join(5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Slot:
    def __init__(self, seq: int, method: str) -> None:
        self.seq = seq
        self.method = method
        self._ev = threading.Event()
        self._msg: dict[str, Any] | None = None
        self._err: BaseException | None = None
        self.arrived_at = 0.0

    def put(self, msg: dict[str, Any]) -> None:
        self._msg = msg
        self.arrived_at = time.monotonic()
        self._ev.set()

    def fail(self, err: BaseException) -> None:
        self._err = err
        self._ev.set()

    def done(self) -> bool:
        return self._ev.is_set()

    def raw(self, wait: float) -> dict[str, Any]:
        if not self._ev.wait(wait):
            raise TimeoutError(f"{self.method} seq {self.seq}: no answer in {wait}s")
        if self._err is not None:
            raise ProtocolError(
                f"{self.method}: connection lost: {self._err}"
            ) from self._err
        assert self._msg is not None
        return self._msg

    def response(self, wait: float) -> Response:
        msg = self.raw(wait)
        err = msg.get("error")
        return Response(
            seq=int(msg["seq"]),
            error=RpcError.from_wire(err, self.method) if err else None,
            result=msg.get("result"),
        )

    def result(self, wait: float) -> Any:
        r = self.response(wait)
        if r.error is not None:
            raise r.error
        return r.result


def is_idempotent(method: str, args: Mapping[str, Any] | None) -> bool:
    """Whether resending after an unknown outcome is safe, per rpc.md."""
    a = args or {}
    if method in _NOT_IDEMPOTENT:
        return False
    if method == "Task.Add":
        return bool(a.get("id"))  # "a client that retries must set id"
    if method == "Task.AddBatch":
        tasks = a.get("tasks") or []
        return all(isinstance(t, Mapping) and t.get("id") for t in tasks)
    if method in ("ACL.Bootstrap", "ACL.TokenCreate"):
        return bool(a.get("secret"))
    return True


@dataclass
class RetryStats:
    """What the retry loop did (for tests and logs)."""

    attempts: int = 0
    not_leader: int = 0
    unavailable: int = 0
    conn_errors: int = 0
    deadline: int = 0
    servers: list[str] = field(default_factory=list)


class Client:
    """Talks to a cluster through a list of servers, following rpc.md's
    advice: ``not_leader`` -> the ``leader_addr``; ``unavailable`` -> the
    same or another server with backoff; ``deadline_exceeded`` and lost
    connections -> resend only idempotent calls; every other code is final."""

    def __init__(
        self,
        addrs: Iterable[str],
        tls: TLSConfig | None = None,
        token: str = "",
        connect_timeout: float = 2.0,
    ) -> None:
        self.addrs = list(addrs)
        if not self.addrs:
            raise ValueError("no server addresses")
        self.tls = tls
        self.token = token
        self.connect_timeout = connect_timeout
        self._conns: dict[str, Connection] = {}
        self._lock = threading.Lock()
        self._preferred = 0
        self.last_stats = RetryStats()

    def conn(self, addr: str) -> Connection:
        with self._lock:
            c = self._conns.get(addr)
            if c is not None and not c.closed:
                return c
        c = Connection(addr, self.tls, self.connect_timeout, self.token)
        with self._lock:
            old = self._conns.get(addr)
            self._conns[addr] = c
        if old is not None:
            old.close()
        return c

    def _drop(self, addr: str) -> None:
        with self._lock:
            c = self._conns.pop(addr, None)
        if c is not None:
            c.close()

    def close(self) -> None:
        with self._lock:
            conns = list(self._conns.values())
            self._conns.clear()
        for c in conns:
            c.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(
        self,
        method: str,
        args: Mapping[str, Any] | None = None,
        timeout_ms: int | None = None,
        deadline: float = 30.0,
        addr: str | None = None,
        retry: bool = True,
    ) -> Any:
        """Calls ``method``; with ``addr`` starts at that server."""
        stats = RetryStats()
        self.last_stats = stats
        idem = is_idempotent(method, args)
        end = time.monotonic() + deadline
        order = list(self.addrs)
        if addr is not None:
            target = addr
        else:
            target = order[self._preferred % len(order)]
        backoff = 0.05
        rr = 0
        while True:
            stats.attempts += 1
            stats.servers.append(target)
            wait = (timeout_ms if timeout_ms else 10_000) / 1000 + 5
            try:
                c = self.conn(target)
                res = c.call(
                    method,
                    args,
                    timeout_ms,
                    wait=min(wait, max(0.1, end - time.monotonic()) + 5),
                )
                if target in order:
                    self._preferred = order.index(target)
                return res
            except RpcError as e:
                if not retry:
                    raise
                if e.code == NOT_LEADER:
                    stats.not_leader += 1
                    if e.leader_addr and e.leader_addr != target:
                        target = e.leader_addr
                        continue
                elif e.code == UNAVAILABLE:
                    stats.unavailable += 1
                elif e.code == DEADLINE_EXCEEDED and idem:
                    stats.deadline += 1
                else:
                    raise
                last: BaseException = e
            except (OSError, ProtocolError, TimeoutError) as e:
                # connection refused / reset / closed mid-call: the call's
                # outcome is unknown (rpc.md "Pipelining"): resend only
                # idempotent calls.
                stats.conn_errors += 1
                self._drop(target)
                if not retry or not idem and not isinstance(e, ConnectionRefusedError):
                    raise
                last = e
            if time.monotonic() + backoff > end:
                raise last
            time.sleep(backoff * (0.5 + random.random()))
            backoff = min(backoff * 2, 1.0)
            rr += 1
            target = order[
                (order.index(target) + 1) % len(order)
                if target in order
                else rr % len(order)
            ]

    # -- convenience wrappers for the documented methods ---------------------
    def status(self, addr: str | None = None, **args: Any) -> Result:
        return cast(
            Result, self.call("Status.Get", args, addr=addr, retry=addr is None)
        )

    def leader_addr(self, deadline: float = 20.0) -> str:
        end = time.monotonic() + deadline
        while True:
            for a in self.addrs:
                try:
                    st = self.status(a)
                except (RpcError, OSError, ProtocolError, TimeoutError):
                    continue
                if st.get("state") == "leader":
                    return a
            if time.monotonic() > end:
                raise TimeoutError("no leader")
            time.sleep(0.1)

    def walk_tasks(self, page: int = 1000, **filters: Any) -> Iterator[Result]:
        """Every task matching ``filters``, page by page (rpc.md Task.List)."""
        cursor = ""
        while True:
            r = cast(
                Result,
                self.call("Task.List", {**filters, "limit": page, "cursor": cursor}),
            )
            yield from r["tasks"]
            cursor = r["next_cursor"]
            if cursor == "":
                return


def snapshot_save(
    addr: str,
    stale: bool = False,
    token: str = "",
    tls: TLSConfig | None = None,
    wait: float = 20.0,
) -> tuple[dict[str, Any], bytes]:
    """A ``0x03`` stream with op ``save``: the answer frame and the bytes."""
    sock = open_socket(addr, PROTO_SNAPSHOT, tls)
    try:
        sock.settimeout(wait)
        sock.sendall(frame({"op": "save", "stale": stale, "size": 0, "token": token}))
        (length,) = struct.unpack(">I", _recv_exact(sock, 4))
        head = decode(_recv_exact(sock, length))
        if not isinstance(head, dict):
            raise ProtocolError(f"snapshot answer is not a map: {head!r}")
        data = bytearray()
        if not head.get("error"):
            while True:
                chunk = sock.recv(1 << 16)
                if not chunk:
                    break
                data += chunk
        return head, bytes(data)
    finally:
        sock.close()
