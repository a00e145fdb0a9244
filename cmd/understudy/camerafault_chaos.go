//go:build chaosfaults

package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// CameraControlFile is the file in a node's data directory that degrades
// the camera link of a chaosfaults build started with the camera-cut
// fault. "cut" as its first word closes every TCP connection the node
// holds to a camera (RTSP requests, media over TCP) and makes new ones
// fail with ENETUNREACH, as a camera network whose link went down.
// "delay D [J]" delivers every byte a camera sends D later than it came,
// plus up to J more drawn at random per read (in order: TCP does not
// reorder), as a slow or congested link; the camera's sending is held
// back only by what the node's socket buffers take. Missing, empty or
// anything else: a clean link. Read every 100 ms. The gossip and the API
// are not touched (the gossip-cut fault cuts those).
const CameraControlFile = "chaos-camera-cut"

// cameraLink is the sessions' dialer of a node with the camera-cut fault.
type cameraLink struct {
	mu            sync.Mutex
	cut           bool
	delay, jitter time.Duration
	conns         map[*linkConn]struct{}
}

func newCameraLink(dataDir string) *cameraLink {
	l := &cameraLink{conns: map[*linkConn]struct{}{}}
	watchControl(filepath.Join(dataDir, CameraControlFile), l.apply)
	return l
}

// apply reads the control file's text.
func (l *cameraLink) apply(text string) {
	f := strings.Fields(text)
	cut := len(f) > 0 && f[0] == "cut"
	var delay, jitter time.Duration
	if len(f) > 1 && f[0] == "delay" {
		d, err := time.ParseDuration(f[1])
		if err != nil || d < 0 || d > time.Minute {
			fmt.Fprintf(os.Stderr, "chaos fault: camera link %q: want delay D [J], D up to 1m\n", text)
			return
		}
		delay = d
		if len(f) > 2 {
			if j, err := time.ParseDuration(f[2]); err == nil && j >= 0 && j <= time.Minute {
				jitter = j
			}
		}
	}
	l.set(cut, delay, jitter)
}

func (l *cameraLink) set(cut bool, delay, jitter time.Duration) {
	l.mu.Lock()
	l.delay, l.jitter = delay, jitter
	if cut == l.cut {
		l.mu.Unlock()
		if delay > 0 || jitter > 0 {
			fmt.Fprintf(os.Stderr, "chaos fault: camera link delayed %v, jitter %v\n", delay, jitter)
		}
		return
	}
	l.cut = cut
	var open []*linkConn
	if cut {
		for c := range l.conns {
			open = append(open, c)
		}
	}
	l.mu.Unlock()
	if !cut {
		fmt.Fprintln(os.Stderr, "chaos fault: cameras reachable again")
		return
	}
	for _, c := range open {
		c.Close()
	}
	fmt.Fprintf(os.Stderr, "chaos fault: cameras cut off (%d connections closed)\n", len(open))
}

// lag is how much later than it came a read delivers data now.
func (l *cameraLink) lag() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := l.delay
	if l.jitter > 0 {
		d += rand.N(l.jitter)
	}
	return d
}

func unreachable(network string) error {
	return &net.OpError{Op: "dial", Net: network, Err: os.NewSyscallError("connect", syscall.ENETUNREACH)}
}

// Dial is engine.Config.CameraDial.
func (l *cameraLink) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	l.mu.Lock()
	cut := l.cut
	l.mu.Unlock()
	if cut {
		return nil, unreachable(network)
	}
	c, err := (&net.Dialer{}).DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cut { // cut while dialing
		c.Close()
		return nil, unreachable(network)
	}
	lc := &linkConn{Conn: c, l: l, in: make(chan chunk, 256), done: make(chan struct{})}
	l.conns[lc] = struct{}{}
	go lc.pump()
	return lc, nil
}

// chunk is what one read of the camera's socket returned, and when.
type chunk struct {
	b   []byte
	at  time.Time
	err error
}

// linkConn is a camera connection: it leaves the link's set when closed,
// and its reads come through a pump that holds what the camera sent for
// the link's delay.
type linkConn struct {
	net.Conn
	l    *cameraLink
	in   chan chunk
	done chan struct{}
	once sync.Once
	head []byte // the rest of a chunk a short read left
	err  error
}

// pump reads the socket as it comes; up to 256 reads wait in the channel,
// beyond that the socket's own buffers fill and the camera is held back.
func (c *linkConn) pump() {
	for {
		b := make([]byte, 32<<10)
		n, err := c.Conn.Read(b)
		select {
		case c.in <- chunk{b: b[:n], at: time.Now(), err: err}:
		case <-c.done:
			return
		}
		if err != nil {
			return
		}
	}
}

func (c *linkConn) Read(p []byte) (int, error) {
	if len(c.head) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		var ch chunk
		select {
		case ch = <-c.in:
		case <-c.done:
			return 0, net.ErrClosed
		}
		if wait := time.Until(ch.at.Add(c.l.lag())); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-c.done:
				t.Stop()
				return 0, net.ErrClosed
			}
		}
		c.head, c.err = ch.b, ch.err
		if len(c.head) == 0 {
			return 0, c.err
		}
	}
	n := copy(p, c.head)
	c.head = c.head[n:]
	return n, nil
}

func (c *linkConn) Close() error {
	c.once.Do(func() {
		close(c.done)
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}
