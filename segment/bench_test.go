package segment

import (
	"syscall"
	"testing"
	"time"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkWriter records a 4 Mbit/s, 25 fps H.264 stream (real SPS/PPS,
// 20 kB frames, 1 s GOP, 60 s segments, 1 s parts, FsyncPart) to real
// files. One op is one frame; it reports MB/s and the CPU share one such
// stream costs (cpu-%/stream = CPU time / media time × 100).
func BenchmarkWriter(b *testing.B) {
	b.Run("FsyncPart", func(b *testing.B) { benchWriter(b, FsyncPart) })
	b.Run("FsyncInterval", func(b *testing.B) { benchWriter(b, FsyncInterval) })
}

func benchWriter(b *testing.B, policy FsyncPolicy) {
	m := loadMedia(b)
	s := openTestStore(b, Options{Fsync: policy, FsyncInterval: 5 * time.Second})
	w, err := s.NewWriter(WriterConfig{Stream: "bench", Tracks: m.tracks(false)})
	if err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 20000)
	copy(payload, m.video[1])
	b.SetBytes(int64(len(payload)))
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		pts := int64(i) * 90000 / testFPS
		f := Frame{PTS: pts, DTS: pts, Wall: testWall0.Add(time.Duration(i) * time.Second / testFPS), Random: i%testFPS == 0, Payload: payload}
		if f.Random {
			f.Payload = m.video[0]
		}
		if err := w.WriteFrame(f); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	cpu := cpuTime() - cpu0
	media := time.Duration(b.N) * time.Second / testFPS
	b.ReportMetric(100*cpu.Seconds()/media.Seconds(), "cpu-%/stream")
}
