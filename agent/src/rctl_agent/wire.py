"""The rctl RPC wire protocol (docs/rpc.md, "Transport" to "Errors").

A client opens a TCP connection, with mutual TLS starts a TLS handshake at
once (see :mod:`rctl_agent.tls`), writes the connection byte ``0x02`` (inside
TLS when there is TLS) and then exchanges frames: a 4-byte big-endian body
length followed by one msgpack value.  Requests are ``{seq, method, args,
timeout_ms}`` maps; responses are ``{seq, error, result}`` maps that may come
back in any order and are matched by ``seq``.

:class:`Connection` is one such pipelined connection, safe to share between
threads.  It never retries: every failure surfaces as :class:`RpcError` (the
server answered with an error map) or :class:`TransportError` (no answer).
"""

from __future__ import annotations

import itertools
import logging
import socket
import ssl
import struct
import threading
import time
from concurrent.futures import Future
from typing import Any, Protocol

import msgpack  # type: ignore[import-untyped]  # ships no type information

from .tls import SERVER_NAME, ClientTLS

log = logging.getLogger(__name__)

CONN_RPC = 0x02
"""First byte of an RPC connection."""

MAX_FRAME = 16 * 1024 * 1024
"""Largest frame body either side accepts (16 MiB)."""

DEFAULT_GRACE = 1.0
"""Seconds a client waits past ``timeout_ms`` for the server's own
``deadline_exceeded`` answer before it gives up on the connection."""

_HEADER = struct.Struct(">I")


class RpcError(Exception):
    """The server answered a call with an error map.

    ``code`` is stable and meant for matching (``not_leader``, ``not_found``,
    ``invalid_argument``, ``conflict``, ``unavailable``, ``deadline_exceeded``,
    ``permission_denied``, ``internal``); ``message`` is one human sentence;
    ``leader_id`` and ``leader_addr`` come with ``not_leader`` when known.
    """

    def __init__(
        self, code: str, message: str = "", leader_id: str = "", leader_addr: str = ""
    ) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.leader_id = leader_id
        self.leader_addr = leader_addr

    @classmethod
    def from_wire(cls, err: Any) -> RpcError:
        """Build an error from a response's ``error`` value (tolerates junk)."""
        if not isinstance(err, dict):
            return cls("internal", f"malformed error value {err!r}")

        def text(key: str) -> str:
            value = err.get(key)
            return value if isinstance(value, str) else ""

        return cls(
            text("code") or "internal", text("message"), text("leader_id"), text("leader_addr")
        )


class TransportError(Exception):
    """A call got no answer: connect failed, the connection broke, or it timed out.

    ``maybe_sent`` is False only when the request certainly never left this
    process (so even a non-idempotent call may be retried).  ``reached`` is
    True when opening a connection failed after the TCP connect succeeded
    (the TLS handshake, a refused certificate): the server spent work on it.
    """

    def __init__(self, message: str, *, maybe_sent: bool, reached: bool = False) -> None:
        super().__init__(message)
        self.maybe_sent = maybe_sent
        self.reached = reached


class CallTimeout(TransportError):
    """No response arrived within the call's timeout plus the grace period."""


class CallAbandoned(TransportError):
    """The caller gave up waiting (:meth:`Connection.abandon`); the
    connection stays open and a late answer is dropped."""


