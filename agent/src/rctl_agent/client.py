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

Following elections (docs/rpc.md, "Following elections"): the client
remembers the id of the leader from leader-only replies, and
:meth:`ClusterClient.watch_leader` holds a ``Status.Get`` with
``known_leader`` = that id on a server other than the leader.  That server
answers as soon as it knows another leader (about one round trip after the
election); the client then sends leader-bound calls there and ends the
shared backoff, without waiting for the old leader's calls to fail.  A reply
is adopted only if it names a leader at a newer term than any seen so far,
at a trusted address, and not one adopted before and found unreachable.

Ready connections (:meth:`ClusterClient.keep_ready`, which the agent
uses): a background thread keeps an open connection to every known server
and opens a new one, off the call path, when a server closes its own (a
restart, or the server's idle timeout).  A new leader is then reached
without a TCP and TLS handshake, which across clouds costs two of the
three round trips of a first heartbeat.  A server that cannot be reached
(refused, timed out) is tried again every tick, so a restarted server has
its connection back within a tick; one whose TLS handshake fails, or whose
connection closes within ``READY_STABLE`` ticks of opening (a server
refusing this certificate), costs that server work and is tried again only
after a pause that doubles from one tick to ``READY_MAX_DELAY`` ticks (30 s).

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
    CallAbandoned,
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

MIN_ATTEMPT_TIMEOUT = 0.05
"""Shortest attempt ``call(limit=…)`` makes, seconds."""

WATCH_MIN_DELAY = 0.1
"""Shortest pause, in seconds, after a leader watch that told nothing new."""

WATCH_MAX_DELAY = 2.0
"""Longest such pause: the pause doubles with each fruitless watch in a row."""


READY_TICK = 1.0
"""Seconds between checks that every known server has an open connection."""

READY_STABLE = 1
"""A ready connection that closes sooner than this many ticks after opening
counts as a failure to connect: the next one waits out a doubling pause.
A server refusing this client's certificate closes within a round trip of
the handshake (TLS 1.3 judges the client after its side is done), which the
next tick sees; a connection that held longer was served, and its end (a
crash, a restart) is no reason to wait before the next one.  (It was 10
ticks: in the fault harness's kill -9 rounds each server is killed every
~4 s, so its connections never held 10 s, the pauses doubled, and agents
had no ready connection to the next leader: their first heartbeat across
clouds paid the TCP and TLS handshakes, ~0.5 s more.)"""

READY_MAX_DELAY = 30
"""Longest pause, in ticks, before opening a ready connection again."""


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
        self._closed = False
        # Following elections (watch_leader).  _leader_id is the id of the
        # leader calls are aimed at (from leader-only replies or adopted from
        # a watch), _leader_id_addr its address; _term/_term_leader the newest
        # term a watch reply named a leader at; _adopted a leader taken from a
        # watch and not yet confirmed by a leader-only success; _refuted one
        # that was adopted and then not reached (id, term).
        self._leader_known = threading.Condition(self._lock)
        self._leader_id: str | None = None
        self._leader_id_addr: str | None = None
        self._term = 0
        self._term_leader = ""
        self._adopted: tuple[str, str, int] | None = None
        self._refuted: tuple[str, int] | None = None
        # Counts adoptions: a leader-only reply to a call sent before the
        # latest one says who led when it was built, not who leads now.
        self._adoptions = 0
        self._watch_next = int(self.policy.random() * 1024)  # spread agents over servers
        self._watch_failures = 0
        self._watch_missed = 0  # failed watches in a row since the last pause
        # Ready connections (keep_ready): per address, when its connection
        # opened, how many tries in a row failed, when to try next.
        self._ready_thread: threading.Thread | None = None
        self._ready_tick = READY_TICK
        self._ready_wake = threading.Event()
        self._ready_opened: dict[str, float] = {}
        self._ready_failures: dict[str, int] = {}
        self._ready_retry_at: dict[str, float] = {}
        self._dialing: set[str] = set()
        self._leader_only: set[str] = set()  # methods called with leader_only

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
    def leader_id(self) -> str | None:
        """Id of the leader leader-bound calls go to, once a leader-only reply
        (or a leader watch) named it."""
        with self._lock:
            return self._leader_id

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
        limit: float | None = None,
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
        :param limit: seconds from now past which no wait (backoff or
            attempt) runs, unlike ``budget``; for a caller with something
            else due then (the agent fences its tasks).
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
        not_after = None if limit is None else clock() + limit
        if not_after is not None:
            deadline = min(deadline, not_after)
        retryable = IDEMPOTENT_RETRYABLE_CODES if idempotent else RETRYABLE_CODES
        if leader_only:
            with self._lock:
                self._leader_only.add(method)
        redirects = 0
        tried: list[str] = []
        last: BaseException | None = None
        while True:
            if not self._wait_backoff(not_after):
                raise ClusterUnavailable(method, tried, last)
            addr = self._pick()
            tried.append(addr)
            attempt_timeout = timeout
            if not_after is not None:
                attempt_timeout = min(timeout, max(not_after - clock(), MIN_ATTEMPT_TIMEOUT))
            with self._lock:
                adoptions = self._adoptions
            try:
                result = self._attempt(addr, method, args, attempt_timeout, idempotent, adoptions)
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
                if self._moved(addr, adoptions):
                    # A watch named a new leader meanwhile and closed this
                    # connection to the old one: go there now, no backoff.
                    log.debug("%s to %s ended by the move to leader %s", method, addr, self.leader)
                    continue
            else:
                self._succeeded(addr, leader_only, result, adoptions)
                return result
            self._failed(addr, last)
            with self._lock:
                give_up = self._next_attempt_at >= deadline
            if give_up:
                raise ClusterUnavailable(method, tried, last)

    def close(self) -> None:
        """Close every connection (calls in flight fail) and end leader
        watches and ready connections."""
        with self._lock:
            self._closed = True
            self._leader_known.notify_all()
            conns, self._conns = list(self._conns.values()), {}
        self._ready_wake.set()
        for conn in conns:
            conn.close()

    # ---- ready connections -------------------------------------------
    def keep_ready(self, tick: float = READY_TICK) -> None:
        """Keep an open connection to every known server, from a background
        thread that checks every ``tick`` seconds (see module doc); until
        :meth:`close`.  Calling it again does nothing."""
        with self._lock:
            if self._ready_thread is not None or self._closed:
                return
            self._ready_tick = tick
            self._ready_thread = threading.Thread(
                target=self._keep_ready, name="rctl-ready-conns", daemon=True
            )
        self._ready_thread.start()

    def ready_servers(self) -> list[str]:
        """Known servers this client holds an open connection to now."""
        with self._lock:
            conns = [(a, self._conns.get(a)) for a in self._servers]
        return [a for a, c in conns if c is not None and not c.closed]

    def _keep_ready(self) -> None:
        while not self._is_closed():
            for addr in self._ready_due():
                threading.Thread(
                    target=self._ready_dial, args=(addr,), name=f"rctl-ready-{addr}", daemon=True
                ).start()
            self._ready_wake.wait(self._ready_tick)

    def _ready_due(self) -> list[str]:
        """Servers without an open connection whose pause is over; marks
        them as being dialled."""
        now = self.policy.clock()
        stable = READY_STABLE * self._ready_tick
        due = []
        with self._lock:
            for addr in self._servers:
                if addr in self._dialing:
                    continue
                conn = self._conns.get(addr)
                opened = self._ready_opened.get(addr)
                if conn is not None and not conn.closed:
                    if opened is not None and now - opened >= stable:
                        self._ready_failures.pop(addr, None)  # it held: start over
                    continue
                self._ready_opened.pop(addr, None)
                if opened is not None and now - opened < stable:
                    self._ready_failed(addr, now)  # opened, then closed at once
                if self._ready_retry_at.get(addr, 0.0) > now:
                    continue
                self._dialing.add(addr)
                due.append(addr)
        return due

    def _ready_dial(self, addr: str) -> None:
        try:
            _, fresh = self._connection(addr)
        except TransportError as e:
            log.debug("ready connection to %s failed: %s", addr, e)
            if e.reached:  # the server did work for it: do not repeat that every tick
                with self._lock:
                    self._ready_failed(addr, self.policy.clock())
            return
        finally:
            with self._lock:
                self._dialing.discard(addr)
        with self._lock:
            self._ready_opened[addr] = self.policy.clock()
        if fresh:
            log.debug("ready connection to %s open", addr)

    def _ready_failed(self, addr: str, now: float) -> None:
        """Count a failed try at addr's ready connection (caller holds the lock)."""
        n = self._ready_failures.get(addr, 0) + 1
        self._ready_failures[addr] = n
        pause = self._ready_tick * min(READY_MAX_DELAY, 2 ** min(n - 1, 16))
        self._ready_retry_at[addr] = now + pause * (1 + 0.25 * self.policy.random())

    # ---- following elections -----------------------------------------
    def watch_leader(self, max_wait: float, *, spread: float = 0.0) -> bool:
        """Wait up to about ``max_wait`` seconds for news of a new leader.

        Sends ``Status.Get`` with ``known_leader`` = the id of the leader
        followed now to a server other than that leader (the known servers in
        turn; the leader itself only when there is no other), on its pooled
        connection.  When the reply names another leader, at a newer term and
        a trusted address, leader-bound calls go there from now on and the
        shared backoff ends (at a random point within ``spread`` seconds, so
        that a fleet does not all retry in the same instant): returns True.
        The state does not change; only a heartbeat reaching the new leader
        makes it ``FOLLOWING``.

        Returns False when nothing changed: the wait ran out, or, after a
        failure or an answer that told nothing new, after a pause that grows
        with each such answer in a row (:data:`WATCH_MIN_DELAY` doubling to
        :data:`WATCH_MAX_DELAY`, or the retry policy's delay if longer), so
        calling it in a loop never spins.  A watch that failed (its server
        refused, reset or timed out the call, or answered an error) returns
        False at once while another server has not failed since the last
        pause: the next watch asks that one.  A server killed or restarting
        during overlapping failures thus costs no pause; a whole round of
        failed servers does.  Before any leader-only call has
        succeeded there is no leader to watch: it waits for that instead.
        Returns False at once once the client is closed (which also ends a
        watch in flight).
        """
        clock = self.policy.clock
        with self._lock:
            deadline = clock() + max_wait
            while self._leader_id is None and not self._closed:
                left = deadline - clock()
                if left <= 0:
                    return False
                self._leader_known.wait(left)
            if self._closed:
                return False
            known = self._leader_id
            assert known is not None
            addr = self._watch_target()
        args = {"known_leader": known, "max_wait_ms": max(1, int(max_wait * 1000))}
        started = clock()
        try:
            conn, _ = self._connection(addr)
            if self._is_closed():  # close() ran while this one was dialled
                self._drop_connection(addr, conn)
                return False
            reply = conn.call("Status.Get", args, timeout=max_wait + self._grace, grace=self._grace)
        except (TransportError, RpcError) as e:
            if isinstance(e, TransportError):
                self._drop_connection_to(addr)
            log.debug("leader watch at %s failed: %s", addr, e)
            return self._watch_fruitless(addr, rotate=True)
        with self._lock:
            self._watch_missed = 0
        if self._adopt(addr, known, reply, spread):
            return True
        with self._lock:
            self._watch_next += 1  # the next watch asks another server: this one may be cut off
            if clock() - started >= max_wait / 2:
                # Held for (about) the whole wait: a normal renewal, not a spin.
                self._watch_failures = 0
                return False
        return self._watch_fruitless(addr, rotate=False)

    def _is_closed(self) -> bool:
        with self._lock:
            return self._closed

    def _watch_targets(self) -> list[str]:
        """The servers a watch asks in turn: all but the leader (caller holds
        the lock); empty when the leader is the only known server."""
        return [a for a in self._servers if a not in (self._leader, self._leader_id_addr)]

    def _watch_target(self) -> str:
        """The next server to watch the leader from (caller holds the lock)."""
        others = self._watch_targets()
        if not others:
            return self._leader or self._leader_id_addr or self._servers[0]
        return others[self._watch_next % len(others)]

    def _watch_fruitless(self, addr: str, *, rotate: bool) -> bool:
        """Pause after a watch that told nothing new; always False.

        ``rotate``: the watch failed.  The next watch asks the next server,
        at once while a server has not failed since the last pause."""
        with self._lock:
            if rotate:
                self._watch_next += 1
                self._watch_missed += 1
                targets = len(self._watch_targets()) or 1
                if self._watch_missed < targets and not self._closed:
                    log.debug("leader watch moves on from %s at once", addr)
                    return False
                self._watch_missed = 0
            self._watch_failures += 1
            n = self._watch_failures
            if self._closed:
                return False
        floor = min(WATCH_MAX_DELAY, WATCH_MIN_DELAY * 2 ** min(n - 1, 16))
        wait = max(self.policy.delay(n), floor * (1 + 0.25 * self.policy.random()))
        log.debug("next leader watch in %.2f s", wait)
        if self.policy.sleep is not None:
            self.policy.sleep(wait)
            return False
        clock = self.policy.clock
        until = clock() + wait
        with self._lock:
            while not self._closed:
                left = until - clock()
                if left <= 0:
                    break
                self._leader_known.wait(left)  # close() ends it early
        return False

    def _adopt(self, addr: str, known: str, reply: Any, spread: float) -> bool:
        """Take the leader a watch reply names, if it is news; see watch_leader."""
        if not isinstance(reply, dict):
            return False
        lid, laddr, term = reply.get("leader_id"), reply.get("leader_addr"), reply.get("term")
        lid = lid if isinstance(lid, str) else ""
        laddr = laddr.strip() if isinstance(laddr, str) else ""
        term = term if isinstance(term, int) and term > 0 else 0
        if not lid or not laddr:
            log.debug("leader watch at %s: the server knows no leader", addr)
            return False
        with self._lock:
            # One leader per term: a server naming another leader at an older
            # term (or another one at the same term) has not heard of the
            # election we already know of.  Without a term nothing is known.
            stale = bool(term) and (
                term < self._term or (term == self._term and lid != self._term_leader)
            )
            if term > self._term:
                self._term, self._term_leader = term, lid
            if lid == self._leader_id or lid == known:
                log.debug("leader watch at %s: still leader %s", addr, lid)
                return False
            if stale:
                log.debug(
                    "leader watch at %s names %s at term %d, older than term %d: ignored",
                    addr,
                    lid,
                    term,
                    self._term,
                )
                return False
            if self._refuted is not None and self._refuted[0] == lid and term <= self._refuted[1]:
                log.debug("leader watch at %s names %s, which did not answer as leader", addr, lid)
                return False
        try:
            parse_address(laddr)
        except ValueError:
            log.debug("leader watch at %s names a malformed address %r", addr, laddr)
            return False
        if not self._trusted(laddr):
            return False
        self.add_servers([laddr])
        with self._lock:
            if self._closed or self._leader_id != known:
                return False  # a heartbeat found the leader meanwhile: it knows better
            old = self._leader
            self._leader = laddr
            self._leader_id, self._leader_id_addr = lid, laddr
            self._adopted = (lid, laddr, term)
            self._adoptions += 1
            self._watch_failures = 0
            self._failures = 0
            self._next_attempt_at = self.policy.clock() + max(spread, 0.0) * self.policy.random()
            self._backoff_over.notify_all()
            self._notify(self._state)
        log.info("leader changed to %s at %s (learned from server %s)", lid, laddr, addr)
        if old is not None and old != laddr:
            # Calls still waiting on the old leader (paused or cut off) fail
            # now and are retried at the new one.
            self._drop_connection_to(old)
        with self._lock:
            others = [c for a, c in self._conns.items() if a != laddr]
            methods = list(self._leader_only)
        for conn in others:
            # Leader-only calls still waiting on another server (a search
            # for the leader under way) go to the new one now.
            for method in methods:
                conn.abandon(method)
        return True

    # ---- internals ---------------------------------------------------
    def _moved(self, addr: str, adoptions: int) -> bool:
        """Whether a watch adopted a leader other than ``addr`` since
        ``adoptions`` was read."""
        with self._lock:
            leader = self._leader
            return self._adoptions != adoptions and leader is not None and leader != addr

    def _attempt(
        self,
        addr: str,
        method: str,
        args: dict[str, Any] | None,
        timeout: float,
        idempotent: bool,
        adoptions: int,
    ) -> Any:
        """One attempt at ``addr``.  A reused connection that turns out dead
        (servers close RPC connections idle for 15 minutes, docs/rpc.md) is
        replaced once at no backoff cost, unless that could repeat a
        non-idempotent call, or the connection was closed because a watch
        moved to a new leader (``adoptions`` read before the attempt)."""
        conn, fresh = self._connection(addr)
        try:
            return conn.call(method, args, timeout=timeout, grace=self._grace)
        except CallAbandoned:
            raise  # the leader moved (_adopt): the connection is fine
        except CallTimeout:
            self._drop_connection(addr, conn)
            raise
        except TransportError as e:
            self._drop_connection(addr, conn)
            if fresh or (e.maybe_sent and not idempotent) or self._moved(addr, adoptions):
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
            if self._closed:  # close() ran meanwhile: it must not outlive it
                conn.close()
                raise TransportError(f"connection to {addr}: client closed", maybe_sent=False)
            other = self._conns.get(addr)
            if other is not None and not other.closed:
                conn.close()
                return other, False
            self._conns[addr] = conn
            return conn, True

    def _drop_connection_to(self, addr: str) -> None:
        with self._lock:
            conn = self._conns.pop(addr, None)
        if conn is not None:
            conn.close()

    def _drop_connection(self, addr: str, conn: Connection) -> None:
        conn.close()
        with self._lock:
            if self._conns.get(addr) is conn:
                del self._conns[addr]

    def _wait_backoff(self, not_after: float | None = None) -> bool:
        """Wait out the shared backoff (ended early by another call's
        success); False, after waiting until ``not_after``, if it lasts past
        that."""
        with self._backoff_over:
            while True:
                now = self.policy.clock()
                wait = self._next_attempt_at - now
                if wait <= 0:
                    return True
                if not_after is not None and now >= not_after:
                    return False
                clipped = not_after is not None and now + wait > not_after
                if clipped:
                    wait = not_after - now  # type: ignore[operator]
                if self.policy.sleep is not None:
                    break
                self._backoff_over.wait(wait)  # woken early by a success
        self.policy.sleep(wait)
        return not clipped

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
            if (
                isinstance(err, RpcError)
                and err.code == "unavailable"
                and self._adopted is not None
                and addr == self._adopted[1] == self._leader
            ):
                # The leader a watch just named answers, but is not ready yet
                # (elected a moment ago): retry it after the backoff rather
                # than walk the other servers, which would only redirect here.
                return
            if addr in self._servers:
                self._next = (self._servers.index(addr) + 1) % len(self._servers)
            if self._adopted is not None and addr == self._adopted[1]:
                self._refuted, self._adopted = (self._adopted[0], self._adopted[2]), None
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

    def _succeeded(
        self, addr: str, leader_only: bool, result: Any, adoptions: int | None = None
    ) -> None:
        """A call answered.  adoptions is _adoptions when it was sent."""
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
            if (
                leader_only
                and adoptions is not None
                and adoptions != self._adoptions
                and self._adopted is not None
                and leader_id != self._adopted[0]
            ):
                # Sent before a watch adopted another leader, and built by the
                # old one before the election: it says who led then.  Taking
                # it would send this client back to the old leader and make
                # it distrust the new one until its next heartbeat.
                log.debug(
                    "reply from %s built before %s was adopted: not the leader's word now",
                    addr,
                    self._adopted[0],
                )
                return
            if leader_only:
                # The answering server is the leader: route to the address that worked.
                self._leader = addr
                self._last_contact = self.policy.clock()
                if self._adopted is not None:
                    if leader_id and self._adopted[0] != leader_id:  # the adopted one was not it
                        self._refuted = (self._adopted[0], self._adopted[2])
                    self._adopted = None
                if self._refuted is not None and self._refuted[0] == leader_id:
                    self._refuted = None
                if leader_id and (leader_id != self._leader_id or addr != self._leader_id_addr):
                    self._leader_id, self._leader_id_addr = leader_id, addr
                    self._leader_known.notify_all()
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
            self._notify(state)

    def _notify(self, state: ConnState) -> None:
        for listener in list(self._listeners):
            try:
                listener(state, self._leader)
            except Exception:
                log.exception("connection state listener failed")
