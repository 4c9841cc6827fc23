package cluster

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/rctl-dev/rctl/rpc"
)

// TestSnapshotRestore: a saved snapshot restored through the leader
// becomes every server's manifest; an invalid upload gets one clear error
// and changes nothing.
func TestSnapshotRestore(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.waitLeader(10 * time.Second)
	cl := c.client(l)
	for i := range 20 {
		addTask(t, cl, fmt.Sprintf("keep-%02d", i))
	}
	var saved bytes.Buffer
	if _, err := rpc.SnapshotSave(ctxT(t, 30*time.Second), rpc.Credentials{}, c.addrs(), false, &saved); err != nil {
		t.Fatal(err)
	}
	addTask(t, cl, "lost-by-restore")

	upload := func(data []byte) error {
		_, err := rpc.SnapshotRestore(ctxT(t, time.Minute), rpc.Credentials{}, c.addrs(), int64(len(data)),
			func() (io.Reader, error) { return bytes.NewReader(data), nil })
		return err
	}
	if err := upload(saved.Bytes()); err != nil {
		t.Fatalf("restore: %v", err)
	}
	for i, s := range c.servers {
		succeedsWithin(t, 20*time.Second, func() error {
			f := s.FSM()
			if f.Task("lost-by-restore") != nil || len(f.Tasks("")) != 20 || f.Task("keep-07") == nil {
				return fmt.Errorf("%s after restore: %d tasks", c.cfgs[i].NodeID, len(f.Tasks("")))
			}
			return nil
		})
	}

	// Invalid uploads: refused with one clear error, nothing changed. The
	// bad magic one is large so that the client is still sending when the
	// leader finds the problem.
	data := saved.Bytes()
	flipped := bytes.Clone(data)
	flipped[len(flipped)/2] ^= 0xff
	badMagic := append([]byte("NOTASNAP"), make([]byte, 16<<20)...)
	before := c.servers[l].FSM().Indexes()
	for name, bad := range map[string][]byte{"flipped byte": flipped, "bad magic": badMagic, "truncated": data[:len(data)-10]} {
		err := upload(bad)
		if !isCode(err, rpc.CodeInvalidArgument) || !strings.Contains(err.Error(), "nothing changed") {
			t.Fatalf("%s: restore = %v (%s), want invalid_argument saying nothing changed", name, err, rpc.CodeOf(err))
		}
	}
	if after := c.servers[l].FSM().Indexes(); after != before {
		t.Fatalf("refused restores changed the manifest: %+v → %+v", before, after)
	}
	if n := len(c.servers[l].FSM().Tasks("")); n != 20 {
		t.Fatalf("%d tasks after refused restores, want 20", n)
	}
	// The cluster still takes writes.
	addTask(t, c.client(l), "after")
}
