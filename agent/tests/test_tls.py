"""Mutual TLS to the servers, and what the agent trusts without it.

Certificates come from ``rctl tls`` ($RCTL_BIN, the ``certs`` fixture); the
servers are fake but speak real TLS on real sockets and require a client
certificate from the cluster CA (fakeserver.server_context).
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from pathlib import Path

import pytest
from conftest import AgentProcess, Certs, make_client
from fakeserver import FakeCluster, server_context

from rctl_agent.cli import UsageError, main, parse_settings
from rctl_agent.client import ClusterUnavailable
from rctl_agent.tls import ClientTLS, TLSConfigError, read_certificate
from rctl_agent.wire import Connection, TransportError


def tls_cluster(
    certs: Certs,
    cert: tuple[Path, Path] | None = None,
    n: int = 3,
    max_version: ssl.TLSVersion | None = None,
) -> FakeCluster:
    crt, key = cert or certs.make("server", "s0")
    return FakeCluster(n, tls=server_context(certs.ca, crt, key, max_version=max_version))


def one_line(err: str) -> str:
    """The last stderr line (the agent's failure), checked to be its only failure line."""
    lines = [ln for ln in err.splitlines() if ln.startswith("rctl-agent: ")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# ---- over TLS ---------------------------------------------------------------


def test_certificates_from_rctl_tls_carry_the_expected_names(certs: Certs) -> None:
    server = read_certificate(certs.make("server", "s0")[0])
    assert "server.rctl" in server.dns
    assert "spiffe://rctl/server/s0" in server.uris
    agent = read_certificate(certs.make("agent", "n-tls")[0])
    assert agent.uris == ("spiffe://rctl/agent/n-tls",) and agent.common_name == "n-tls"
    assert certs.agent_tls("n-tls").node_id == "n-tls"


def test_agent_registers_heartbeats_and_reports_over_tls(certs: Certs, tmp_path: Path) -> None:
    """The real command, TLS flags only: the node id comes from the certificate,
    every call carries that identity, a task runs and is reported."""
    with tls_cluster(certs) as cluster:
        cluster.add_task("t1", "sleep", {"seconds": "0.1"}, node="n-tls")
        argv = [*certs.agent_flags("n-tls"), "--servers", cluster.servers[0].addr]
        with AgentProcess([*argv, "--state-dir", str(tmp_path)]) as agent:
            cluster.wait_for(
                lambda: len(cluster.calls_of("Node.Heartbeat")) >= 3, what="heartbeats"
            )
            cluster.wait_for(lambda: cluster.tasks["t1"]["status"] == "complete", what="t1")
            assert agent.stop() == 0, agent.stderr
        assert "Traceback" not in agent.stderr and "--insecure" not in agent.stderr
        assert cluster.calls_of("Node.Register")[0].args["id"] == "n-tls"
        assert {c.identity for c in cluster.calls} == {"agent:n-tls"}
        assert [c.method for c in cluster.calls_of("Node.Deregister")] == ["Node.Deregister"]
        assert not (tmp_path / "node-id").exists()  # the certificate names the node


def test_tls_client_follows_servers_it_learned(certs: Certs) -> None:
    """With TLS, addresses from replies are dialled: they must present a server
    certificate anyway."""
    with tls_cluster(certs) as cluster:
        s0, _, s2 = cluster.servers
        client = make_client([s0.addr], tls=certs.agent_tls("n-tls"))
        client.call("Node.Register", {"id": "n-tls", "capacity": 1}, timeout=2)
        assert client.servers == [s.addr for s in cluster.servers]
        s0.kill()
        cluster.set_leader(s2)
        client.call("Node.Heartbeat", {"node_id": "n-tls"}, timeout=2, budget=5, leader_only=True)
        assert client.leader == s2.addr
        assert cluster.calls_of("Node.Heartbeat")[-1].identity == "agent:n-tls"
        client.close()


def test_pipelined_calls_from_many_threads_share_one_tls_connection(certs: Certs) -> None:
    """One reader thread and many writers on one TLS session (an SSLSocket
    would corrupt its state here), with frames larger than a TLS record."""
    with tls_cluster(certs, n=1) as cluster:
        conn = Connection(cluster.servers[0].addr, tls=certs.agent_tls("n-tls"))
        big = "x" * 200_000
        errors: list[BaseException] = []

        def worker(i: int) -> None:
            try:
                for j in range(40):
                    meta = {"blob": big} if j % 10 == 0 else {"i": str(i)}
                    reply = conn.call("Node.Register", {"id": "n-tls", "meta": meta}, timeout=5)
                    assert reply["node"]["meta"] == meta
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == [] and not conn.closed
        assert len(cluster.calls_of("Node.Register")) == 8 * 40
        conn.close()


def test_server_acts_only_for_the_certificates_node(certs: Certs) -> None:
    """The fake server enforces what the real one does, so the other tests mean something."""
    with tls_cluster(certs, n=1) as cluster:
        conn = Connection(cluster.servers[0].addr, tls=certs.agent_tls("n-tls"))
        with pytest.raises(Exception, match="permission_denied"):
            conn.call("Node.Register", {"id": "n-other"}, timeout=2)
        assert conn.server_id == "s0"
        conn.close()


# ---- refused servers ------------------------------------------------------------


def test_server_certificate_from_another_ca_is_refused(certs: Certs) -> None:
    foreign = certs.make("server", "s0", ca="other-ca")
    with tls_cluster(certs, foreign, n=1) as cluster:
        with pytest.raises(TransportError, match="certificate verify failed"):
            Connection(cluster.servers[0].addr, tls=certs.agent_tls("n-tls"))
        assert cluster.calls == []


def test_agent_gives_up_on_a_server_from_another_ca(certs: Certs, tmp_path: Path) -> None:
    foreign = certs.make("server", "s0", ca="other-ca")
    with tls_cluster(certs, foreign, n=1) as cluster:
        argv = [*certs.agent_flags("n-tls"), "--servers", cluster.servers[0].addr]
        argv += ["--connect-timeout", "0.5", "--state-dir", str(tmp_path)]
        with AgentProcess(argv) as agent:
            assert agent.wait() == 1
        line = one_line(agent.stderr)
        assert "no rctl server reachable" in line and "certificate verify failed" in line
        assert cluster.calls == []


@pytest.mark.parametrize("role", ["agent", "operator"])
def test_peer_with_an_agent_or_operator_certificate_is_refused(certs: Certs, role: str) -> None:
    """A certificate from the cluster CA that is not a server's does not make
    its holder a server, even when it names server.rctl."""
    with tls_cluster(certs, certs.impostor(role), n=1) as cluster:
        with pytest.raises(TransportError, match="not a server certificate") as info:
            Connection(cluster.servers[0].addr, tls=certs.agent_tls("n-tls"))
        assert f"spiffe://rctl/{role}/" in str(info.value)
        assert cluster.calls == []


@pytest.mark.parametrize("role", ["agent", "operator"])
def test_peer_with_a_plain_agent_or_operator_certificate_is_refused(
    certs: Certs, role: str
) -> None:
    """As rctl tls makes them: the key usage (client only) or the missing
    server.rctl name already fails verification."""
    with tls_cluster(certs, certs.make(role, f"plain-{role}"), n=1) as cluster:
        refused = "unsuitable certificate purpose|Hostname mismatch|not a server certificate"
        with pytest.raises(TransportError, match=refused):
            Connection(cluster.servers[0].addr, tls=certs.agent_tls("n-tls"))
        assert cluster.calls == []


def test_server_refusing_our_certificate_says_why(certs: Certs) -> None:
    """In TLS 1.3 the server judges the client's certificate after the client's
    side of the handshake is done: its alert must still reach the error."""
    crt, key = certs.make("agent", "n-foreign", ca="other-ca")
    foreign = ClientTLS.load(certs.ca, crt, key)
    with tls_cluster(certs, n=1) as cluster:
        with pytest.raises(TransportError, match="alert unknown ca"):
            conn = Connection(cluster.servers[0].addr, tls=foreign)
            try:
                conn.call("Node.Register", {"id": "n-foreign"}, timeout=2)
            finally:
                conn.close()
        cluster.wait_for(lambda: cluster.servers[0].tls_errors, what="the server's refusal")
        assert "certificate verify failed" in cluster.servers[0].tls_errors[0]
        assert cluster.calls == []


def test_server_without_tls_1_3_is_refused(certs: Certs) -> None:
    crt, key = certs.make("server", "s0")
    with tls_cluster(certs, (crt, key), n=1, max_version=ssl.TLSVersion.TLSv1_2) as cluster:
        with pytest.raises(TransportError, match="(?i)version|protocol"):
            Connection(cluster.servers[0].addr, tls=certs.agent_tls("n-tls"))
        assert cluster.calls == []


# ---- startup errors -------------------------------------------------------------


@pytest.fixture
def no_agent_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in list(os.environ):
        if k.startswith("RCTL_AGENT_"):
            monkeypatch.delenv(k)


@pytest.mark.usefixtures("no_agent_env")
@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        ([], "no TLS certificates: pass --tls-ca, --tls-cert and --tls-key"),
        (["--tls-ca", "ca.crt"], "--tls-ca given without --tls-cert, --tls-key"),
        (
            ["--tls-ca", "a", "--tls-cert", "b", "--tls-key", "c", "--insecure"],
            "--insecure cannot be combined with --tls-ca, --tls-cert, --tls-key",
        ),
    ],
)
def test_missing_tls_flags_without_insecure_refuse_to_start(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--servers", "h:1", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err, err
    if not argv:
        assert "or --insecure to speak plaintext" in err


def test_insecure_and_tls_files_from_the_environment() -> None:
    s = parse_settings([], {"RCTL_AGENT_SERVERS": "h:1", "RCTL_AGENT_INSECURE": "1"})
    assert s.insecure and s.tls_files is None
    with pytest.raises(UsageError, match="RCTL_AGENT_INSECURE must be 1 or 0"):
        parse_settings([], {"RCTL_AGENT_SERVERS": "h:1", "RCTL_AGENT_INSECURE": "maybe"})
    with pytest.raises(UsageError, match="no TLS certificates"):
        parse_settings([], {"RCTL_AGENT_SERVERS": "h:1", "RCTL_AGENT_INSECURE": "0"})
    env = {
        "RCTL_AGENT_SERVERS": "h:1",
        "RCTL_AGENT_TLS_CA": "/c/ca.crt",
        "RCTL_AGENT_TLS_CERT": "/c/a.crt",
        "RCTL_AGENT_TLS_KEY": "/c/a.key",
    }
    s = parse_settings([], env)
    assert s.tls_files == (Path("/c/ca.crt"), Path("/c/a.crt"), Path("/c/a.key"))
    assert s.tls_names == ("RCTL_AGENT_TLS_CA", "RCTL_AGENT_TLS_CERT", "RCTL_AGENT_TLS_KEY")
    # The names every rctl command reads work too; the agent's own win.
    shared = {
        "RCTL_AGENT_SERVERS": "h:1",
        "RCTL_TLS_CA": "/s/ca.crt",
        "RCTL_TLS_CERT": "/s/a.crt",
        "RCTL_TLS_KEY": "/s/a.key",
    }
    s = parse_settings([], shared)
    assert s.tls_files == (Path("/s/ca.crt"), Path("/s/a.crt"), Path("/s/a.key"))
    assert s.tls_names == ("RCTL_TLS_CA", "RCTL_TLS_CERT", "RCTL_TLS_KEY")
    s = parse_settings([], {**shared, **env})
    assert s.tls_files == (Path("/c/ca.crt"), Path("/c/a.crt"), Path("/c/a.key"))


@pytest.mark.usefixtures("no_agent_env")
def test_node_id_mismatch_refuses_to_start(
    certs: Certs, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--servers", "h:1", *certs.agent_flags("n-tls"), "--node-id", "n-wrong"]
    assert main(argv) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith("rctl-agent: --node-id n-wrong does not match the node id n-tls")


@pytest.mark.parametrize(
    "case", ["missing cert", "missing key", "foreign key", "operator cert", "bad ca", "bad cert"]
)
def test_unusable_tls_files_refuse_to_start(certs: Certs, tmp_path: Path, case: str) -> None:
    crt, key = certs.make("agent", "n-tls")
    ca = certs.ca
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    needle = {
        "missing cert": "--tls-cert {crt}: cannot read it: No such file or directory",
        "missing key": "--tls-key {key}: cannot read it: No such file or directory",
        "foreign key": "--tls-key {key} is not the private key of --tls-cert {crt}",
        "operator cert": "--tls-cert {crt} is not an agent certificate",
        "bad ca": "--tls-ca {ca} is not a PEM CA certificate",
        "bad cert": "--tls-cert {crt} is not a certificate: no PEM certificate in it",
    }[case]
    if case == "missing cert":
        crt = tmp_path / "absent.crt"
    elif case == "missing key":
        key = tmp_path / "absent.key"
    elif case == "foreign key":
        key = certs.make("agent", "n-other")[1]
    elif case == "operator cert":
        crt, key = certs.make("operator", "alice")
    elif case == "bad ca":
        ca = junk
    else:
        crt = junk
    argv = ["--servers", "127.0.0.1:1", "--tls-ca", str(ca), "--tls-cert", str(crt)]
    with AgentProcess([*argv, "--tls-key", str(key), "--state-dir", str(tmp_path)]) as agent:
        assert agent.wait() == 1
    line = one_line(agent.stderr)
    assert needle.format(crt=crt, key=key, ca=ca) in line, line
    with pytest.raises(TLSConfigError):
        ClientTLS.load(ca, crt, key)


# ---- without TLS: only configured servers ------------------------------------


def test_insecure_client_ignores_learned_servers(
    cluster: FakeCluster, caplog: pytest.LogCaptureFixture
) -> None:
    """Without TLS, a `servers` list or a not_leader redirect naming an address
    outside the seeds is ignored: nothing proves who answers there."""
    caplog.set_level(logging.DEBUG, logger="rctl_agent.client")
    s0, s1, s2 = cluster.servers
    client = make_client([s0.addr])
    client.call("Node.Register", {"id": "n1", "capacity": 1}, timeout=2)
    assert client.servers == [s0.addr]
    cluster.set_leader(s1)
    with pytest.raises(ClusterUnavailable):
        client.call("Node.Heartbeat", {"node_id": "n1"}, timeout=1, budget=1, leader_only=True)
    assert len(cluster.calls_of("Node.Heartbeat")) >= 2  # retried at s0, never elsewhere
    assert (s1.accepts, s2.accepts) == (0, 0)
    ignored = [
        r.getMessage() for r in caplog.records if "ignoring server address" in r.getMessage()
    ]
    assert len(ignored) == 2  # s1 and s2, once each
    client.close()


def test_insecure_agent_never_dials_a_learned_address(cluster: FakeCluster, tmp_path: Path) -> None:
    """The real command with --insecure: the leader it is told about is not a
    configured server, so it keeps trying its own server and never dials it."""
    s0, s1, s2 = cluster.servers
    cluster.set_leader(s1)
    argv = ["--insecure", "--servers", s0.addr, "--node-id", "n-plain", "--state-dir"]
    with AgentProcess([*argv, str(tmp_path), "--log-level", "debug"]) as agent:
        cluster.wait_for(
            lambda: len(cluster.calls_of("Node.Heartbeat")) >= 3, what="heartbeat attempts"
        )
        assert agent.stop() == 0, agent.stderr
    assert cluster.calls_of("Node.Register")[0].server == "s0"
    assert {c.server for c in cluster.calls} == {"s0"}
    assert (s1.accepts, s2.accepts) == (0, 0)
    assert f"ignoring server address {s1.addr}" in agent.stderr
    assert agent.stderr.count("--insecure: talking plaintext") == 1
