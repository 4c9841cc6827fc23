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
	Min      time.Duration // least 1-byte echo round trip
	Median   time.Duration // median 1-byte echo round trip
	Max      time.Duration
}

func (r RTT) String() string {
	return fmt.Sprintf("%s→%s: connect %s, echo min %s, median %s, max %s", r.From, r.To,
		r.Connect.Round(100*time.Microsecond), r.Min.Round(100*time.Microsecond), r.Median.Round(100*time.Microsecond), r.Max.Round(100*time.Microsecond))
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
	r.Connect, r.Min, r.Median, r.Max, err = EchoRTT(ln, func() (net.Conn, error) {
		return from.Dial(context.Background(), ln.Addr().String())
	}, rounds)
	return r, err
}

// EchoRTT serves one echo connection on ln, dials it and times the
// handshake and rounds 1-byte echoes: their least, median and greatest.
func EchoRTT(ln net.Listener, dial func() (net.Conn, error), rounds int) (connect, least, median, most time.Duration, err error) {
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(c, c)
	}()
	start := time.Now()
	c, err := dial()
	if err != nil {
		return 0, 0, 0, 0, err
	}
	defer c.Close()
	connect = time.Since(start)
	_ = c.SetDeadline(time.Now().Add(time.Duration(rounds+1) * 5 * time.Second))
	var samples []time.Duration
	b := []byte{0}
	for range rounds {
		t0 := time.Now()
		if _, err := c.Write(b); err != nil {
			return connect, 0, 0, 0, err
		}
		if _, err := io.ReadFull(c, b); err != nil {
			return connect, 0, 0, 0, err
		}
		samples = append(samples, time.Since(t0))
	}
	slices.Sort(samples)
	if len(samples) > 0 {
		least, median, most = samples[0], samples[len(samples)/2], samples[len(samples)-1]
	}
	return connect, least, median, most, nil
}
