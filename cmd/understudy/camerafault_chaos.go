//go:build chaosfaults

package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// CameraControlFile is the file in a node's data directory that cuts a
// chaosfaults build started with the camera-cut fault off its cameras:
// "cut" as its first word closes every TCP connection the node holds to a
// camera (RTSP requests, media over TCP) and makes new ones fail with
// ENETUNREACH, as a camera network whose link went down; missing, empty or
// anything else: connected. Read every 100 ms. The gossip and the API are
// not touched (the gossip-cut fault cuts those).
const CameraControlFile = "chaos-camera-cut"

// cameraLink is the sessions' dialer of a node with the camera-cut fault.
type cameraLink struct {
	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
}

func newCameraLink(dataDir string) *cameraLink {
	l := &cameraLink{conns: map[net.Conn]struct{}{}}
	go l.watch(filepath.Join(dataDir, CameraControlFile))
	return l
}

func (l *cameraLink) watch(path string) {
	for {
		b, _ := os.ReadFile(path)
		f := strings.Fields(string(b))
		l.set(len(f) > 0 && f[0] == "cut")
		time.Sleep(100 * time.Millisecond)
	}
}

func (l *cameraLink) set(cut bool) {
	l.mu.Lock()
	if cut == l.cut {
		l.mu.Unlock()
		return
	}
	l.cut = cut
	var open []net.Conn
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

// Dial is engine.Config.CameraDial.
func (l *cameraLink) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	l.mu.Lock()
	cut := l.cut
	l.mu.Unlock()
	if cut {
		return nil, &net.OpError{Op: "dial", Net: network, Err: os.NewSyscallError("connect", syscall.ENETUNREACH)}
	}
	c, err := (&net.Dialer{}).DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cut { // cut while dialing
		c.Close()
		return nil, &net.OpError{Op: "dial", Net: network, Err: os.NewSyscallError("connect", syscall.ENETUNREACH)}
	}
	tc := &trackedConn{Conn: c, l: l}
	l.conns[tc] = struct{}{}
	return tc, nil
}

// trackedConn leaves the link's set when closed.
type trackedConn struct {
	net.Conn
	l *cameraLink
}

func (c *trackedConn) Close() error {
	c.l.mu.Lock()
	delete(c.l.conns, c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}
