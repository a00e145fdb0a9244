package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/understudy-nvr/understudy/engine/catalog"
	"github.com/understudy-nvr/understudy/engine/session"
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
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if *url == "" || *stream == "" || *dataDir == "" {
		fmt.Fprintln(os.Stderr, "record: --url, --stream and --data-dir are required")
		return 2
	}
	if *duration < 0 {
		fmt.Fprintf(os.Stderr, "record: --duration %s: must not be negative (0: until interrupted)\n", *duration)
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

	sess, err := session.New(store, session.Config{
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
	// What this run adds to the stream's coverage is what reached disk and
	// the index: frames the writer accepted are lost with a part that
	// could not be written.
	coveredBefore, err := coveredOf(store, *stream)
	if err != nil {
		fmt.Fprintln(os.Stderr, "record:", err)
		return 1
	}
	started := time.Now()
	fmt.Fprintf(os.Stderr, "recording %s from %s into %s\n", *stream, catalog.RedactURL(*url), *dataDir)

	done := make(chan error, 1)
	go func() { done <- sess.Run(ctx) }()
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	var prev session.Stats
	prevAt := started
	parts0 := store.Stats().PartsWritten
	for {
		select {
		case err := <-done:
			return recordSummary(store, *stream, sess.Stats(), coveredBefore, time.Since(started), err)
		case now := <-tick.C:
			st := sess.Stats()
			if !*quiet {
				secs := now.Sub(prevAt).Seconds()
				state := "connecting"
				switch {
				case st.WriteErrors > prev.WriteErrors:
					state = "NOT WRITING (write errors)"
				case st.Connected:
					state = "recording"
				case st.Playing:
					state = "waiting for the first keyframe"
				case st.LastError != "":
					state = "reconnecting (" + st.LastError + ")"
				}
				line := fmt.Sprintf("%s %s: %.1f fps, %.2f Mbit/s, %d frames, %d parts on disk, queue %d B",
					time.Since(started).Round(time.Second), state,
					float64(st.Frames-prev.Frames)/secs, float64(st.Bytes-prev.Bytes)*8/secs/1e6, st.Frames,
					store.Stats().PartsWritten-parts0, st.QueuedBytes)
				if st.WriteErrors > 0 {
					line += fmt.Sprintf(", %d write errors", st.WriteErrors)
				}
				if st.Dropped > 0 {
					line += fmt.Sprintf(", %d dropped", st.Dropped)
				}
				fmt.Fprintln(os.Stderr, line)
			}
			prev, prevAt = st, now
		}
	}
}

// coveredOf returns how much of stream the store holds.
func coveredOf(store *segment.Store, stream string) (time.Duration, error) {
	cov, err := store.Coverage(stream, time.Time{}, time.Time{})
	if err != nil {
		return 0, err
	}
	var d time.Duration
	for _, iv := range cov {
		d += iv.Duration()
	}
	return d, nil
}

// recordSummary prints what a finished run recorded and returns the exit
// code: 1 when the session failed, frames could not be written, or
// nothing at all was recorded, so that a script or supervisor notices a
// full disk or a camera that never answered.
func recordSummary(store *segment.Store, stream string, st session.Stats, coveredBefore, ran time.Duration, runErr error) int {
	covered, err := coveredOf(store, stream)
	if err != nil {
		fmt.Fprintln(os.Stderr, "record:", err)
		return 1
	}
	recorded := max(covered-coveredBefore, 0)
	fmt.Fprintf(os.Stderr, "stopped after %s: %.1f s recorded, %d frames, %.1f MB, %d reconnects, %d dropped, %d write errors\n",
		ran.Round(time.Millisecond), recorded.Seconds(), st.Frames, float64(st.Bytes)/1e6, st.Reconnects, st.Dropped, st.WriteErrors)
	switch {
	case runErr != nil:
		fmt.Fprintln(os.Stderr, "record:", runErr)
	case st.WriteErrors > 0:
		fmt.Fprintf(os.Stderr, "record: FAILED: %d write errors; %.1f s of %.1f s recorded\n",
			st.WriteErrors, recorded.Seconds(), ran.Seconds())
	case st.Frames == 0:
		why := "the camera sent no frame"
		if st.LastError != "" {
			why = "last error: " + st.LastError
		}
		fmt.Fprintf(os.Stderr, "record: FAILED: no frame recorded in %s (%s)\n", ran.Round(time.Millisecond), why)
	default:
		return 0
	}
	return 1
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
