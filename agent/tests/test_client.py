from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from conftest import fast_policy, make_client
from fakeserver import FakeCluster

from rctl_agent.client import ClusterClient, ClusterUnavailable, ConnState
from rctl_agent.retry import RetryPolicy
from rctl_agent.wire import RpcError, TransportError


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds


def cycle(values: list[float]) -> Iterator[float]:
    while True:
        yield from values


def dead_addr() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"127.0.0.1:{port}"


def register(client: ClusterClient, node: str = "n1") -> dict[str, object]:
    reply = client.call("Node.Register", {"id": node, "capacity": 1}, timeout=1)
    assert isinstance(reply, dict)
    return reply


def heartbeat(client: ClusterClient, node: str = "n1", timeout: float = 1.0) -> dict[str, object]:
    reply = client.call(
        "Node.Heartbeat", {"node_id": node}, timeout=timeout, budget=timeout, leader_only=True
    )
    assert isinstance(reply, dict)
    return reply


# ---- RetryPolicy ------------------------------------------------------


def test_backoff_grows_is_capped_and_jittered() -> None:
    rnd = cycle([0.0, 0.999])
    policy = RetryPolicy(base_delay=0.1, max_delay=2.0, jitter=0.5, random=lambda: next(rnd))
    delays = [policy.delay(n) for n in range(1, 13)]
    ceilings = [min(2.0, 0.1 * 2 ** (n - 1)) for n in range(1, 13)]
    for d, c in zip(delays, ceilings, strict=True):
        assert c * 0.5 <= d <= c
    assert max(delays) <= 2.0
    assert delays[0] == pytest.approx(0.1)  # random 0 -> full delay
    assert delays[1] == pytest.approx(0.2 * (1 - 0.5 * 0.999))  # jitter took half off
    assert policy.delay(1000) <= 2.0  # no overflow far out


@pytest.mark.parametrize(
    "kwargs",
    [{"base_delay": 0}, {"max_delay": 0.01}, {"multiplier": 0.5}, {"jitter": 1.0}],
)
def test_policy_validates(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)


def test_unreachable_cluster_backs_off_without_hot_loop() -> None:
    """All servers refuse: every retry waits, delays grow to the cap, with jitter."""
    t = FakeTime()
    rnd = cycle([0.1, 0.7, 0.4, 0.9])
    policy = RetryPolicy(
        base_delay=0.1, max_delay=1.0, sleep=t.sleep, clock=t.clock, random=lambda: next(rnd)
    )
    client = ClusterClient([dead_addr(), dead_addr()], policy=policy, connect_timeout=0.2)
    with pytest.raises(ClusterUnavailable) as info:
        client.call("Node.Register", {"id": "n1"}, timeout=1, budget=10)
    assert len(info.value.tried) == 2
    sleeps = t.sleeps
    assert len(sleeps) >= 5
    assert t.now - 1000.0 <= 10 + 1.0  # gave up within budget (+ at most one delay)
    assert sleeps[0] < sleeps[2] < sleeps[4]  # grows
    assert max(sleeps) <= 1.0  # capped
    assert len({round(s, 6) for s in sleeps[-3:]}) > 1  # jittered even at the cap
    # A caller that loops on ClusterUnavailable still waits between tries.
    before = len(t.sleeps)
    with pytest.raises(ClusterUnavailable):
        client.call("Node.Register", {"id": "n1"}, timeout=1, budget=0)
    assert len(t.sleeps) == before + 1 and t.sleeps[-1] > 0.4  # backoff kept growing
    client.close()


def test_limit_cuts_backoff_and_attempts_short() -> None:
    """``limit`` is hard: with a long budget and a backoff deep into its
    growth, the call still returns (unavailable) at the limit, not later."""
    t = FakeTime()
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0, sleep=t.sleep, clock=t.clock)
    client = ClusterClient([dead_addr()], policy=policy, connect_timeout=0.2)
    for _ in range(3):  # grow the shared backoff to 4 s
        with pytest.raises(ClusterUnavailable):
            client.call("Node.Heartbeat", {"node_id": "n1"}, timeout=1, budget=0)
    start = t.now
    with pytest.raises(ClusterUnavailable):
        client.call("Node.Heartbeat", {"node_id": "n1"}, timeout=5, budget=30, limit=0.5)
    assert t.now - start == pytest.approx(0.5)  # waited to the limit, no more
    assert t.sleeps[-1] == pytest.approx(0.5)
    # Without the limit the same call waits the backoff out.
    start = t.now
    with pytest.raises(ClusterUnavailable):
        client.call("Node.Heartbeat", {"node_id": "n1"}, timeout=5, budget=0)
    assert t.now - start > 1.0
    client.close()


