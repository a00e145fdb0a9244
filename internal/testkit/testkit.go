// Package testkit holds the helpers that the tests of several packages
// share: simulated cameras, a segment store in a temporary directory, a log
// sink goroutines can share, and ffprobe's verdict on a file. Only tests
// import it.
package testkit

import (
	"bytes"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/understudy-nvr/understudy/chaos/camsim"
	"github.com/understudy-nvr/understudy/segment"
)

// SyncBuffer is a log sink that several goroutines can write to.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// StartCameras serves simulated cameras on loopback until the test ends.
// Unset sizes default to 320x240 at 1 Mbit/s.
func StartCameras(t testing.TB, cfg camsim.Config) *camsim.Server {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Width == 0 {
		cfg.Width, cfg.Height = 320, 240
	}
	if cfg.Bitrate == 0 {
		cfg.Bitrate = 1_000_000
	}
	srv, err := camsim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

// OpenStore opens a segment store in a temporary directory, closed when
// the test ends.
func OpenStore(t testing.TB) *segment.Store {
	t.Helper()
	st, err := segment.Open(segment.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// FFprobeErrors returns what ffprobe reports wrong with the file at path,
// empty when it reads it without complaint.
func FFprobeErrors(t testing.TB, path string) string {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-i", path).CombinedOutput()
	if err != nil && len(out) == 0 {
		return err.Error()
	}
	return strings.TrimSpace(string(out))
}