def parse_address(addr: str) -> tuple[str, int]:
    """Split ``host:port`` (or ``[v6]:port``) and check the port; raise ValueError."""
    host, sep, port_text = addr.strip().rpartition(":")
    if not sep or not host:
        raise ValueError(f"address {addr!r} is not host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"address {addr!r} has a non-numeric port") from None
    if not 0 < port < 65536:
        raise ValueError(f"address {addr!r} has a port outside 1-65535")
    return host, port


def encode_frame(value: Any) -> bytes:
    """Encode one frame (length header + msgpack body)."""
    body: bytes = msgpack.packb(value, use_bin_type=True)
    if len(body) > MAX_FRAME:
        raise ValueError(f"frame of {len(body)} bytes exceeds the {MAX_FRAME}-byte limit")
    return _HEADER.pack(len(body)) + body


def decode_body(body: bytes) -> Any:
    """Decode one frame body (str as str, bin as bytes, string map keys)."""
    return msgpack.unpackb(body, raw=False, strict_map_key=False)


class Readable(Protocol):
    """What frames are read from: a socket or a :class:`TLSStream`."""

    def recv(self, bufsize: int, /) -> bytes:
        """Up to ``bufsize`` bytes; b"" at end of stream; TimeoutError when idle."""
        ...


def read_exact(sock: Readable, n: int, stop: threading.Event | None = None) -> bytes:
    """Read exactly ``n`` bytes; raise EOFError at end of stream.

    Socket timeouts are tolerated (the read goes on) unless ``stop`` is set.
    """
    buf = bytearray()
    while len(buf) < n:
        try:
            chunk = sock.recv(n - len(buf))
        except TimeoutError:
            if stop is not None and stop.is_set():
                raise EOFError("connection closed locally") from None
            continue
        if not chunk:
            raise EOFError("connection closed by peer")
        buf += chunk
    return bytes(buf)


def read_frame(sock: Readable, stop: threading.Event | None = None) -> Any:
    """Read and decode one frame; raise EOFError or ValueError (oversized frame)."""
    (length,) = _HEADER.unpack(read_exact(sock, _HEADER.size, stop))
    if length > MAX_FRAME:
        raise ValueError(f"peer announced a {length}-byte frame (limit {MAX_FRAME})")
    return decode_body(read_exact(sock, length, stop))


class TLSStream:
    """A TLS client session over a connected socket, safe for one reader
    thread and one writer thread at a time.

    ``ssl.SSLSocket`` must not be read in one thread while written in another
    (OpenSSL's SSL objects are not thread-safe, and CPython 3.11 adds no lock),
    so the session is an ``ssl.SSLObject`` over memory buffers: every call into
    it holds ``_lock``, and the socket I/O happens outside that lock.
    Encrypted bytes are sent under ``_send_lock``, taken before ``_lock``, so
    records reach the socket in the order the session produced them.

    The handshake runs in the constructor (within ``timeout`` seconds); errors
    are ``OSError`` (``ssl.SSLError`` included) or ``TimeoutError``.
    """

    def __init__(self, sock: socket.socket, tls: ClientTLS, timeout: float) -> None:
        self._sock = sock
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._obj = tls.context.wrap_bio(self._in, self._out, server_hostname=SERVER_NAME)
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self._lock:
                    self._obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._send_pending()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("TLS handshake timed out") from None
                sock.settimeout(left)
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError(
                        "the server closed the connection during the TLS handshake"
                    ) from None
                with self._lock:
                    self._in.write(data)
        self._send_pending()

    def peercert(self) -> dict[str, Any] | None:
        """The server's verified certificate, as ``ssl`` decodes it."""
        with self._lock:
            return self._obj.getpeercert()

    def alert(self) -> ssl.SSLError | None:
        """After the connection broke: the TLS alert the server sent, if any."""
        try:
            self._sock.settimeout(0.2)
            self.recv(1)
        except ssl.SSLError as e:
            return e
        except OSError:
            pass
        return None

    def _send_pending(self) -> None:
        with self._send_lock:
            with self._lock:
                data = self._out.read()
            if data:
                self._sock.sendall(data)

    def sendall(self, data: bytes) -> None:
        """Encrypt and send all of ``data``."""
        with self._send_lock:
            with self._lock:
                view = memoryview(data)
                while view:
                    view = view[self._obj.write(view) :]
                out = self._out.read()
            self._sock.sendall(out)

    def recv(self, bufsize: int, /) -> bytes:
        """Up to ``bufsize`` decrypted bytes; b"" at the end of the stream."""
        while True:
            with self._lock:
                try:
                    return self._obj.read(bufsize)
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLZeroReturnError:  # close_notify
                    return b""
                reply = self._out.pending > 0  # e.g. a KeyUpdate answer
            if reply:
                self._send_pending()
            data = self._sock.recv(65536)  # TimeoutError when idle
            if not data:
                return b""
            with self._lock:
                self._in.write(data)


class _PlainStream:
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def sendall(self, data: bytes) -> None:
        self._sock.sendall(data)

    def recv(self, bufsize: int, /) -> bytes:
        return self._sock.recv(bufsize)


class Connection:
    """One pipelined RPC connection to one server.

    Opening it connects (with ``tls``: completes the TLS handshake and checks
    that the peer holds a server certificate), writes ``0x02`` and starts a reader thread that hands
    each response to the call waiting for its ``seq``.  Any number of threads
    may :meth:`call` at once.  The connection closes itself on any transport
    problem (and on a call timeout, since a server that does not answer past
    its own deadline is presumed gone); every pending call then fails with
    :class:`TransportError`, and a closed connection is never reused.

    :param addr: ``host:port`` of the server.
    :param connect_timeout: seconds allowed for the TCP connect.
    :param io_timeout: seconds a blocked send may take before the connection
        is declared broken.
    :param tls: mutual TLS settings; None speaks plaintext.
    """

    def __init__(
        self,
        addr: str,
        *,
        connect_timeout: float = 3.0,
        io_timeout: float = 5.0,
        tls: ClientTLS | None = None,
    ) -> None:
        self.addr = addr
        self.server_id = ""  # from the server's certificate, with TLS
        host, port = parse_address(addr)
        try:
            sock = socket.create_connection((host, port), timeout=connect_timeout)
        except OSError as e:
            raise TransportError(f"cannot connect to {addr}: {e}", maybe_sent=False) from e
        stream: TLSStream | _PlainStream | None = None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls is None:
                stream = _PlainStream(sock)
            else:
                stream = TLSStream(sock, tls, connect_timeout)
                try:
                    self.server_id = tls.check_server(stream.peercert())
                except ValueError as e:
                    raise TransportError(
                        f"refusing {addr}: {e}; only rctl servers may answer agents",
                        maybe_sent=False,
                        reached=True,
                    ) from None
            sock.settimeout(io_timeout)
            stream.sendall(bytes([CONN_RPC]))
        except OSError as e:
            err: OSError = e
            if isinstance(stream, TLSStream) and not isinstance(e, ssl.SSLError):
                # In TLS 1.3 the server judges our certificate after our side of
                # the handshake is done: its refusal is an alert, then a reset.
                err = stream.alert() or e
            sock.close()
            why = f"TLS handshake with {addr} failed" if isinstance(err, ssl.SSLError) else ""
            raise TransportError(
                f"{why or f'cannot connect to {addr}'}: {err}", maybe_sent=False, reached=True
            ) from e
        except TransportError:
            sock.close()
            raise
        self._sock = sock
        self._stream = stream
        self._closed = threading.Event()
        self._why = ""  # why it closed (a TLS alert from the server, say)
        self._lock = threading.RLock()  # guards _pending and writes
        self._pending: dict[int, tuple[Future[dict[str, Any]], str]] = {}  # seq -> (answer, method)
        self._seq = itertools.count(1)
        self._reader = threading.Thread(
            target=self._read_loop, name=f"rctl-conn-{addr}", daemon=True
        )
        self._reader.start()

    @property
    def closed(self) -> bool:
        """True once the connection is unusable."""
        return self._closed.is_set()

    def call(
        self,
        method: str,
        args: dict[str, Any] | None,
        *,
        timeout: float,
        grace: float = DEFAULT_GRACE,
    ) -> Any:
        """Send one request and wait for its response; return the ``result``.

        :param method: e.g. ``"Node.Heartbeat"``.
        :param args: the ``args`` map.
        :param timeout: seconds; sent as ``timeout_ms`` and waited for, plus ``grace``.
        :raises RpcError: the server answered with an error.
        :raises TransportError: no answer (the request may still take effect
            if ``maybe_sent`` is true: a write may have committed).
        """
        fut: Future[dict[str, Any]] = Future()
        with self._lock:
            if self.closed:
                raise TransportError(
                    f"connection to {self.addr} is closed ({self._why})", maybe_sent=False
                )
            seq = next(self._seq)
            self._pending[seq] = (fut, method)
            request = {
                "seq": seq,
                "method": method,
                "args": args,
                "timeout_ms": max(1, int(timeout * 1000)),
            }
            send_error: OSError | None = None
            try:
                self._stream.sendall(encode_frame(request))
            except OSError as e:
                self._pending.pop(seq, None)
                send_error = e
        if send_error is not None:
            if isinstance(self._stream, TLSStream):
                # A server that refused our certificate sent an alert before
                # closing: give the reader a moment to read it, it says why.
                self._closed.wait(0.5)
            earlier = self._why
            self._shutdown(f"send failed: {send_error}")
            raise TransportError(
                f"{method} to {self.addr}: send failed: {earlier or send_error}", maybe_sent=True
            ) from send_error
        try:
            response = fut.result(timeout + grace)
        except TimeoutError:
            with self._lock:
                self._pending.pop(seq, None)
            self._shutdown("call timed out")
            raise CallTimeout(
                f"{method} to {self.addr}: no answer within {timeout + grace:.1f} s",
                maybe_sent=True,
            ) from None
        except CallAbandoned:
            raise
        except TransportError as e:
            raise TransportError(f"{method} to {self.addr}: {e}", maybe_sent=True) from None
        if response.get("error") is not None:
            raise RpcError.from_wire(response["error"])
        return response.get("result")

    def abandon(self, method: str) -> int:
        """Fail the calls of ``method`` waiting here now with
        :class:`CallAbandoned`, keeping the connection open (an answer that
        still comes is dropped); return how many there were."""
        with self._lock:
            seqs = [seq for seq, (_, m) in self._pending.items() if m == method]
            futs = [self._pending.pop(seq)[0] for seq in seqs]
        for fut in futs:
            fut.set_exception(CallAbandoned(f"{method} to {self.addr}: abandoned", maybe_sent=True))
        return len(futs)

    def close(self) -> None:
        """Close the connection; calls in flight fail with TransportError."""
        self._shutdown("closed locally")

    def _shutdown(self, why: str) -> None:
        with self._lock:
            if self._closed.is_set():
                return
            self._closed.set()
            self._why = why
            pending, self._pending = self._pending, {}
        log.debug("connection to %s closed: %s", self.addr, why)
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        for fut, _ in pending.values():
            fut.set_exception(TransportError(f"connection lost ({why})", maybe_sent=True))

    def _read_loop(self) -> None:
        why = "reader stopped"
        try:
            while not self._closed.is_set():
                frame = read_frame(self._stream, self._closed)
                seq = frame.get("seq") if isinstance(frame, dict) else None
                if not isinstance(seq, int):
                    why = f"malformed response {frame!r:.80}"
                    break
                with self._lock:
                    entry = self._pending.pop(seq, None)
                if entry is not None:  # None: the call gave up already
                    entry[0].set_result(frame)
        except (OSError, EOFError, ValueError) as e:
            why = str(e) or type(e).__name__
        except Exception as e:  # a decoding bug must not kill calls silently
            why = f"unexpected {type(e).__name__}: {e}"
        self._shutdown(why)
