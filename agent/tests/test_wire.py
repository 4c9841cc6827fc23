from __future__ import annotations

import socket
import struct
import threading
import time

import msgpack
import pytest
from fakeserver import FakeCluster

from rctl_agent.wire import (
    MAX_FRAME,
    CallAbandoned,
    CallTimeout,
    Connection,
    RpcError,
    TransportError,
    decode_body,
    encode_frame,
    parse_address,
)


def test_frame_is_length_prefixed_msgpack_with_str_and_bin() -> None:
    frame = encode_frame({"seq": 7, "method": "X", "args": {"s": "é", "b": b"\x00\xff"}})
    (length,) = struct.unpack(">I", frame[:4])
    assert length == len(frame) - 4
    body = frame[4:]
    # str is msgpack str (0xa0-0xbf / 0xd9..), bytes are msgpack bin (0xc4..)
    assert b"\xc4\x02\x00\xff" in body
    assert decode_body(body) == {"seq": 7, "method": "X", "args": {"s": "é", "b": b"\x00\xff"}}


def test_oversized_frame_refused() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        encode_frame(b"x" * (MAX_FRAME + 1))


@pytest.mark.parametrize(
    ("addr", "expected"),
    [
        ("10.0.1.5:50051", ("10.0.1.5", 50051)),
        ("host.example:1", ("host.example", 1)),
        ("[::1]:50051", ("::1", 50051)),
    ],
)
def test_parse_address(addr: str, expected: tuple[str, int]) -> None:
    assert parse_address(addr) == expected


@pytest.mark.parametrize("addr", ["nohost", ":50051", "h:0", "h:70000", "h:port"])
def test_parse_address_rejects(addr: str) -> None:
    with pytest.raises(ValueError):
        parse_address(addr)


def test_error_map_becomes_rpc_error(cluster: FakeCluster) -> None:
    follower = cluster.servers[1]
    conn = Connection(follower.addr)
    try:
        with pytest.raises(RpcError) as info:
            conn.call("Node.Heartbeat", {"node_id": "n1"}, timeout=1)
        err = info.value
        assert err.code == "not_leader"
        assert err.leader_id == "s0"
        assert err.leader_addr == cluster.servers[0].addr
        assert err.message
    finally:
        conn.close()


def test_pipelined_calls_matched_by_seq(cluster: FakeCluster) -> None:
    """Responses arrive out of order; each caller still gets its own."""
    leader = cluster.servers[0]
    conn = Connection(leader.addr)
    cluster.add_task("slow")
    cluster.add_task("fast")
    results: dict[str, object] = {}

    def get(tid: str) -> None:
        results[tid] = conn.call("Task.Get", {"id": tid}, timeout=2)["task"]["id"]

    leader.delay = 0.3
    slow = threading.Thread(target=get, args=("slow",))
    slow.start()
    # Arrived: its delay is fixed at 0.3 s whatever leader.delay becomes.
    cluster.wait_for(lambda: leader.received == ["Task.Get"], what="the slow call at the server")
    leader.delay = 0.0
    get("fast")
    assert "slow" not in results  # the fast answer overtook the slow one
    slow.join(2)
    assert results == {"slow": "slow", "fast": "fast"}
    conn.close()


def test_timeout_closes_connection(cluster: FakeCluster) -> None:
    leader = cluster.servers[0]
    leader.mode = "blackhole"
    conn = Connection(leader.addr)
    start = time.monotonic()
    with pytest.raises(CallTimeout):
        conn.call("Task.Get", {"id": "x"}, timeout=0.1, grace=0.1)
    assert time.monotonic() - start < 1.0
    assert conn.closed
    with pytest.raises(TransportError) as info:
        conn.call("Task.Get", {"id": "x"}, timeout=0.1)
    assert info.value.maybe_sent is False


def test_abandon_fails_the_method_s_calls_and_keeps_the_connection(cluster: FakeCluster) -> None:
    leader = cluster.servers[0]
    conn = Connection(leader.addr)
    leader.delay = 0.5  # the calls below wait at the server
    errors: dict[str, BaseException] = {}

    def call(method: str, args: dict[str, str]) -> None:
        try:
            conn.call(method, args, timeout=5)
        except BaseException as e:
            errors[method] = e

    threads = [
        threading.Thread(target=call, args=("Node.Heartbeat", {"node_id": "n1"})),
        threading.Thread(target=call, args=("Task.Get", {"id": "x"})),
    ]
    for t in threads:
        t.start()
    cluster.wait_for(lambda: len(leader.received) == 2, what="both calls at the server")
    assert conn.abandon("Node.Heartbeat") == 1
    threads[0].join(1)
    assert isinstance(errors.get("Node.Heartbeat"), CallAbandoned)
    threads[1].join(5)
    assert isinstance(errors.get("Task.Get"), RpcError)  # answered (not_found), not abandoned
    assert not conn.closed  # the heartbeat's late answer was dropped, nothing broke
    leader.delay = 0.0
    with pytest.raises(RpcError):
        conn.call("Task.Get", {"id": "x"}, timeout=2)
    conn.close()


def test_connect_refused_is_transport_error() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(TransportError) as info:
        Connection(f"127.0.0.1:{port}", connect_timeout=0.5)
    assert info.value.maybe_sent is False


def test_server_drop_fails_pending_call(cluster: FakeCluster) -> None:
    leader = cluster.servers[0]
    leader.mode = "drop"
    conn = Connection(leader.addr)
    with pytest.raises(TransportError) as info:
        conn.call("Task.Get", {"id": "x"}, timeout=2)
    assert info.value.maybe_sent


def test_request_envelope_on_the_wire() -> None:
    """What the client writes: 0x02, then {seq, method, args, timeout_ms}."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    seen: dict[str, object] = {}

    def serve() -> None:
        c, _ = ls.accept()
        seen["byte"] = c.recv(1)
        n = struct.unpack(">I", c.recv(4))[0]
        req = msgpack.unpackb(c.recv(n), raw=False)
        seen["req"] = req
        body = msgpack.packb({"seq": req["seq"], "error": None, "result": {"ok": True}})
        c.sendall(struct.pack(">I", len(body)) + body)
        c.close()

    t = threading.Thread(target=serve)
    t.start()
    conn = Connection(f"127.0.0.1:{ls.getsockname()[1]}")
    assert conn.call("Status.Get", None, timeout=2.5) == {"ok": True}
    t.join(2)
    ls.close()
    assert seen["byte"] == b"\x02"
    req = seen["req"]
    assert isinstance(req, dict)
    assert req["method"] == "Status.Get" and req["args"] is None
    assert req["timeout_ms"] == 2500 and isinstance(req["seq"], int)
    conn.close()
