package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/rctl-dev/rctl/internal/humanize"
	"github.com/rctl-dev/rctl/internal/termsafe"
	"github.com/rctl-dev/rctl/rpc"
)

func newOperatorRTTCommand(g *globals) *cobra.Command {
	var samples int
	var local bool
	cmd := &cobra.Command{
		Use:   "rtt",
		Short: "Measure the round trip between every pair of servers, through the servers",
		Long: `Measure the network round trip between every pair of servers. The contacted
server times --samples Status.Get calls to each other server on an open
connection (no handshake counted) and asks every other server to do the same,
so the whole matrix comes back through one reachable server, e.g. from an
operator's laptop. Each pair is measured by its first server: FROM→TO.

A WARNING line follows for a pair whose median is above what the cluster's
--timing profile is made for (lan: 20 ms, wan: 500 ms), and for a server that
could not be asked. Needs a token with the reader role.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error {
			if samples < 1 || samples > rpc.MaxRTTSamples {
				return fmt.Errorf("--samples must be between 1 and %d, not %d", rpc.MaxRTTSamples, samples)
			}
			var reply rpc.RTTReply
			if err := g.call(rpc.MethodOperatorRTT, &rpc.RTTArgs{Samples: samples, Local: local}, &reply); err != nil {
				return err
			}
			if g.json() {
				return g.printJSON(&reply)
			}
			t := newTable(g.stdout, "FROM", "TO", "CLOUDS", "MEDIAN", "MIN", "MAX", "SAMPLES")
			for _, p := range reply.Pairs {
				clouds := dash(p.FromCloud) + "→" + dash(p.ToCloud)
				if p.Error != "" {
					t.row(p.From, p.To, clouds, "error: "+p.Error, "-", "-", "0")
					continue
				}
				t.row(p.From, p.To, clouds, humanize.Millis(p.MedianMS), humanize.Millis(p.MinMS), humanize.Millis(p.MaxMS), fmt.Sprint(p.Samples))
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
	cmd.Flags().IntVar(&samples, "samples", rpc.DefaultRTTSamples, "round trips timed per pair of servers (1-20); the table shows their median, least and greatest")
	cmd.Flags().BoolVar(&local, "local", false, "measure only from the contacted server to the others")
	return cmd
}
