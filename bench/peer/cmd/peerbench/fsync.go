package main

import (
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// measureFsync appends 4 KiB blocks to a file in dir (the disk the servers'
// data dirs live on) and times fdatasync after each, rounds times. It
// returns the median and the 99th percentile.
func measureFsync(dir string, rounds int) (p50, p99 time.Duration, err error) {
	f, err := os.CreateTemp(dir, "fsync-probe-")
	if err != nil {
		return 0, 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	block := make([]byte, 4096)
	var samples []time.Duration
	for range rounds {
		if _, err := f.Write(block); err != nil {
			return 0, 0, err
		}
		t0 := time.Now()
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return 0, 0, err
		}
		samples = append(samples, time.Since(t0))
	}
	return pct(samples, .5), pct(samples, .99), nil
}

// dataDisk names the directory whose disk measureFsync probed.
func dataDisk(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return dir
	}
	return abs
}
