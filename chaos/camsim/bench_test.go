package camsim

import (
	"log/slog"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"
)

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkServe16 serves 16 cameras of 720p at 4 Mbit/s, each to one
// in-process TCP reader, for 2 s per iteration, and reports the CPU used
// (server and readers together: an upper bound for the server) as a share
// of one core, and the bitrate the readers received.
func BenchmarkServe16(b *testing.B) {
	const cameras = 16
	cfg := Config{Listen: "127.0.0.1:0", Cameras: cameras, Bitrate: 4_000_000, Logger: slog.New(slog.DiscardHandler)}
	s, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Start(); err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var received atomic.Int64
	for i := 0; i < cameras; i++ {
		u, err := base.ParseURL(s.URL(i))
		if err != nil {
			b.Fatal(err)
		}
		tr := gortsplib.TransportTCP
		c := &gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Transport: &tr}
		if err := c.Start2(); err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		desc, _, err := c.Describe(u)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
			b.Fatal(err)
		}
		c.OnPacketRTPAny(func(_ *description.Media, _ format.Format, p *rtp.Packet) {
			received.Add(int64(len(p.Payload)))
		})
		if _, err := c.Play(nil); err != nil {
			b.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond)
	b.ResetTimer()
	cpu0, wall0, bytes0 := cpuTime(b), time.Now(), received.Load()
	for b.Loop() {
		time.Sleep(2 * time.Second)
	}
	wall := time.Since(wall0)
	b.ReportMetric(100*float64(cpuTime(b)-cpu0)/float64(wall), "%cpu")
	b.ReportMetric(float64(received.Load()-bytes0)*8/wall.Seconds()/cameras/1e6, "Mbit/s/camera")
	for i := 0; i < cameras; i++ {
		if st := s.Camera(i).Stats(); st.Dropped > 0 || st.WriteErrors > 0 {
			b.Logf("camera %d dropped %d frames, %d packets", i, st.Dropped, st.WriteErrors)
		}
	}
}
