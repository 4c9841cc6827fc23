// Package rpc is rctl's msgpack request/response protocol: the server side
// (endpoints, forwarding to the leader, linearizable and stale reads,
// blocking queries), the client side (pipelined connections, a pool, and a
// Client that fails over across servers), and the stable error codes.
//
// The wire format is specified in docs/rpc.md; that page, not this code, is
// the contract other languages implement (the Python agent does).
//
// # Contract for endpoints
//
// Before any endpoint runs, Server.handle authorizes the call (auth.go):
// every method declares who may call it, from the connection's
// certificate and the request's ACL token; refusals are permission_denied
// and change nothing. Every endpoint then follows the same shape:
//
//  1. decode and check its arguments (invalid_argument, nothing changed);
//  2. writes and linearizable reads call s.forward first: on a follower the
//     call goes to the leader and its answer is returned unchanged;
//  3. writes propose exactly one fsm entry, stamped here with the time and,
//     for Task.Add without an id, a random id — the fsm never reads clocks
//     or randomness. The leader first runs the fsm's own checks on the
//     entry against its state (fsm.Check): a write the fsm would refuse
//     never reaches the log;
//  4. linearizable reads pass the Backend's ReadBarrier (leadership
//     confirmed by a quorum after the read arrived, state applied up to the
//     commit index seen then); stale reads read the local fsm.
//
// # The Backend
//
// rpc does not touch Raft. The cluster package provides a Backend
// (backend.go): a read-only view of the raft state and configuration, a
// leader-change signal, and intents — Propose, ReadBarrier, AddServer,
// RemoveServer, Restore, TransferLeadership — whose errors are already
// *Error values (cluster/consensus.go maps raft's). Membership checks
// that need only the view (is the address taken, is the target a voter)
// stay in the endpoints.
//
// Errors leave endpoints as *Error with a documented Code; toError maps fsm
// refusals, deadlines and network errors onto codes at the edge.
package rpc
