// Package fault is rctl's fault harness: it runs real `rctl serve`
// processes and real Python node agents, each in its own network
// namespace, on an emulated two-cloud network (intra-cloud RTT ≈ 25 ms,
// AWS↔GCP RTT ≈ 243 ms), injects crashes, pauses, partitions, loss and
// latency spikes, records what clients and agents saw and checks it.
//
// The scenarios that use it live in e2e/fault (one test each, each
// logging its figures, plus a randomized chaos session that writes a
// report); this package holds the machinery and its own tests. Both need
// root, ip(8) and /dev/net/tun, and skip with a message saying so
// otherwise (Requirements, SkipUnlessCapable). The unit tests of the
// switch, of the linearizability model and list checks and of the job
// ledger checks need nothing and always run (and, unlike the namespace
// machinery, build on any OS); those of the chaos report and the job
// command need Linux only.
//
// # Topology (topology.go, netns_linux.go, tap_linux.go, switch.go)
//
// NewNetwork creates one network namespace per node ("rf<pid>-<n>-aws1"
// via `ip netns add`) with a single interface, eth0, which is a TAP device
// whose other end is a port of a user-space Ethernet switch running in
// the test process. Nodes of the first cloud named get 10.77.1.11,
// 10.77.1.12, …, the second cloud 10.77.2.11, … (all /16, one L2
// segment, permanent ARP entries so a cut link drops silently, as in a
// VPC). Every network also has an observer node, "ops" (10.77.0.2), whose
// links have no delay and are never cut: the harness watches servers
// through it whatever the faults, like a management network.
//
// The switch delays each frame by the one-way delay of its link (half the
// configured RTT, chosen by the source and destination clouds, with
// uniform jitter; NetConfig, DefaultNet), keeping frames of one direction
// in order, and drops frames of cut links or by random loss. Partitions
// are cuts in the switch, so no iptables rule is needed.
//
// Why a switch and not NFQUEUE: DESIGN.md allows both (this kernel has
// no netem). The machine the harness was written on has neither
// iptables nor nft installed, and the switch needs nothing beyond `ip`;
// it also makes bridge partitions, one-way cuts, loss and latency spikes
// one line each, and its logic is unit-tested without root. The cost:
// every frame crosses the test process (a few thousand frames a second
// at most here, well within budget) and the emulated RTTs come out about
// 1–2 ms above the configured values (timer granularity), measured:
// 26–28 ms for 25 ms, 244–247 ms for 243 ms.
//
// Because each network lives entirely in its own namespaces and the
// switch, concurrent runs on one machine reuse the same addresses without
// meeting; only namespace names must differ, and they carry the pid and a
// sequence number.
//
// # Cleanup
//
// NewNetwork registers a t.Cleanup that kills the servers, closes the
// switch (the TAP devices are not persistent: they vanish with their file
// descriptors) and deletes every namespace after killing any process
// still in it (`ip netns pids`). Processes started in namespaces also get
// SIGKILL if the test process dies (Pdeathsig). Before building a network,
// CleanupLeftovers removes namespaces left by crashed runs: those named
// rf<pid>-… whose pid is gone. Namespaces of live runs are never touched.
// Nothing is created in the root namespace except, for a moment, each TAP
// device before it moves into its namespace.
//
// # Servers and clients (cluster.go, client.go)
//
// StartCluster builds the network and starts one `rctl serve --timing
// wan --cloud aws|gcp` per server node, through `ip netns exec` (which
// execs, so the process's pid is rctl's). Shape(3, 2) and Shape(3, 3) are
// the usual server sets; ClientsPerCloud adds the client namespaces
// "c-aws" and "c-gcp". Data dirs and logs go to Cluster.Dir, kept and
// named in the test log when the test fails, removed otherwise.
//
// The test process talks to the cluster from inside namespaces: Netns.Do
// runs a function on an OS thread that has entered a namespace (setns),
// so sockets it creates belong there; Netns.Dial is an rpc.DialFunc built
// on it. Client is a failover RPC client living in a client namespace;
// Cluster.Status and ObserverCall go through the observer.
//
// # Node agents and jobs (agent.go, jobs.go, ledger.go, agentcheck.go)
//
// ClusterConfig.Agents (e.g. AgentsPerCloud(2): "a-aws1", "a-gcp1", …)
// adds one namespace per node agent, in its cloud; StartAgents runs the
// real Python agent (ClusterConfig.AgentBin, found by FindAgentBin:
// $RCTL_AGENT_BIN or agent/.venv/bin/rctl-agent) in each, with its name as
// node id, its own cloud's servers first in --servers, capacity 2 and a
// state dir in Cluster.Dir. Agent.Kill kills it and every task it runs
// (every process in its namespace), like its VM dying. Partitions,
// CloudSplit, loss and spikes apply to agents as to any node (they are
// named in partition groups like clients).
//
// StartJobs submits shell tasks ("job-<n>", no cloud constraint, 10
// attempts) at a steady pace from both clouds, retrying each add with its
// id until acknowledged or OpTimeout; Stop returns the acknowledged and
// the uncertain ones. Each job sleeps 0.5 s and appends one line to a
// ledger file, "<task> <attempt> <node> <start ns> <end ns>" (JobCommand;
// the agent passes RCTL_TASK_ID and RCTL_TASK_ATTEMPT, the harness sets
// RCTL_FAULT_NODE in the agent's environment). All namespaces share the
// file system and the clock, so the ledger and the manifest's event times
// compare directly. The checks, once the network is healed:
//
//  1. Cluster.WaitJobsDone: every acknowledged job ends complete (an
//     uncertain one complete or absent); a failed job fails the check.
//  2. CheckJobRuns: no two runs of one job overlap in time; every run is
//     the attempt the manifest gave to that node (attempt k is the k-th
//     "assigned" event in the task's history), started after that
//     assignment and ended before the manifest assigned the task to the
//     next node (a task is never run by one live node while another holds
//     it); the manifest never assigned a task another node held; every
//     complete job has the run that completed it.
//  3. Cluster.WaitAgentsFollowLeader: Node.List on the current leader
//     shows every running agent healthy with heartbeat_age_ms ≥ 0 (-1
//     means this leader never heard from it) and within a bound.
//
// # Nemesis (nemesis.go, chaos.go)
//
// Kill (kill -9), Pause/Resume (SIGSTOP/SIGCONT), Restart (same data
// dir), Isolate, Partition (any groups; a node in two groups bridges
// them), Bridge, CloudSplit, Heal, Loss and LinkLoss (a probability per
// link, split over its two ends), Spike (extra one-way delay). Each is
// noted on the monitor's timeline.
//
// Nemesis.Chaos runs a randomized session: one fault at a time, chosen
// by the nemesis's seed with the weights of ChaosKinds (kill, pause or
// isolate the leader or a random server, a minority partition, a cloud
// split, a bridge, 5–15 % loss per link, a 100–600 ms spike on the
// leader, a server or a cloud, an agent kill, kill -9 of every server),
// held 2–10 s, healed, then a wait for a stable cluster (recorded per
// fault as "settled") and a 1–5 s pause. Calm undoes whatever is left.
// ChaosReport renders a session as Markdown: checks, the faults with
// their timing, the elections the monitor saw (and during which fault),
// figures and the monitor's timeline. The seed fixes the choices (which
// fault, which role, which parameters), not the cluster's timing, so two
// runs with one seed inject the same sequence against different leaders.
//
// # Monitor (monitor.go)
//
// Cluster.StartMonitor polls every server's Status.Get through the
// observer (every 25 ms in the scenarios) and keeps a timeline of state
// changes. It answers "who leads" (WaitLeader, WaitStable, WaitState),
// checks that no term had two leaders (CheckOneLeaderPerTerm), and sums
// up a window (StabilitySince): the elections seen, every observation of
// a server without a leader (a follower that knows none, or a candidate:
// pre-vote hides these from the term, so they are counted apart, as
// DESIGN.md asks), and the oldest last contact each follower reported.
// Leaderless measures the time no server was seen leading.
//
// # Workload, history and checker (workload.go, history.go, model.go, listcheck.go, checker.go, pulse.go)
//
// StartWorkload runs clients that add, read (linearizable Task.Get), list
// (Task.List, linearizable or stale) and cancel tasks on a small, rolling
// set of ids, and records every operation with its invoke and return
// times in a History; a list records the status of every workload task it
// showed and its index. Tasks carry a cloud constraint no node has, so
// only these operations change them. A write that fails without a
// definite answer is recorded as unknown: it may take effect any time
// after its invocation, or never. AddOp, GetOp, CancelOp and ListOp run
// one recorded operation, for targeted probes.
//
// CheckLinearizable checks a history against TaskModel with porcupine,
// partitioned by task. A linearizable list reads all tasks at one
// instant, which a per-task model cannot express; Operations projects it
// onto every task it may say something about, as a read with the list's
// times (the task's status in it, or not_found). Projection is sound
// (every violation found is real) but not complete, so CheckLists adds
// real-time rules over all tasks at once: any list shows only the past
// (no task, and no cancel, before its add or cancel was invoked); a
// linearizable list also shows all of it (every add and cancel
// acknowledged before the list was invoked), never less than a
// linearizable read or list that returned before it was invoked saw, and
// never a lower index. On a violation CheckLinearizable writes
// history.jsonl and porcupine's history.html (open it in a browser) and
// returns an error naming them and what went wrong. Cluster.WaitConverged
// compares every server's local snapshot byte for byte (stale snapshot
// save, then the snapshot's own SHA-256); CheckAcknowledged verifies that
// no acknowledged add or cancel is missing on any server.
//
// FirstWrite times "the cluster accepts writes again": probes next to
// each server start a fresh write every 100 ms and the first
// acknowledgement wins, so the figure does not depend on how long one
// call is held by a server that cannot answer. A Pulse writes
// continuously (a re-add of one task every interval through a failover
// client, a committed no-op) and reports, for any window, latencies and
// the longest stretch without an acknowledged write.
//
// # Running
//
// As root, from the repository root:
//
//	go test -race -count=1 -v ./fault/ ./e2e/fault/
//
// e2e/fault builds rctl once (without -race: five servers under the race
// detector on two cores would measure the detector) or uses RCTL_BIN, and
// uses the node agent of `make agent-venv` or RCTL_AGENT_BIN.
// RCTL_FAULT_ROUNDS sets the number of leader kills (default 10),
// RCTL_FAULT_KEEP=1 keeps every server's data dir and log even when the test
// passes, RCTL_FAULT_LOG_LEVEL (e.g. debug) sets the servers' --log-level
// (default info). RCTL_FAULT_STABLE the fault-free run (default 3m), RCTL_FAULT_SCALE
// stretches the loss and spike phases. The chaos session runs only when
// asked:
//
//	RCTL_CHAOS_SEED=7 RCTL_CHAOS_DURATION=10m go test -count=1 -timeout 0 -run '^TestChaos$' -v ./e2e/fault/
//
// (`make chaos SEED=7 DURATION=10m`), and prints the path of its report.
package fault
