// Package humanize formats durations for people, the same way in the CLI
// tables and in rctl top.
package humanize

import (
	"fmt"
	"time"
)

// Age renders a duration as 340ms, 4.2s, 3m05s, 2h10m or 3d.
func Age(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// AgeMS renders milliseconds with Age; negative means unknown: "-".
func AgeMS(ms int64) string {
	if ms < 0 {
		return "-"
	}
	return Age(time.Duration(ms) * time.Millisecond)
}

// Millis renders a latency given in milliseconds: one decimal under 10 ms
// (0.6ms, 7.7ms), whole milliseconds above (25ms, 243ms).
func Millis(ms float64) string {
	if ms < 10 {
		return fmt.Sprintf("%.1fms", ms)
	}
	return fmt.Sprintf("%.0fms", ms)
}
