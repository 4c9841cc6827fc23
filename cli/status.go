package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/rctl-dev/rctl/internal/humanize"
	"github.com/rctl-dev/rctl/internal/termsafe"
	"github.com/rctl-dev/rctl/rpc"
)

func newStatusCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the raft state of the server at --addr (the first one that answers)",
		Long: `Show how one server sees itself: its raft state, the leader it follows, term,
commit and applied index, and how long ago it heard from the leader. Fields in
json: id, address, cloud, region, state, leader_id, leader_addr, term,
commit_index, applied_index, last_index, last_contact_ms (-1: never),
last_leader_change_ms, num_peers, version.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error {
			var st rpc.StatusReply
			if err := g.call(rpc.MethodStatus, &rpc.StatusArgs{}, &st); err != nil {
				return err
			}
			if g.json() {
				return g.printJSON(&st)
			}
			w := g.stdout
			fmt.Fprintf(w, "id:            %s\n", termsafe.Field(st.ID))
			fmt.Fprintf(w, "address:       %s\n", termsafe.Field(st.Address))
			if st.Cloud != "" || st.Region != "" {
				fmt.Fprintf(w, "cloud/region:  %s/%s\n", termsafe.Field(dash(st.Cloud)), termsafe.Field(dash(st.Region)))
			}
			fmt.Fprintf(w, "state:         %s\n", termsafe.Field(st.State))
			fmt.Fprintf(w, "leader_id:     %s\n", termsafe.Field(dash(st.LeaderID)))
			fmt.Fprintf(w, "leader_addr:   %s\n", termsafe.Field(dash(st.LeaderAddr)))
			fmt.Fprintf(w, "term:          %d\n", st.Term)
			fmt.Fprintf(w, "commit_index:  %d\n", st.CommitIndex)
			fmt.Fprintf(w, "applied_index: %d\n", st.AppliedIndex)
			lc := "now (leader)"
			if st.State != "leader" {
				lc = msOrDash(st.LastContactMS) + " ago"
				if st.LastContactMS < 0 {
					lc = "never"
				}
			}
			fmt.Fprintf(w, "last_contact:  %s\n", lc)
			if st.LastLeaderChangeMS > 0 {
				fmt.Fprintf(w, "leader_since:  %s ago\n", age(time.Since(time.UnixMilli(st.LastLeaderChangeMS))))
			}
			return nil
		},
	}
}

func newMembersCommand(g *globals) *cobra.Command {
	var stale bool
	cmd := &cobra.Command{
		Use:   "members",
		Short: "List every server: labels, suffrage, state, leader, last contact and replication lag",
		Long: `List every Raft server. The leader probes each server, so state, last contact
(how long ago the server heard from the leader), lag (log entries its applied
index trails the leader's last index) and rtt (the round trip from the leader,
the least of its last few probes) are live. A warning line follows when the
voters' layout cannot survive the loss of one cloud (e.g. 3 AWS + 3 GCP), or
when a round trip is longer than the --timing profile is made for.
With --stale the contacted server answers alone, without probes.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error {
			var reply rpc.MembersReply
			if err := g.call(rpc.MethodMembers, &rpc.MembersArgs{Stale: stale}, &reply); err != nil {
				return err
			}
			if g.json() {
				return g.printJSON(&reply)
			}
			t := newTable(g.stdout, "ID", "ADDRESS", "CLOUD", "REGION", "SUFFRAGE", "STATE", "LEADER", "LAST_CONTACT", "LAG", "RTT")
			for _, m := range reply.Members {
				lag := "-"
				if m.Lag >= 0 {
					lag = fmt.Sprint(m.Lag)
				}
				rtt := "-"
				if m.RTTMS >= 0 {
					rtt = humanize.Millis(m.RTTMS)
				}
				t.row(m.ID, m.Address, dash(m.Cloud), dash(m.Region), m.Suffrage, m.State, fmt.Sprint(m.Leader), msOrDash(m.LastContactMS), lag, rtt)
			}
			if err := t.flush(); err != nil {
				return err
			}
			for _, w := range reply.Warnings {
				fmt.Fprintf(g.stdout, "WARNING: %s\n", termsafe.Field(w))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&stale, "stale", false, "answer from the contacted server without the leader's probes")
	return cmd
}
