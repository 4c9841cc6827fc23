"""A cluster client that follows the rctl leader.

The client keeps a list of known servers (the seeds plus every address
learned from the ``servers`` list of Register/Heartbeat replies), a guess of
which one leads, and one pipelined :class:`~rctl_agent.wire.Connection` per
server.  :meth:`ClusterClient.call` sends a call to the leader when one is
known (else to the next server in turn) and retries:

* ``not_leader`` with a ``leader_addr``: go there at once (a bounded number
  of redirects per call, so two confused servers cannot ping-pong it);
* ``not_leader`` without an address, ``unavailable``, transport errors and,
  for idempotent calls, ``deadline_exceeded``: forget the leader, move on to
  the next known server, after a backoff delay from :class:`RetryPolicy`;
* every other code is a definitive answer and is raised as
  :class:`~rctl_agent.wire.RpcError`.

Which servers are trusted: with mutual TLS, any address (a seed or one
learned from a reply) is fine, since whoever answers there must present a
server certificate from the cluster CA.  Without TLS nothing proves who
answers, so addresses learned from replies (``servers`` lists,
``leader_addr``) are used only if they are among the configured seeds; the
others are ignored (logged at debug once each).

Backoff is shared by all calls and threads (connection retry is kept apart
from what each call does): it grows with consecutive failures and resets on
the first success, which also wakes threads still waiting it out.  Callers
that simply call again after :class:`ClusterUnavailable` therefore never
hot-loop, and all of them come back as soon as any call gets through.

Connection state, from the point of view of the agent's lease with the
leader (compare kazoo's CONNECTED / SUSPENDED / LOST):

``FOLLOWING``
    The last leader-only call (a heartbeat) succeeded and the leader was
    heard from within ``lost_after`` seconds.  The agent may trust the task
    list of the last heartbeat and start tasks from it.
``SEARCHING``
    The leader stopped answering; the client is trying the other servers.
    The node's lease has not expired yet: the agent keeps running the tasks
    it has and queues its reports, but starts nothing new.
``LOST``
    No contact with the leader for longer than ``lost_after`` (the ``ttl_ms``
    handed out by the leader), or never any.  The agent must assume the
    leader has marked the node unreachable and requeued its tasks: work it
    still runs may be running elsewhere too, and its results may be refused
    with ``conflict``.  The next heartbeat reply says which tasks remain.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .retry import RetryPolicy
from .tls import ClientTLS
from .wire import (
    DEFAULT_GRACE,
    CallTimeout,
    Connection,
    RpcError,
    TransportError,
    parse_address,
)

log = logging.getLogger(__name__)


class ConnState(enum.Enum):
    """What the agent may assume about its standing with the leader (see module doc)."""

    FOLLOWING = "following"
    SEARCHING = "searching"
    LOST = "lost"


RETRYABLE_CODES = frozenset({"not_leader", "unavailable"})
"""Error codes retried for every call (elsewhere or later)."""

IDEMPOTENT_RETRYABLE_CODES = RETRYABLE_CODES | {"deadline_exceeded"}
"""Error codes retried only for idempotent calls (a write may have committed)."""


class ClusterUnavailable(Exception):
    """No server gave a usable answer within the call's budget.

    ``tried`` lists the addresses attempted, ``last_error`` the last problem.
    """

    def __init__(self, method: str, tried: Sequence[str], last_error: BaseException | None) -> None:
        distinct = list(dict.fromkeys(tried))
        super().__init__(
            f"{method}: no leader reachable at {', '.join(distinct)} "
            f"(tried {len(distinct)} servers; last error: {last_error})"
        )
        self.method = method
        self.tried = distinct
        self.last_error = last_error


Listener = Callable[[ConnState, str | None], None]
"""Called with (state, leader address) after either changes; must not block."""


class ClusterClient:
    """Calls into an rctl cluster, following its leader (see module doc).

    :param seeds: ``host:port`` addresses to start from (at least one).
    :param policy: backoff policy; its ``clock`` also drives ``lost_after``.
    :param connect_timeout: seconds for one TCP connect.
    :param grace: seconds waited past a call's timeout for the server's answer.
    :param lost_after: seconds without leader contact before ``LOST``; the
        agent updates it from each heartbeat's ``ttl_ms``.
    :param max_redirects: ``not_leader`` redirects followed per call without backoff.
    :param tls: mutual TLS settings; None speaks plaintext.
    :param trust_learned: use addresses learned from replies even when they are
        not seeds; default: only with ``tls`` (see module doc).
    """

    def __init__(
        self,
        seeds: Sequence[str],
        *,
        policy: RetryPolicy | None = None,
        connect_timeout: float = 3.0,
        grace: float = DEFAULT_GRACE,
        lost_after: float = 30.0,
        max_redirects: int = 3,
        tls: ClientTLS | None = None,
        trust_learned: bool | None = None,
    ) -> None:
        if not seeds:
            raise ValueError("at least one server address is required")
        for addr in seeds:
            parse_address(addr)
        self.policy = policy or RetryPolicy()
        self._tls = tls
        self._trust_learned = tls is not None if trust_learned is None else trust_learned
        self._seeds = frozenset(a.strip() for a in seeds)
        self._ignored: set[str] = set()  # untrusted learned addresses, logged once
        self._connect_timeout = connect_timeout
        self._grace = grace
        self._max_redirects = max_redirects
        self._lock = threading.RLock()
        self._backoff_over = threading.Condition(self._lock)
        self._servers: list[str] = list(dict.fromkeys(a.strip() for a in seeds))
        self._next = 0  # round-robin position when no leader is known
        self._leader: str | None = None  # where leader-bound calls go
        self._leader_key: str | None = None  # identity of the last leader logged
        self._state = ConnState.LOST
        self._last_contact: float | None = None
        self._lost_after = lost_after
        self._failures = 0
        self._next_attempt_at = 0.0
        self._conns: dict[str, Connection] = {}
        self._listeners: list[Listener] = []

    # ---- observation -------------------------------------------------
    @property
    def state(self) -> ConnState:
        """Current connection state (may turn LOST just by time passing)."""
        with self._lock:
            self._check_lost()
            return self._state

    @property
    def leader(self) -> str | None:
        """Address leader-bound calls go to, or None while searching."""
        with self._lock:
            return self._leader

    @property
    def servers(self) -> list[str]:
        """Every known server address: seeds first, then learned ones."""
        with self._lock:
            return list(self._servers)

    def add_listener(self, listener: Listener) -> None:
        """Register a callback for state and leader changes."""
        with self._lock:
            self._listeners.append(listener)

    def set_lost_after(self, seconds: float) -> None:
        """Change how long without leader contact means ``LOST``."""
        with self._lock:
            self._lost_after = max(seconds, 0.0)

    def add_servers(self, addrs: Iterable[str]) -> None:
        """Add learned addresses to the known list (invalid and, without
        ``trust_learned``, non-seed ones are ignored)."""
        with self._lock:
            for addr in addrs:
                addr = addr.strip()
                if addr in self._servers or not self._trusted(addr):
                    continue
                try:
                    parse_address(addr)
                except ValueError:
                    log.debug("ignoring malformed server address %r", addr)
                    continue
                log.debug("learned server %s", addr)
                self._servers.append(addr)

    def _trusted(self, addr: str) -> bool:
        """Whether a learned address may be dialled (see module doc)."""
        if self._trust_learned or addr in self._seeds:
            return True
        with self._lock:
            if addr not in self._ignored:
                self._ignored.add(addr)
                log.debug(
                    "ignoring server address %s from a reply: without TLS only the "
                    "configured servers are used",
                    addr,
                )
        return False

    # ---- calls -------------------------------------------------------
    def call(
        self,
        method: str,
        args: dict[str, Any] | None,
        *,
        timeout: float,
        budget: float | None = None,
        leader_only: bool = False,
        idempotent: bool = True,
    ) -> Any:
        """Make one call, retrying across servers; return its ``result``.

        :param method: the RPC method.
        :param args: its ``args`` map.
        :param timeout: seconds per attempt (sent as ``timeout_ms``).
        :param budget: seconds after which no new attempt starts (default:
            ``timeout``).  An attempt already started runs to its timeout, and
            the first attempt may first wait out the shared backoff.
        :param leader_only: the call must reach the leader (``Node.Heartbeat``);
            its success is what keeps the state ``FOLLOWING``.
        :param idempotent: whether repeating the call is harmless.  When
            true, the call may be sent again after a timeout or broken
            connection, so its side effect may be applied more than once
            server-side (rctl's agent calls are all idempotent there).  When
            false, a timeout after sending is raised, never retried.
        :raises RpcError: a definitive error from a server.
        :raises ClusterUnavailable: the budget ran out.
        :raises TransportError: a non-idempotent call may have been sent.
        """
        clock = self.policy.clock
        deadline = clock() + (timeout if budget is None else budget)
        retryable = IDEMPOTENT_RETRYABLE_CODES if idempotent else RETRYABLE_CODES
        redirects = 0
        tried: list[str] = []
        while True:
            self._wait_backoff()
            addr = self._pick()
            tried.append(addr)
            last: BaseException
            try:
                result = self._attempt(addr, method, args, timeout, idempotent)
            except RpcError as e:
                if e.code == "not_leader" and e.leader_addr and e.leader_addr != addr:
                    if redirects < self._max_redirects and self._trusted(e.leader_addr.strip()):
                        redirects += 1
                        self._redirect(addr, e.leader_addr)
                        continue
                if e.code not in retryable:
                    self._answered(addr, leader_only)
                    raise
                last = e
            except TransportError as e:
                if not idempotent and e.maybe_sent:
                    self._failed(addr, e)
                    raise
                last = e
            else:
                self._succeeded(addr, leader_only, result)
                return result
            self._failed(addr, last)
            with self._lock:
                give_up = self._next_attempt_at >= deadline
            if give_up:
                raise ClusterUnavailable(method, tried, last)

    def close(self) -> None:
        """Close every connection (calls in flight fail)."""
        with self._lock:
            conns, self._conns = list(self._conns.values()), {}
        for conn in conns:
            conn.close()

    # ---- internals ---------------------------------------------------
    def _attempt(
        self, addr: str, method: str, args: dict[str, Any] | None, timeout: float, idempotent: bool
    ) -> Any:
        """One attempt at ``addr``.  A reused connection that turns out dead
        (servers close RPC connections idle for 15 minutes, docs/rpc.md) is
        replaced once at no backoff cost, unless that could repeat a
        non-idempotent call."""
        conn, fresh = self._connection(addr)
        try:
            return conn.call(method, args, timeout=timeout, grace=self._grace)
        except CallTimeout:
            self._drop_connection(addr, conn)
            raise
        except TransportError as e:
            self._drop_connection(addr, conn)
            if fresh or (e.maybe_sent and not idempotent):
                raise
            log.debug("connection to %s was stale (%s); reconnecting", addr, e)
        conn, _ = self._connection(addr)
        try:
            return conn.call(method, args, timeout=timeout, grace=self._grace)
        except TransportError:
            self._drop_connection(addr, conn)
            raise

    def _connection(self, addr: str) -> tuple[Connection, bool]:
        """The open connection to ``addr`` and whether it was just made."""
        with self._lock:
            conn = self._conns.get(addr)
            if conn is not None and not conn.closed:
                return conn, False
        conn = Connection(addr, connect_timeout=self._connect_timeout, tls=self._tls)  # unlocked
        with self._lock:
            other = self._conns.get(addr)
            if other is not None and not other.closed:
                conn.close()
                return other, False
            self._conns[addr] = conn
            return conn, True

    def _drop_connection(self, addr: str, conn: Connection) -> None:
        conn.close()
        with self._lock:
            if self._conns.get(addr) is conn:
                del self._conns[addr]

    def _wait_backoff(self) -> None:
        with self._backoff_over:
            while True:
                wait = self._next_attempt_at - self.policy.clock()
                if wait <= 0:
                    return
                if self.policy.sleep is not None:
                    break
                self._backoff_over.wait(wait)  # woken early by a success
        self.policy.sleep(wait)

    def _pick(self) -> str:
        with self._lock:
            if self._leader is not None:
                return self._leader
            addr = self._servers[self._next % len(self._servers)]
            self._next = (self._next + 1) % len(self._servers)
            return addr

    def _redirect(self, addr: str, leader_addr: str) -> None:
        leader_addr = leader_addr.strip()
        log.debug("%s is not the leader; redirected to %s", addr, leader_addr)
        self.add_servers([leader_addr])
        with self._lock:
            self._leader = leader_addr

    def _failed(self, addr: str, err: BaseException) -> None:
        log.debug("call to %s failed: %s", addr, err)
        with self._lock:
            self._failures += 1
            self._next_attempt_at = self.policy.clock() + self.policy.delay(self._failures)
            if addr in self._servers:
                self._next = (self._servers.index(addr) + 1) % len(self._servers)
            if addr == self._leader:
                self._leader = None
                if self._state is ConnState.FOLLOWING:
                    log.warning(
                        "lost contact with the leader at %s (%s); searching %d known servers",
                        addr,
                        err,
                        len(self._servers),
                    )
                    self._set_state(ConnState.SEARCHING)
            self._check_lost()

    def _answered(self, addr: str, leader_only: bool) -> None:
        """A server gave a definitive answer: the network works."""
        with self._lock:
            self._failures = 0
            self._next_attempt_at = 0.0
            self._backoff_over.notify_all()
            if leader_only and addr == self._leader:
                self._last_contact = self.policy.clock()

    def _succeeded(self, addr: str, leader_only: bool, result: Any) -> None:
        self._answered(addr, leader_only)
        if not isinstance(result, dict):
            return
        servers = result.get("servers")
        if isinstance(servers, list):
            self.add_servers(
                s["address"]
                for s in servers
                if isinstance(s, dict) and isinstance(s.get("address"), str)
            )
        leader_addr = result.get("leader_addr")
        leader_id = result.get("leader_id")
        leader_addr = leader_addr if isinstance(leader_addr, str) else ""
        leader_id = leader_id if isinstance(leader_id, str) else ""
        with self._lock:
            if leader_only:
                # The answering server is the leader: route to the address that worked.
                self._leader = addr
                self._last_contact = self.policy.clock()
                key = leader_id or leader_addr or addr
                shown = leader_addr or addr
                changed = key != self._leader_key
                if changed:
                    self._leader_key = key
                    log.info("following leader %s at %s", leader_id or "(unnamed)", shown)
                elif self._state is not ConnState.FOLLOWING:
                    log.info("reconnected to leader %s at %s", leader_id or "(unnamed)", shown)
                self._set_state(ConnState.FOLLOWING, force_notify=changed)
            elif leader_addr and self._leader is None and self._trusted(leader_addr.strip()):
                self.add_servers([leader_addr])
                self._leader = leader_addr.strip()

    def _check_lost(self) -> None:
        if self._state is ConnState.LOST:
            return
        if self._last_contact is None:
            return
        silent = self.policy.clock() - self._last_contact
        if silent > self._lost_after:
            log.warning(
                "no contact with the leader for %.1f s: assuming this node was marked "
                "unreachable and its tasks requeued",
                silent,
            )
            self._set_state(ConnState.LOST)

    def _set_state(self, state: ConnState, *, force_notify: bool = False) -> None:
        changed = state is not self._state
        self._state = state
        if changed or force_notify:
            for listener in list(self._listeners):
                try:
                    listener(state, self._leader)
                except Exception:
                    log.exception("connection state listener failed")