def test_limit_shortens_the_attempt_timeout(cluster: FakeCluster) -> None:
    """An attempt that would hang (a server that never answers) ends at the limit."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    try:
        client = make_client([f"127.0.0.1:{silent.getsockname()[1]}"])
        start = time.monotonic()
        with pytest.raises(ClusterUnavailable):
            client.call("Node.Heartbeat", {"node_id": "n1"}, timeout=5, budget=5, limit=0.3)
        took = time.monotonic() - start
        assert 0.25 <= took < 1.5, took
        client.close()
    finally:
        silent.close()


def test_backoff_resets_after_success(cluster: FakeCluster) -> None:
    t = FakeTime()
    policy = RetryPolicy(base_delay=0.1, max_delay=1.0, sleep=t.sleep, clock=t.clock)
    client = ClusterClient([dead_addr(), cluster.servers[0].addr], policy=policy)
    register(client)
    assert t.sleeps and t.sleeps[0] <= 0.1
    n = len(t.sleeps)
    register(client)  # the known-good server answers: no wait at all
    assert len(t.sleeps) == n
    client.close()


# ---- leader following ----------------------------------------------------


def test_not_leader_redirects_to_leader_addr(cluster: FakeCluster) -> None:
    leader, follower = cluster.servers[0], cluster.servers[2]
    client = make_client([follower.addr], trust_learned=True)  # as with TLS
    register(client)
    heartbeat(client)
    assert client.leader == leader.addr
    assert client.state is ConnState.FOLLOWING
    hbs = cluster.calls_of("Node.Heartbeat")
    assert [c.server for c in hbs][-1] == "s0"
    client.close()


def test_leader_change_followed_and_logged_once(
    cluster: FakeCluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="rctl_agent.client")
    client = make_client([cluster.servers[0].addr], trust_learned=True)  # as with TLS
    register(client)
    for _ in range(3):
        heartbeat(client)
    cluster.set_leader(cluster.servers[1])
    for _ in range(5):
        heartbeat(client)
    assert client.leader == cluster.servers[1].addr
    assert cluster.calls_of("Node.Heartbeat")[-1].server == "s1"
    lines = [r.getMessage() for r in caplog.records if "following leader" in r.getMessage()]
    assert lines == [
        f"following leader s0 at {cluster.servers[0].addr}",
        f"following leader s1 at {cluster.servers[1].addr}",
    ]
    client.close()


def test_dead_leader_makes_client_search_then_follow_new_leader(
    cluster: FakeCluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="rctl_agent.client")
    states: list[ConnState] = []
    client = make_client([s.addr for s in cluster.servers])
    client.add_listener(lambda state, leader: states.append(state))
    register(client)
    heartbeat(client)
    cluster.servers[0].kill()
    cluster.set_leader(cluster.servers[2])
    heartbeat(client, timeout=2)
    assert client.leader == cluster.servers[2].addr
    assert states == [ConnState.FOLLOWING, ConnState.SEARCHING, ConnState.FOLLOWING]
    msgs = [r.getMessage() for r in caplog.records]
    assert sum("lost contact with the leader" in m for m in msgs) == 1
    assert sum("following leader s2" in m for m in msgs) == 1
    client.close()


def test_timeout_moves_on_to_another_server(cluster: FakeCluster) -> None:
    """A leader that stops answering is given up after timeout + grace."""
    client = make_client([s.addr for s in cluster.servers], grace=0.1)
    register(client)
    heartbeat(client)
    cluster.servers[0].mode = "blackhole"
    cluster.set_leader(cluster.servers[1])
    start = time.monotonic()
    # one timeout (0.3 s + 0.1 s grace), then the new leader
    client.call("Node.Heartbeat", {"node_id": "n1"}, timeout=0.3, budget=3, leader_only=True)
    assert time.monotonic() - start < 2.0
    assert client.leader == cluster.servers[1].addr
    client.close()


def test_unavailable_is_retried_elsewhere(cluster: FakeCluster) -> None:
    cluster.servers[0].mode = "unavailable"
    client = make_client([cluster.servers[0].addr, cluster.servers[1].addr])
    reply = register(client)
    assert reply["leader_id"] == "s0"
    assert [c.server for c in cluster.calls_of("Node.Register")] == ["s0", "s1"]
    client.close()


def test_definitive_errors_are_not_retried(cluster: FakeCluster) -> None:
    client = make_client([cluster.servers[0].addr])
    with pytest.raises(RpcError) as info:
        client.call("Task.Start", {"task_id": "nope", "node_id": "n1"}, timeout=1, budget=5)
    assert info.value.code == "not_found"
    assert len(cluster.calls_of("Task.Start")) == 1
    client.close()


def test_non_idempotent_call_not_resent_after_timeout(cluster: FakeCluster) -> None:
    cluster.servers[0].mode = "blackhole"
    client = make_client([s.addr for s in cluster.servers], grace=0.1)
    with pytest.raises(TransportError):
        client.call("Node.Register", {"id": "n1"}, timeout=0.2, budget=5, idempotent=False)
    assert len(cluster.calls_of("Node.Register")) == 0  # the blackhole never recorded it
    client.close()


def test_redirect_ping_pong_is_bounded() -> None:
    """Two servers naming each other as leader: a few redirects, then backoff."""
    with FakeCluster(2) as c:
        a, b = c.servers
        a.believes, b.believes = b, a
        c.nodes["n1"] = {"id": "n1", "status": "healthy"}
        t = FakeTime()
        policy = RetryPolicy(base_delay=0.05, max_delay=0.2, sleep=t.sleep, clock=t.clock)
        client = ClusterClient([a.addr, b.addr], policy=policy, max_redirects=3)
        with pytest.raises(ClusterUnavailable):
            heartbeat(client, timeout=1)
        calls = len(c.calls_of("Node.Heartbeat"))
        assert calls >= 8
        # at most 1 + max_redirects attempts per backoff sleep
        assert calls <= 4 * (len(t.sleeps) + 1)
        client.close()


def test_learns_servers_beyond_its_seeds(cluster: FakeCluster) -> None:
    """Seeds: a dead server and s0. s0's replies list s1 and s2; when s0 dies,
    the client finds the new leader among servers it only learned about."""
    s0, s1, s2 = cluster.servers
    client = make_client([dead_addr(), s0.addr], trust_learned=True)  # as with TLS
    register(client)
    assert client.servers[2:] == [s1.addr, s2.addr]
    heartbeat(client)
    s0.kill()
    cluster.set_leader(s2)
    heartbeat(client, timeout=2)
    assert client.leader in (s1.addr, s2.addr)
    assert cluster.calls_of("Node.Heartbeat")[-1].server == "s2"
    client.close()


def test_lost_after_ttl_without_leader_contact(cluster: FakeCluster) -> None:
    t = FakeTime()
    policy = fast_policy(sleep=t.sleep, clock=t.clock)
    client = make_client([cluster.servers[0].addr], policy=policy, lost_after=2.0)
    assert client.state is ConnState.LOST  # no session yet
    register(client)
    heartbeat(client)
    assert client.state is ConnState.FOLLOWING
    t.now += 1.0
    assert client.state is ConnState.FOLLOWING
    t.now += 1.5
    assert client.state is ConnState.LOST
    heartbeat(client)
    assert client.state is ConnState.FOLLOWING
    client.close()


def test_closed_idle_connection_is_replaced_without_backoff(cluster: FakeCluster) -> None:
    t = FakeTime()
    client = make_client(
        [cluster.servers[0].addr], policy=fast_policy(sleep=t.sleep, clock=t.clock)
    )
    register(client)
    heartbeat(client)
    for _ in range(3):
        cluster.servers[0].drop_connections()
        heartbeat(client)
    assert t.sleeps == []
    assert client.state is ConnState.FOLLOWING
    client.close()


class _DeadConn:
    """A cached connection whose peer vanished unnoticed: the send fails."""

    closed = False

    def call(self, *args: object, **kwargs: object) -> object:
        raise TransportError("connection reset by peer", maybe_sent=True)

    def close(self) -> None:
        self.closed = True


def test_stale_connection_retried_once_on_a_fresh_one(cluster: FakeCluster) -> None:
    t = FakeTime()
    addr = cluster.servers[0].addr
    client = make_client([addr], policy=fast_policy(sleep=t.sleep, clock=t.clock))
    register(client)
    heartbeat(client)
    client._conns[addr] = _DeadConn()  # type: ignore[assignment]
    heartbeat(client)
    assert t.sleeps == [] and client.state is ConnState.FOLLOWING
    # ...but a non-idempotent call that may have been sent is not repeated
    client._conns[addr] = _DeadConn()  # type: ignore[assignment]
    with pytest.raises(TransportError):
        client.call("Task.Get", {"id": "x"}, timeout=1, idempotent=False)
    client.close()


def test_success_elsewhere_ends_a_long_backoff_early(cluster: FakeCluster) -> None:
    """Thread B backs off for 5 s after an `unavailable`; thread A's success on
    another server meanwhile wakes B, which then gets through at once."""
    _, s1, s2 = cluster.servers
    s1.delay = 0.6
    s2.mode = "unavailable"
    cluster.add_task("t")
    policy = RetryPolicy(base_delay=5.0, max_delay=5.0, jitter=0.0)
    client = ClusterClient([s1.addr, s2.addr], policy=policy, grace=0.2)
    a = threading.Thread(target=client.call, args=("Task.Get", {"id": "t"}), kwargs={"timeout": 2})
    a.start()
    # A went to s1 (so B starts at s2) and is held there for 0.6 s.
    cluster.wait_for(lambda: s1.received == ["Task.Get"], what="A's call at s1")
    start = time.monotonic()
    reply = client.call("Task.Get", {"id": "t"}, timeout=2, budget=20)  # s2 first, then s1
    elapsed = time.monotonic() - start
    a.join(3)
    assert reply["task"]["id"] == "t"
    assert elapsed < 3.0, f"B waited {elapsed:.1f} s"
    assert sorted(c.server for c in cluster.calls_of("Task.Get")) == ["s1", "s1", "s2"]
    client.close()
