"""Ready connections (ClusterClient.keep_ready): an open connection to every
known server, kept off the call path, so a new leader is reached without a
TCP and TLS handshake (docs/rpc.md, "Following elections")."""

from __future__ import annotations

import threading
import time

from conftest import make_client, wait_until
from fakeserver import FakeCluster
from test_client import heartbeat, register
from test_follow import held_watch

from rctl_agent.client import READY_STABLE, ClusterClient

TICK = 0.05  # the tests' ready tick: pauses double from here


def all_ready(client: ClusterClient, cluster: FakeCluster) -> None:
    want = sorted(s.addr for s in cluster.servers)
    wait_until(lambda: sorted(client.ready_servers()) == want, what=f"ready connections to {want}")


def test_keep_ready_opens_one_connection_to_every_server_without_a_call(
    cluster: FakeCluster,
) -> None:
    client = make_client([s.addr for s in cluster.servers])
    try:
        assert client.ready_servers() == []
        client.keep_ready(TICK)
        all_ready(client, cluster)
        time.sleep(5 * TICK)  # ticks that find every connection open dial nothing
        assert [s.accepts for s in cluster.servers] == [1, 1, 1]
        assert [s.received for s in cluster.servers] == [[], [], []]
    finally:
        client.close()


def test_a_connection_the_server_closed_is_opened_again(cluster: FakeCluster) -> None:
    client = make_client([s.addr for s in cluster.servers])
    try:
        client.keep_ready(TICK)
        all_ready(client, cluster)
        s1 = cluster.servers[1]
        s1.drop_connections()  # the server's idle timeout
        cluster.wait_for(lambda: s1.accepts == 2, what="s1's connection opened again")
        all_ready(client, cluster)
        s1.kill()  # a restart
        wait_until(lambda: s1.addr not in client.ready_servers(), what="s1's connection closed")
        s1.revive()
        cluster.wait_for(lambda: s1.accepts == 3, what="s1's connection opened after its restart")
        all_ready(client, cluster)
    finally:
        client.close()


def test_a_connection_that_held_is_reopened_without_a_pause_after_each_crash(
    cluster: FakeCluster,
) -> None:
    """Servers killed one after another every few seconds (overlapping
    failures) must not leave the agent without a ready connection: a
    connection that held READY_STABLE ticks and then closed is no failure,
    so every reopen comes within a tick or two.  Counted as failures, the
    pauses would double, 1, 2, 4, 8 ticks, and the last reopen below would
    take 8 ticks or more."""
    HELD = 5  # ticks each connection lives: killed every 5 s with a 1 s tick
    assert READY_STABLE < HELD
    s1 = cluster.servers[1]
    client = make_client([s.addr for s in cluster.servers])
    try:
        client.keep_ready(TICK)
        all_ready(client, cluster)
        for n in range(2, 6):
            time.sleep(HELD * TICK)  # it held, then the server crashed
            s1.kill()
            wait_until(lambda: s1.addr not in client.ready_servers(), what="s1's connection closed")
            s1.revive()
            t0 = time.monotonic()
            what = f"s1's connection opened again ({n})"
            cluster.wait_for(lambda n=n: s1.accepts == n, what=what)
            took = time.monotonic() - t0
        # Within two ticks of the restart (a pause of 8 ticks on the
        # fourth crash if each counted as a failure), plus scheduling slack.
        assert took < 5 * TICK, took
    finally:
        client.close()


def test_a_server_that_closes_at_once_is_retried_after_a_doubling_pause(
    cluster: FakeCluster,
) -> None:
    s1 = cluster.servers[1]
    s1.close_on_accept = True  # as a server refusing this client's certificate
    client = make_client([s.addr for s in cluster.servers])
    try:
        client.keep_ready(TICK)
        window = 1.0
        time.sleep(window)
        # One try per tick would be 20; pauses of 1, 2, 4, 8 … ticks after
        # each failure allow 5 (and scheduling slack, a 6th).
        assert 1 <= s1.accepts <= 6, s1.accepts
        # The others were not held back by it.
        assert [cluster.servers[0].accepts, cluster.servers[2].accepts] == [1, 1]
    finally:
        client.close()


def test_a_new_leader_is_reached_on_its_ready_connection(cluster: FakeCluster) -> None:
    """The heartbeat after an election goes out on the connection opened
    before it: the new leader accepts no connection for it."""
    client = make_client([s.addr for s in cluster.servers])
    try:
        register(client)
        heartbeat(client)
        client.keep_ready(TICK)
        all_ready(client, cluster)
        watcher = threading.Thread(target=client.watch_leader, args=(5.0,), daemon=True)
        watcher.start()
        held_watch(cluster)
        # The new leader is the follower not holding the watch: the client
        # called it never, so only a ready connection can be open to it.
        new = next(s for s in cluster.servers[1:] if cluster.held[s.id] == 0)
        assert new.received == []
        accepts = new.accepts
        cluster.set_leader(new)
        watcher.join(5.0)
        assert client.leader == new.addr
        heartbeat(client)
        assert new.received == ["Node.Heartbeat"]
        assert new.accepts == accepts == 1
    finally:
        client.close()


def test_close_ends_the_ready_connections(cluster: FakeCluster) -> None:
    client = make_client([s.addr for s in cluster.servers])
    client.keep_ready(TICK)
    all_ready(client, cluster)
    client.close()
    assert client.ready_servers() == []
    s1 = cluster.servers[1]
    s1.drop_connections()
    time.sleep(5 * TICK)
    assert s1.accepts == 1  # nothing dialled after close

    def ended() -> bool:
        return not any(t.name == "rctl-ready-conns" for t in threading.enumerate())

    wait_until(ended, what="the ready thread to end")


def test_a_server_that_cannot_be_reached_is_tried_every_tick(cluster: FakeCluster) -> None:
    """A refused connect costs the server nothing: no doubling pause, so a
    restarted server has its connection back within a tick."""
    client = make_client([s.addr for s in cluster.servers])
    try:
        client.keep_ready(TICK)
        all_ready(client, cluster)
        s1 = cluster.servers[1]
        s1.kill()
        time.sleep(40 * TICK)  # refused all along; doubling pauses: the next try 23 ticks on
        s1.revive()
        t0 = time.monotonic()
        cluster.wait_for(lambda: s1.accepts == 2, what="s1's connection opened after its restart")
        assert time.monotonic() - t0 < 10 * TICK
    finally:
        client.close()
