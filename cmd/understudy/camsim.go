package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/understudy-nvr/understudy/chaos/camsim"
)

func init() {
	register("camsim", "serve simulated RTSP cameras (synthetic H.264, optional AAC)", runCamsim)
}

func runCamsim(args []string) int {
	fs := flag.NewFlagSet("camsim", flag.ContinueOnError)
	var cfg camsim.Config
	var bitrate, udp string
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:8554", "RTSP listen address (TCP)")
	fs.IntVar(&cfg.Cameras, "cameras", 1, "number of cameras, served at /cam/0 .. /cam/N-1")
	fs.StringVar(&bitrate, "bitrate", "4M", "video bitrate per camera in bit/s: 4000000, 4M, 500k")
	fs.IntVar(&cfg.FPS, "fps", 25, "frames per second")
	fs.IntVar(&cfg.GOP, "gop", 50, "frames between IDR frames")
	fs.IntVar(&cfg.Width, "width", 1280, "video width in pixels (even)")
	fs.IntVar(&cfg.Height, "height", 720, "video height in pixels (even)")
	fs.BoolVar(&cfg.Audio, "audio", false, "add a silent AAC-LC track")
	fs.IntVar(&cfg.AudioChannels, "audio-channels", 1, "audio channels: 1 or 2")
	fs.StringVar(&cfg.User, "user", "", "require this RTSP user")
	fs.StringVar(&cfg.Pass, "pass", "", "password of -user")
	fs.StringVar(&cfg.Query, "query", "", "require this query string on DESCRIBE, as cameras that take credentials in the URL do (user=admin&password=x)")
	fs.StringVar(&udp, "udp", "", "enable UDP transport with RTP on this even port (RTCP on the next), e.g. 8000")
	fs.DurationVar(&cfg.SenderReportPeriod, "sr-period", 0, "RTCP sender report period (default 1s)")
	fs.StringVar(&cfg.SendLogDir, "send-log", "", "write each camera's send log (frames sent and skipped) to DIR/cam-N.sendlog; numbering continues from it")
	control := fs.String("control", "", "poll this file every 100 ms for camera outages, a line per camera: N up|pause|stop|unreachable (cameras it does not name are up)")
	verbose := fs.Bool("v", false, "log sessions (debug level)")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	bps, err := camsim.ParseBitrate(bitrate)
	if err != nil {
		fmt.Fprintf(os.Stderr, "camsim: -bitrate: %v\n", err)
		return 2
	}
	cfg.Bitrate = bps
	if udp != "" {
		port, err := strconv.Atoi(udp)
		if err != nil || port <= 0 || port > 65534 || port%2 != 0 {
			fmt.Fprintf(os.Stderr, "camsim: -udp %q: want an even port number\n", udp)
			return 2
		}
		host := cfg.Listen[:strings.LastIndexByte(cfg.Listen, ':')+1]
		cfg.UDPRTPAddress = host + strconv.Itoa(port)
		cfg.UDPRTCPAddress = host + strconv.Itoa(port+1)
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	srv, err := camsim.New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := srv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer srv.Close()
	n := srv.NumCameras()
	for i := 0; i < n && i < 4; i++ {
		fmt.Println(srv.URL(i))
	}
	if n > 4 {
		fmt.Printf("... %s (N = 0..%d)\n", strings.Replace(srv.URL(n-1), "/cam/"+strconv.Itoa(n-1), "/cam/N", 1), n-1)
	}

	if *control != "" {
		go pollControl(srv, *control)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	s := <-sig
	slog.Info("camsim: stopping", "signal", s.String())
	return 0
}

// pollControl applies the control file whenever its text changes; a bad
// file is logged and changes nothing.
func pollControl(srv *camsim.Server, path string) {
	last := ""
	for {
		b, err := os.ReadFile(path)
		if err != nil && !os.IsNotExist(err) {
			slog.Error("camsim: control", "err", err)
		}
		if text := string(b); text != last {
			last = text
			if err := srv.ApplyControl(text); err != nil {
				slog.Error("camsim: control", "err", err)
			} else {
				slog.Info("camsim: control applied", "state", strings.Join(strings.Fields(text), " "))
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}
