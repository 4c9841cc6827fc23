package cli

import (
	"encoding/json"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/rctl-dev/rctl/internal/termsafe"
)

// streamTable writes aligned columns as rows arrive, for listings too long
// to hold: the column widths are those of the header and the first batch
// of rows, written together; a wider value in a later batch pushes the
// rest of its own row to the right and moves no other row, so the first
// rows need not wait for the last. Every cell goes through
// termsafe.Field, as in table.
type streamTable struct {
	w       io.Writer
	headers []string
	widths  []int
	started bool
	err     error
}

func newStreamTable(w io.Writer, headers ...string) *streamTable {
	t := &streamTable{w: w, headers: make([]string, len(headers)), widths: make([]int, len(headers))}
	for i, h := range headers {
		t.headers[i] = termsafe.Field(h)
		t.widths[i] = utf8.RuneCountInString(t.headers[i])
	}
	return t
}

// rows writes a batch of rows (and the header before the first batch; a
// nil batch writes only that). It returns the first write error, which
// also stops later writes.
func (t *streamTable) rows(rows [][]string) error {
	esc := make([][]string, len(rows))
	for i, r := range rows {
		esc[i] = make([]string, len(r))
		for j, c := range r {
			esc[i][j] = termsafe.Field(c)
			if !t.started && j < len(t.widths) {
				t.widths[j] = max(t.widths[j], utf8.RuneCountInString(esc[i][j]))
			}
		}
	}
	if !t.started {
		t.started = true
		t.line(t.headers)
	}
	for _, r := range esc {
		t.line(r)
	}
	return t.err
}

// line writes one row, each cell but the last padded to its column's
// width plus two spaces (as the tabwriter of table does); after a cell
// wider than its column the row catches up as soon as it can.
func (t *streamTable) line(cells []string) {
	if t.err != nil {
		return
	}
	var b strings.Builder
	at, col := 0, 0 // runes written; where the current column starts
	for i, c := range cells {
		b.WriteString(c)
		at += utf8.RuneCountInString(c)
		if i < len(cells)-1 {
			if i < len(t.widths) {
				col += t.widths[i] + 2
			}
			pad := max(col-at, 2)
			b.WriteString(strings.Repeat(" ", pad))
			at += pad
		}
	}
	b.WriteByte('\n')
	_, t.err = io.WriteString(t.w, b.String())
}

// jsonArray writes one JSON array element by element, laid out exactly as
// printJSON lays out the whole slice (two-space indent, "[]" when empty),
// without holding the elements. encoding/json escapes control characters.
type jsonArray struct {
	w   io.Writer
	n   int
	err error
}

func (a *jsonArray) add(v any) error {
	if a.err != nil {
		return a.err
	}
	b, err := json.MarshalIndent(v, "  ", "  ")
	if err != nil {
		a.err = err
		return err
	}
	sep := ",\n  "
	if a.n == 0 {
		sep = "[\n  "
	}
	a.n++
	if _, err := io.WriteString(a.w, sep); err != nil {
		a.err = err
		return err
	}
	_, a.err = a.w.Write(b)
	return a.err
}

// close ends the array.
func (a *jsonArray) close() error {
	if a.err != nil {
		return a.err
	}
	end := "\n]\n"
	if a.n == 0 {
		end = "[]\n"
	}
	_, a.err = io.WriteString(a.w, end)
	return a.err
}
