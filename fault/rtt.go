//go:build linux

package fault

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"time"
)

// RTT is a round trip measured with real TCP between two nodes.
type RTT struct {
	From, To string
	Connect  time.Duration // TCP handshake (SYN → SYN/ACK): one round trip
	Median   time.Duration // median 1-byte echo round trip
	Max      time.Duration
}

func (r RTT) String() string {
	return fmt.Sprintf("%s→%s: connect %s, echo median %s, max %s", r.From, r.To,
		r.Connect.Round(100*time.Microsecond), r.Median.Round(100*time.Microsecond), r.Max.Round(100*time.Microsecond))
}

// MeasureRTT opens a TCP connection from one node to an echo listener on
// another and times the handshake and rounds 1-byte echoes.
func MeasureRTT(from, to *Node, rounds int) (RTT, error) {
	r := RTT{From: from.Name, To: to.Name}
	ln, err := to.Listen(net.JoinHostPort(to.IP.String(), "0"))
	if err != nil {
		return r, err
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(c, c)
	}()
	start := time.Now()
	c, err := from.Dial(context.Background(), ln.Addr().String())
	if err != nil {
		return r, err
	}
	defer c.Close()
	r.Connect = time.Since(start)
	_ = c.SetDeadline(time.Now().Add(time.Duration(rounds+1) * 5 * time.Second))
	var samples []time.Duration
	b := []byte{0}
	for i := 0; i < rounds; i++ {
		t0 := time.Now()
		if _, err := c.Write(b); err != nil {
			return r, err
		}
		if _, err := io.ReadFull(c, b); err != nil {
			return r, err
		}
		samples = append(samples, time.Since(t0))
	}
	slices.Sort(samples)
	if len(samples) > 0 {
		r.Median, r.Max = samples[len(samples)/2], samples[len(samples)-1]
	}
	return r, nil
}
