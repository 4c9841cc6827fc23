package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rctl-dev/rctl/internal/humanize"
)

// table writes aligned columns.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, headers ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	t.row(headers...)
	return t
}

func (t *table) row(cols ...string) { fmt.Fprintln(t.tw, strings.Join(cols, "\t")) }
func (t *table) flush() error       { return t.tw.Flush() }

// ago renders a unix-nano timestamp as an age like "3s" or "2h5m".
func ago(unixNano int64) string {
	if unixNano == 0 {
		return "-"
	}
	return age(time.Since(time.Unix(0, unixNano)))
}

func age(d time.Duration) string { return humanize.Age(d) }

func msOrDash(ms int64) string { return humanize.AgeMS(ms) }

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
