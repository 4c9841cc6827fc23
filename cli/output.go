package cli

import (
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rctl-dev/rctl/internal/humanize"
	"github.com/rctl-dev/rctl/internal/termsafe"
)

// table writes aligned columns.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, headers ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	t.row(headers...)
	return t
}

// row writes one row. Every cell goes through termsafe.Field: cells hold
// server-provided strings, and a tab or newline inside one would also break
// the columns.
func (t *table) row(cols ...string) {
	var b strings.Builder
	for i, c := range cols {
		if i > 0 {
			b.WriteByte('\t')
		}
		b.WriteString(termsafe.Field(c))
	}
	b.WriteByte('\n')
	io.WriteString(t.tw, b.String())
}

func (t *table) flush() error { return t.tw.Flush() }

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
