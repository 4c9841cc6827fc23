package fault

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// tapPort is a TAP device: frames the kernel sends out of the interface
// are read here, frames written here arrive at the interface. The device
// is not persistent: it disappears when the file is closed (or the
// process holding it dies), wherever it has been moved to.
type tapPort struct{ f *os.File }

// openTap creates a TAP device called name in the caller's network
// namespace (the harness then moves it into a node's namespace).
func openTap(name string) (*tapPort, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tap name %q: %w", name, err)
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("create tap %s (TUNSETIFF): %w", name, err)
	}
	// A non-blocking fd handed to os.NewFile joins the runtime poller, so
	// ReadFrame parks the goroutine instead of a thread, and Close
	// unblocks it.
	return &tapPort{f: os.NewFile(uintptr(fd), "tap:"+name)}, nil
}

func (t *tapPort) ReadFrame(buf []byte) (int, error) { return t.f.Read(buf) }

func (t *tapPort) WriteFrame(f []byte) error {
	_, err := t.f.Write(f)
	return err
}

func (t *tapPort) Close() error { return t.f.Close() }

var _ Port = (*tapPort)(nil)
