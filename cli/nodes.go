package cli

import (
	"fmt"
	"sort"

	"github.com/spf13/cobra"

	"github.com/rctl-dev/rctl/rpc"
)

func newNodesCommand(g *globals) *cobra.Command {
	var (
		stale  bool
		sortBy string
	)
	cmd := &cobra.Command{
		Use:   "nodes",
		Short: "List node agents: status, heartbeat age, capacity and active tasks",
		Long: `List the worker nodes known to the manifest. Status is decided by the leader
from heartbeats: healthy, degraded (two intervals without a heartbeat) or
unreachable (past the TTL; its tasks were requeued). Heartbeat age is known
only to the leader ("-" elsewhere). JSON fields: the node's fields (id, address,
cloud, region, capacity, meta, status, registered_at, updated_at,
create_index, modify_index) plus heartbeat_age_ms and active_tasks.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error {
			switch sortBy {
			case "id", "status", "cloud", "tasks", "age":
			default:
				return usagef("--sort %q is invalid; use id, status, cloud, tasks or age", sortBy)
			}
			var reply rpc.NodeListReply
			if err := g.call(rpc.MethodNodeList, &rpc.NodeListArgs{QueryOptions: rpc.QueryOptions{Stale: stale}}, &reply); err != nil {
				return err
			}
			ns := reply.Nodes
			sort.SliceStable(ns, func(i, j int) bool {
				switch sortBy {
				case "status":
					return ns[i].Status < ns[j].Status
				case "cloud":
					return ns[i].Cloud < ns[j].Cloud
				case "tasks":
					return ns[i].ActiveTasks > ns[j].ActiveTasks
				case "age":
					return ns[i].HeartbeatAgeMS > ns[j].HeartbeatAgeMS
				}
				return ns[i].ID < ns[j].ID
			})
			if g.json() {
				return g.printJSON(ns)
			}
			t := newTable(g.stdout, "ID", "CLOUD", "REGION", "STATUS", "HEARTBEAT", "CAPACITY", "ACTIVE")
			for _, n := range ns {
				t.row(n.ID, dash(n.Cloud), dash(n.Region), string(n.Status), msOrDash(n.HeartbeatAgeMS),
					fmt.Sprint(n.Capacity), fmt.Sprint(n.ActiveTasks))
			}
			return t.flush()
		},
	}
	cmd.Flags().BoolVar(&stale, "stale", false, "answer from the contacted server's local state (no heartbeat ages)")
	cmd.Flags().StringVar(&sortBy, "sort", "id", "sort by id, status, cloud, tasks (most first) or age (oldest heartbeat first)")
	return cmd
}
