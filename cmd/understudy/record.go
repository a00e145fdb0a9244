package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/understudy-nvr/understudy/engine"
	"github.com/understudy-nvr/understudy/segment"
)

func init() {
	register("record", "record one camera into a data directory", runRecord)
}

func runRecord(args []string) int {
	privateFiles()
	fs := flag.NewFlagSet("record", flag.ContinueOnError)
	url := fs.String("url", os.Getenv("UNDERSTUDY_CAMERA_URL"), "camera RTSP URL, credentials included (env UNDERSTUDY_CAMERA_URL keeps them out of ps)")
	stream := fs.String("stream", "", "stream id (letters, digits, '.', '_', '-')")
	dataDir := fs.String("data-dir", "", "data directory")
	duration := fs.Duration("duration", 0, "stop after this long (0: until interrupted)")
	transport := fs.String("transport", "auto", "RTSP transport: auto, tcp or udp")
	segDur := fs.Duration("segment-duration", 60*time.Second, "start a new segment at the first keyframe after this")
	fsync := fs.String("fsync", "part", "fsync policy: part (after every part) or interval")
	class := fs.String("class", "archive", "archive (home) or buffer (replica)")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	quiet := fs.Bool("quiet", false, "no progress lines")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *url == "" || *stream == "" || *dataDir == "" {
		fmt.Fprintln(os.Stderr, "record: --url, --stream and --data-dir are required")
		return 2
	}
	log, err := newLogger(*logFormat)
	if err != nil {
		fmt.Fprintln(os.Stderr, "record:", err)
		return 2
	}
	policy, err := parseFsync(*fsync)
	if err != nil {
		fmt.Fprintln(os.Stderr, "record:", err)
		return 2
	}
	cls, err := segment.ParseClass(*class)
	if err != nil {
		fmt.Fprintln(os.Stderr, "record:", err)
		return 2
	}
	store, err := segment.Open(segment.Options{Dir: *dataDir, Logger: log, Fsync: policy})
	if err != nil {
		fmt.Fprintln(os.Stderr, "record:", err)
		return 1
	}
	defer store.Close()

	sess, err := engine.NewSession(store, engine.SessionConfig{
		Stream:          *stream,
		URL:             *url,
		Class:           cls,
		Transport:       *transport,
		SegmentDuration: *segDur,
		Logger:          log,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "record:", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	started := time.Now()
	fmt.Fprintf(os.Stderr, "recording %s from %s into %s\n", *stream, engine.RedactURL(*url), *dataDir)

	done := make(chan error, 1)
	go func() { done <- sess.Run(ctx) }()
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	var prev engine.SessionStats
	prevAt := started
	for {
		select {
		case err := <-done:
			st := sess.Stats()
			fmt.Fprintf(os.Stderr, "stopped after %s: %d frames, %.1f MB, %d reconnects, %d dropped, %d write errors\n",
				time.Since(started).Round(time.Millisecond), st.Frames, float64(st.Bytes)/1e6, st.Reconnects, st.Dropped, st.WriteErrors)
			if err != nil {
				fmt.Fprintln(os.Stderr, "record:", err)
				return 1
			}
			return 0
		case now := <-tick.C:
			st := sess.Stats()
			if !*quiet {
				secs := now.Sub(prevAt).Seconds()
				state := "connecting"
				if st.Connected {
					state = "recording"
				} else if st.LastError != "" {
					state = "reconnecting (" + st.LastError + ")"
				}
				fmt.Fprintf(os.Stderr, "%s %s: %.1f fps, %.2f Mbit/s, %d frames, queue %d B\n",
					time.Since(started).Round(time.Second), state,
					float64(st.Frames-prev.Frames)/secs, float64(st.Bytes-prev.Bytes)*8/secs/1e6, st.Frames, st.QueuedBytes)
			}
			prev, prevAt = st, now
		}
	}
}

func parseFsync(s string) (segment.FsyncPolicy, error) {
	switch s {
	case "part":
		return segment.FsyncPart, nil
	case "interval":
		return segment.FsyncInterval, nil
	}
	return 0, fmt.Errorf("--fsync must be part or interval, not %q", s)
}
