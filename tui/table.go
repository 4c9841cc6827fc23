package tui

import (
	"strings"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"

	"github.com/rctl-dev/rctl/internal/termsafe"
)

// column describes one column of a panel's table.
type column struct {
	title string
	right bool // right-aligned (numbers)
	// drop orders which columns go first when the panel is too narrow:
	// the highest drop goes first; 0 is never dropped.
	drop int
	// flex columns take the width left over by the others, at least min
	// (else they are dropped) and at most their widest cell.
	flex bool
	min  int
	// max caps the natural width of a non-flex column (0: none).
	max int
}

// cell is one table cell: text plus the style it is painted with.
type cell struct {
	text  string // escaped: see txt
	style *lipgloss.Style
}

// txt and styled are the only ways to make a cell, and the choke point for
// every table (servers, nodes, tasks, a task's history): the text is
// escaped with termsafe.Field here, before fitColumns measures it and
// renderTable truncates and styles it, so a control character sent by a
// server can neither reach the terminal nor shift a column.
func txt(s string) cell { return cell{text: termsafe.Field(s)} }

func styled(s string, st lipgloss.Style) cell {
	return cell{text: termsafe.Field(s), style: &st}
}

const colGap = 2

// naturalWidths returns each column's natural width: its widest cell or
// title, capped at its max.
func naturalWidths(cols []column, rows [][]cell) []int {
	nat := make([]int, len(cols))
	for i, c := range cols {
		nat[i] = ansi.StringWidth(c.title)
		for _, r := range rows {
			if i < len(r) {
				nat[i] = max(nat[i], ansi.StringWidth(r[i].text))
			}
		}
		if c.max > 0 && !c.flex {
			nat[i] = min(nat[i], max(c.max, ansi.StringWidth(c.title)))
		}
	}
	return nat
}

// fitColumns decides each column's width (0: dropped) for the given total.
func fitColumns(cols []column, rows [][]cell, total int) []int {
	return fitNatural(cols, naturalWidths(cols, rows), total)
}

// fitNatural is fitColumns from the natural widths.
func fitNatural(cols []column, nat []int, total int) []int {
	keep := make([]bool, len(cols))
	for i := range keep {
		keep[i] = true
	}
	need := func() int {
		n, k := 0, 0
		for i, c := range cols {
			if !keep[i] {
				continue
			}
			k++
			if c.flex {
				n += min(c.min, nat[i])
			} else {
				n += nat[i]
			}
		}
		return n + colGap*max(k-1, 0)
	}
	for need() > total {
		worst := -1
		for i, c := range cols {
			if keep[i] && c.drop > 0 && (worst < 0 || c.drop > cols[worst].drop) {
				worst = i
			}
		}
		if worst < 0 {
			break
		}
		keep[worst] = false
	}
	w := make([]int, len(cols))
	used, k := 0, 0
	for i, c := range cols {
		if keep[i] && !c.flex {
			w[i] = nat[i]
			used += nat[i]
		}
		if keep[i] {
			k++
		}
	}
	used += colGap * max(k-1, 0)
	for i, c := range cols {
		if keep[i] && c.flex {
			w[i] = max(min(nat[i], total-used), 1)
			used += w[i]
		}
	}
	return w
}

// renderTable renders the header line and rows[off:off+h] of a table, each
// line exactly width wide. sel is the cursor row (-1: none), highlighted
// when focused; a ">" marks it either way so it shows without colour.
func renderTable(st styles, cols []column, rows [][]cell, width, off, h, sel int, focused bool) []string {
	return renderTableNat(st, cols, rows, naturalWidths(cols, rows), width, off, h, sel, focused)
}

// renderTableNat is renderTable with the rows' natural widths already
// measured (naturalWidths), for long tables rendered often.
func renderTableNat(st styles, cols []column, rows [][]cell, nat []int, width, off, h, sel int, focused bool) []string {
	inner := width - 2 // the marker column
	w := fitNatural(cols, nat, inner)
	line := func(cells []cell, header, isSel bool) string {
		var b strings.Builder
		first := true
		for i, c := range cols {
			if w[i] == 0 {
				continue
			}
			if !first {
				b.WriteString(strings.Repeat(" ", colGap))
			}
			first = false
			var t cell
			if i < len(cells) {
				t = cells[i]
			}
			s := ansi.Truncate(t.text, w[i], "…")
			pad := strings.Repeat(" ", w[i]-ansi.StringWidth(s))
			if c.right {
				s = pad + s
			} else {
				s += pad
			}
			if header {
				s = st.colHeader.Render(s)
			} else if t.style != nil && !isSel {
				s = t.style.Render(s)
			}
			b.WriteString(s)
		}
		return b.String()
	}
	hdr := make([]cell, len(cols))
	for i, c := range cols {
		hdr[i] = txt(c.title)
	}
	out := []string{fit("  "+line(hdr, true, false), width)}
	for i := off; i < min(off+h, len(rows)); i++ {
		isSel := i == sel && focused
		body := line(rows[i], false, isSel)
		marker := "  "
		if i == sel && focused {
			marker = "> "
		}
		l := fit(marker+body, width)
		if isSel {
			l = st.selected.Render(l)
		}
		out = append(out, l)
	}
	return out
}

// fit truncates or pads s (which may hold escape codes) to exactly w cells.
func fit(s string, w int) string {
	if w <= 0 {
		return ""
	}
	n := ansi.StringWidth(s)
	if n > w {
		return ansi.Truncate(s, w, "…")
	}
	return s + strings.Repeat(" ", w-n)
}
