package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/rctl-dev/rctl/internal/termsafe"
	"github.com/rctl-dev/rctl/rpc"
)

func newOperatorCommand(g *globals) *cobra.Command {
	op := &cobra.Command{Use: "operator", Short: "Cluster maintenance: raft membership and leadership"}
	r := &cobra.Command{Use: "raft", Short: "Inspect and change the raft configuration"}
	op.AddCommand(r)
	op.AddCommand(newOperatorHealthCommand(g))
	op.AddCommand(newOperatorCheckDiskCommand(g))
	op.AddCommand(newOperatorRTTCommand(g))

	r.AddCommand(&cobra.Command{
		Use:   "list-peers",
		Short: "List the raft configuration as the contacted server knows it",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error {
			var reply rpc.RaftPeersReply
			if err := g.call(rpc.MethodRaftPeers, struct{}{}, &reply); err != nil {
				return err
			}
			if g.json() {
				return g.printJSON(&reply)
			}
			t := newTable(g.stdout, "ID", "ADDRESS", "SUFFRAGE", "LEADER")
			for _, p := range reply.Peers {
				t.row(p.ID, p.Address, p.Suffrage, fmt.Sprint(p.Leader))
			}
			return t.flush()
		},
	})
	r.AddCommand(&cobra.Command{
		Use:   "remove-peer ID",
		Short: "Remove a server from the raft configuration (for a server that is gone for good)",
		Args:  exactArgs(1, "one server id"),
		RunE: func(_ *cobra.Command, a []string) error {
			if err := g.call(rpc.MethodRaftRemovePeer, &rpc.RemovePeerArgs{ID: a[0]}, nil); err != nil {
				return err
			}
			if g.json() {
				return g.printJSON(map[string]string{"removed": a[0]})
			}
			fmt.Fprintf(g.stdout, "removed %s\n", a[0])
			return nil
		},
	})
	r.AddCommand(&cobra.Command{
		Use:   "transfer-leader [ID]",
		Short: "Hand leadership to server ID, or to the most up-to-date voter when ID is omitted",
		Args:  maxArgs(1, "one server id"),
		RunE: func(_ *cobra.Command, a []string) error {
			args := rpc.TransferArgs{}
			if len(a) == 1 {
				args.ID = a[0]
			}
			var reply rpc.TransferReply
			if err := g.call(rpc.MethodRaftTransfer, &args, &reply); err != nil {
				return err
			}
			if g.json() {
				return g.printJSON(&reply)
			}
			fmt.Fprintf(g.stdout, "leader is now %s (%s)\n", termsafe.Field(reply.LeaderID), termsafe.Field(reply.LeaderAddr))
			return nil
		},
	})
	return op
}
