package main

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// failoverChart draws every failover round of each system as a dot on a
// time axis, one row per system, with its p50 (solid) and p99 (dashed)
// marked. Rounds of stuck or more (no write in time) are not plotted on the
// axis but counted at its right end.
func failoverChart(path, title string, order []string, data map[string][]time.Duration, stuck time.Duration) error {
	const w, h, left, right, top, bottom = 900, 320, 70, 40, 50, 60
	c := newCanvas(w, h)
	c.text(w/2, 24, title, black, 1)
	var maxS float64
	for _, ds := range data {
		for _, d := range ds {
			if d < stuck {
				maxS = math.Max(maxS, d.Seconds())
			}
		}
	}
	step := niceStep(maxS*1.05, 8)
	top_ := math.Ceil(maxS*1.05/step) * step
	x := func(s float64) int { return left + int(s/top_*float64(w-left-right)) }
	// Axis with gridlines.
	for v := 0.0; v <= top_+step/2; v += step {
		c.line(x(v), top, x(v), h-bottom, lightGrey, 0)
		c.text(x(v), h-bottom+16, trimFloat(v), black, 1)
	}
	c.line(left, h-bottom, w-right, h-bottom, black, 0)
	c.text((left+w-right)/2, h-bottom+40, "seconds from kill -9 of the leader to the first committed write", black, 1)
	rowH := (h - top - bottom) / len(order)
	for r, sys := range order {
		ds := data[sys]
		col := sysColor[sys]
		cy := top + rowH*r + rowH/2
		c.text(left-10, cy+4, sys, col, 2)
		n := 0
		for i, d := range ds {
			if d >= stuck {
				n++
				continue
			}
			c.dot(x(d.Seconds()), cy+(i%7-3)*4, 4, col)
		}
		if n > 0 {
			c.text(w-right, cy+4, fmt.Sprintf("+%d with no write in %s", n, fmtDur(stuck)), col, 2)
		}
		if len(ds) == 0 {
			continue
		}
		p50, p99 := min(pct(ds, .5).Seconds(), top_), min(pct(ds, .99).Seconds(), top_)
		c.line(x(p50), cy-rowH/2+8, x(p50), cy+rowH/2-8, col, 0)
		c.line(x(p50)+1, cy-rowH/2+8, x(p50)+1, cy+rowH/2-8, col, 0)
		c.line(x(p99), cy-rowH/2+8, x(p99), cy+rowH/2-8, col, 4)
		c.text(x(p50)+4, cy-rowH/2+18, "p50 "+fmtDur(pct(ds, .5)), col, 0)
		c.text(x(p99)+4, cy+rowH/2-10, "p99 "+fmtDur(pct(ds, .99)), col, 0)
	}
	return c.save(path)
}

// throughputChart draws committed writes per second for each number of
// clients as grouped bars, one colour per system.
func throughputChart(path, title string, order []string, clients []int, data map[string][]float64) error {
	const w, h, left, right, top, bottom = 900, 420, 80, 30, 60, 60
	c := newCanvas(w, h)
	c.text(w/2, 24, title, black, 1)
	var maxV float64
	for _, vs := range data {
		for _, v := range vs {
			maxV = math.Max(maxV, v)
		}
	}
	step := niceStep(maxV*1.1, 6)
	top_ := math.Ceil(maxV*1.1/step) * step
	y := func(v float64) int { return h - bottom - int(v/top_*float64(h-top-bottom)) }
	for v := 0.0; v <= top_+step/2; v += step {
		c.line(left, y(v), w-right, y(v), lightGrey, 0)
		c.text(left-6, y(v)+4, trimFloat(v), black, 2)
	}
	c.line(left, top, left, h-bottom, black, 0)
	c.line(left, h-bottom, w-right, h-bottom, black, 0)
	c.text(left-6, top-12, "writes/s", black, 2)
	groupW := (w - left - right) / len(clients)
	barW := groupW / (len(order) + 2)
	for g, n := range clients {
		gx := left + g*groupW + barW
		for s, sys := range order {
			if g >= len(data[sys]) {
				continue
			}
			v := data[sys][g]
			bx := gx + s*barW
			c.rect(bx, y(v), bx+barW-4, h-bottom, sysColor[sys])
			c.text(bx+(barW-4)/2, y(v)-4, fmtRate(v), black, 1)
		}
		c.text(left+g*groupW+groupW/2, h-bottom+18, clientsLabel(n), black, 1)
	}
	// Legend, top right.
	lx := w - right - 140
	for s, sys := range order {
		c.rect(lx, top+s*18, lx+12, top+s*18+12, sysColor[sys])
		c.text(lx+18, top+s*18+11, sys, black, 0)
	}
	return c.save(path)
}

// trimFloat prints an axis value without needless decimals.
func trimFloat(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	s := fmt.Sprintf("%.2f", v)
	for s[len(s)-1] == '0' {
		s = s[:len(s)-1]
	}
	return s
}

// fmtRate prints 5588 as "5.6k".
func fmtRate(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.1fk", v/1000)
	}
	return fmt.Sprintf("%.0f", v)
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
