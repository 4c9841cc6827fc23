// Package cluster is the rctl server: it opens and locks the data
// directory, runs hashicorp/raft over raft-boltdb/v2 (log and stable store)
// and a file snapshot store, multiplexes Raft and RPC on one TCP port, and
// runs the leader's duties.
//
// # Lifecycle
//
//  1. New validates the Config, locks <data-dir>/rctl.lock (a second server
//     on the same directory is refused) and checks <data-dir>/node-id.
//  2. If raft.HasExistingState finds nothing, the server bootstraps: from
//     Config.Peers (every server gets the same list, so running it on all is
//     safe) or as a one-server cluster; with Config.Join it does not
//     bootstrap but asks the listed servers to add it, retrying until in.
//  3. Each server records its labels (cloud, region) in the manifest
//     through the leader, so listings show them even for servers that are
//     down.
//  4. On gaining leadership, a server waits until its manifest holds every
//     entry of earlier terms in its log before it serves linearizable
//     reads and node heartbeats (LeaderReady; server.go's leaderLoop): at
//     once when it had applied its whole log, else until its term's first
//     entry commits. A read then confirms leadership with a quorum and
//     waits until the manifest has applied every command up to the commit
//     index it saw (ReadBarrier).
//  5. Shutdown hands leadership over (TransferOnShutdown), stops RPC and
//     raft, and closes every connection it accepted.
//
// # Raft behind the RPC layer
//
// cluster is the only package that calls hashicorp/raft. The RPC layer
// sees the Server as an rpc.Backend (consensus.go): the raft state and
// configuration as plain values, and intents — Propose, ReadBarrier,
// AddServer, RemoveServer, Restore — that map raft's errors to rpc codes.
//
// # The leader's duties
//
// While a server leads and its leadership is established (leader.go):
//   - liveness (liveness.go): node heartbeats are held in memory, never
//     written to the log; a ticker judges them and proposes only status
//     changes (degraded after two intervals without a heartbeat,
//     unreachable after the TTL, which requeues the node's tasks);
//   - the scheduler (leader.go, schedule): a round after every manifest
//     change and every scheduleEvery, assigning the oldest pending tasks
//     the nodes with room can take;
//   - placement (placement.go): moves leadership to the preferred cloud
//     once the cluster has settled, with a backoff between attempts;
//   - retention (retire.go): retires finished tasks by age and count.
//
// # Succession
//
// Followers do not wait for raft's election timer when the leader is lost
// (succession.go). A gone process (its raft connection closes and its port
// refuses) or a leader silent for the profile's SuccessionSilence, confirmed
// by a quorum of voters, makes a successor stand at once: every server
// computes the same order of successors (voters of the preferred leader
// cloud first, then the others, each group by id), and on silence the
// confirming voters name the silent voter with the longest log. Later
// successors stand one successionGap later each, if nothing moved on. A
// first successor whose log may be behind (logBehind) or that holds too
// few ready connections to collect its votes without dialling (coldVotes)
// asks the second successor to stand at once instead. warm.go keeps
// raft and RPC connections to every peer open, so the election and the
// first commits do not pay for TLS handshakes.
//
// # Time
//
// The leader's duties read and wait on Config.Clock (clock.go), one clock
// that tests replace with a fake one. Raft, succession, warm connections
// and forwarding keep real time, since they measure raft's own timers.
// Raft timeouts come from named profiles (lan, wan) in timing.go, chosen
// for the network's round-trip times; docs/operations.md gives the reasons.
// Other durations are named constants next to their use.
//
// # Port multiplexing and security
//
// The first byte of each accepted connection selects TLS (0x16, a
// ClientHello), then inside TLS Raft (0x01), RPC (0x02) or a snapshot
// stream (0x03); plaintext 0x01-0x03 are served only with --insecure
// (mux.go; docs/rpc.md). Only server certificates open Raft streams.
// Connections are capped per IP and in total, with deadlines until they
// are routed. raftguard.go sits between the transport and raft: it refuses
// terms that would overflow or jump, and a TimeoutNow unless it comes from
// the leader or this server has lost its leader itself (docs/security.md).
package cluster
