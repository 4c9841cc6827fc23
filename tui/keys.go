package tui

import (
	"strings"

	tea "github.com/charmbracelet/bubbletea"
)

// handleKey applies one key press. The keys are listed in helpLines.
func (m *Model) handleKey(k tea.KeyMsg) tea.Cmd {
	key := k.String()
	if key == "ctrl+c" {
		return m.quit()
	}
	if m.editing && !k.Alt {
		m.editKey(k)
		return nil
	}
	// No key is bound with alt: alt+x is esc followed by x, typed (or sent
	// by a script) faster than the terminal parser tells them apart.
	if k.Alt {
		if cmd := m.handleKey(tea.KeyMsg{Type: tea.KeyEsc}); cmd != nil {
			return cmd
		}
		k.Alt = false
		return m.handleKey(k)
	}
	// Several runes in one read (fast typing, a script): one key each.
	if k.Type == tea.KeyRunes && len(k.Runes) > 1 && !k.Paste {
		var cmds []tea.Cmd
		for _, r := range k.Runes {
			cmds = append(cmds, m.handleKey(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}}))
		}
		return tea.Batch(cmds...)
	}
	switch m.mode {
	case modeHelp:
		switch key {
		case "q":
			return m.quit()
		case "esc", "?", "enter":
			m.mode = modeMain
		case "j", "down":
			m.helpOff = min(m.helpOff+1, max(len(m.helpLines())-m.lastLayout.bodyH, 0))
		case "k", "up":
			m.helpOff = max(m.helpOff-1, 0)
		}
		return nil
	case modeDetail:
		page := max(m.lastLayout.bodyH-1, 1)
		w, _ := m.size()
		last := max(len(m.detailLines(w))-m.lastLayout.bodyH, 0)
		switch key {
		case "q":
			return m.quit()
		case "esc", "backspace", "left", "h":
			m.mode = modeMain
		case "?":
			m.mode, m.helpOff = modeHelp, 0
		case "j", "down":
			m.detailOff = min(m.detailOff+1, last)
		case "k", "up":
			m.detailOff = max(m.detailOff-1, 0)
		case "pgdown", " ":
			m.detailOff = min(m.detailOff+page, last)
		case "pgup":
			m.detailOff = max(m.detailOff-page, 0)
		case "g", "home":
			m.detailOff = 0
		case "G", "end":
			m.detailOff = last
		}
		return nil
	}

	switch key {
	case "q":
		return m.quit()
	case "?":
		m.mode, m.helpOff = modeHelp, 0
	case "tab", "right", "l":
		m.focus = (m.focus + 1) % numPanels
	case "shift+tab", "left", "h":
		m.focus = (m.focus + numPanels - 1) % numPanels
	case "j", "down":
		m.move(1)
	case "k", "up":
		m.move(-1)
	case "pgdown", " ":
		m.move(max(m.lastLayout.rows[m.focus], 1))
	case "pgup":
		m.move(-max(m.lastLayout.rows[m.focus], 1))
	case "g", "home":
		m.move(-m.panelLen(m.focus))
	case "G", "end":
		m.move(m.panelLen(m.focus))
	case "/":
		m.editing, m.editPrev = true, m.filter
		m.focus = panelTasks
	case "f":
		m.filter = cycleStatus(m.filter)
		m.focus = panelTasks
	case "s":
		m.sortBy = (m.sortBy + 1) % numNodeSorts
	case "esc":
		m.filter = ""
	case "enter":
		m.openDetail()
	}
	return nil
}

func (m *Model) quit() tea.Cmd {
	m.quitting = true
	return tea.Quit
}

// move moves the focused panel's cursor by d rows.
func (m *Model) move(d int) {
	p := m.focus
	n := m.panelLen(p)
	if n == 0 {
		return
	}
	m.cur[p] = clamp(m.cur[p]+d, 0, n-1)
	if p != panelEvents {
		m.sel[p] = m.panelIDs(p)[m.cur[p]]
	}
}

// openDetail opens the task under the cursor; on the nodes panel, enter
// narrows the task list to the selected node's tasks instead.
func (m *Model) openDetail() {
	switch m.focus {
	case panelTasks:
		ids := m.panelIDs(panelTasks)
		if len(ids) == 0 {
			return
		}
		m.detailID = ids[clamp(m.cur[panelTasks], 0, len(ids)-1)]
		m.sel[panelTasks] = m.detailID
		m.mode, m.detailOff = modeDetail, 0
	case panelNodes:
		ids := m.panelIDs(panelNodes)
		if len(ids) == 0 {
			return
		}
		m.filter = setToken(m.filter, "node:", ids[clamp(m.cur[panelNodes], 0, len(ids)-1)])
		m.focus = panelTasks
	}
}

// editKey handles a key while the filter is being typed; the filter
// applies as it is typed.
func (m *Model) editKey(k tea.KeyMsg) {
	switch k.Type {
	case tea.KeyEnter:
		m.editing = false
		m.filter = strings.TrimSpace(m.filter)
	case tea.KeyEsc:
		m.editing = false
		m.filter = m.editPrev
	case tea.KeyBackspace:
		if r := []rune(m.filter); len(r) > 0 {
			m.filter = string(r[:len(r)-1])
		}
	case tea.KeyCtrlU:
		m.filter = ""
	case tea.KeyCtrlW:
		f := strings.TrimRight(m.filter, " ")
		if i := strings.LastIndex(f, " "); i >= 0 {
			m.filter = f[:i+1]
		} else {
			m.filter = ""
		}
	case tea.KeySpace:
		m.filter += " "
	case tea.KeyRunes:
		m.filter += string(k.Runes)
	}
	// Keep the cursor at the top of the new result.
	m.cur[panelTasks], m.off[panelTasks], m.sel[panelTasks] = 0, 0, ""
}

// cycleStatus moves the filter's status: token to the next status.
func cycleStatus(filter string) string {
	cur := ""
	for _, tok := range strings.Fields(filter) {
		if v, ok := strings.CutPrefix(tok, "status:"); ok {
			cur = v
		}
	}
	next := string(taskStatuses[0])
	for i, s := range taskStatuses {
		if string(s) == cur {
			next = ""
			if i+1 < len(taskStatuses) {
				next = string(taskStatuses[i+1])
			}
		}
	}
	return setToken(filter, "status:", next)
}

// setToken replaces the filter's prefix token (status:, node:) with
// prefix+value, or removes it when value is empty.
func setToken(filter, prefix, value string) string {
	var out []string
	for _, tok := range strings.Fields(filter) {
		if !strings.HasPrefix(tok, prefix) && !(prefix == "status:" && strings.HasPrefix(tok, "s:")) {
			out = append(out, tok)
		}
	}
	if value != "" {
		out = append([]string{prefix + value}, out...)
	}
	return strings.Join(out, " ")
}
