package tui

import "github.com/charmbracelet/lipgloss"

// styles holds every style of the view. Colours are the 16 basic ANSI ones
// so the view reads on any palette and no terminal query is needed.
type styles struct {
	plain      lipgloss.Style
	title      lipgloss.Style // the "rctl top" title
	panel      lipgloss.Style // a panel's title
	panelFocus lipgloss.Style // the focused panel's title
	colHeader  lipgloss.Style
	selected   lipgloss.Style // the cursor row of the focused panel
	dim        lipgloss.Style
	bold       lipgloss.Style
	key        lipgloss.Style // key names in the footer and help

	ok, warn, bad, info lipgloss.Style
	leader              lipgloss.Style

	bannerBad, bannerWarn lipgloss.Style
}

func newStyles(r *lipgloss.Renderer) styles {
	c := func(s string) lipgloss.Color { return lipgloss.Color(s) }
	return styles{
		plain:      r.NewStyle(),
		title:      r.NewStyle().Bold(true).Foreground(c("6")),
		panel:      r.NewStyle().Foreground(c("6")),
		panelFocus: r.NewStyle().Bold(true).Foreground(c("0")).Background(c("6")),
		colHeader:  r.NewStyle().Bold(true).Foreground(c("7")),
		selected:   r.NewStyle().Reverse(true),
		dim:        r.NewStyle().Foreground(c("8")),
		bold:       r.NewStyle().Bold(true),
		key:        r.NewStyle().Bold(true).Foreground(c("6")),
		ok:         r.NewStyle().Foreground(c("2")),
		warn:       r.NewStyle().Foreground(c("3")),
		bad:        r.NewStyle().Bold(true).Foreground(c("1")),
		info:       r.NewStyle().Foreground(c("4")),
		leader:     r.NewStyle().Bold(true).Foreground(c("2")),
		bannerBad:  r.NewStyle().Bold(true).Foreground(c("15")).Background(c("1")),
		bannerWarn: r.NewStyle().Bold(true).Foreground(c("0")).Background(c("3")),
	}
}

// forLevel is the text style of an event or banner level.
func (s styles) forLevel(l level) lipgloss.Style {
	switch l {
	case levelBad:
		return s.bad
	case levelWarn:
		return s.warn
	}
	return s.plain
}
