package session

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"

	"github.com/understudy-nvr/understudy/chaos/camsim"
	"github.com/understudy-nvr/understudy/internal/testkit"
)

// TestClassifyFailure: each kind of connection failure gets the class
// that health reports for it.
func TestClassifyFailure(t *testing.T) {
	cases := []struct {
		err  error
		want Failure
	}{
		{nil, FailureUnreachable},
		{fmt.Errorf("connect: %w", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}), FailureUnreachable},
		{fmt.Errorf("describe: %w", liberrors.ErrClientBadStatusCode{Code: base.StatusUnauthorized, Message: "Unauthorized"}), FailureAuth},
		{fmt.Errorf("describe: %w", liberrors.ErrClientBadStatusCode{Code: base.StatusForbidden, Message: "Forbidden"}), FailureAuth},
		{fmt.Errorf("describe: %w", liberrors.ErrClientBadStatusCode{Code: base.StatusNotFound, Message: "Not Found"}), FailureNotFound},
		{fmt.Errorf("describe: %w", liberrors.ErrClientBadStatusCode{Code: base.StatusInternalServerError, Message: "x"}), FailureOther},
		{errNoSupportedTrack, FailureCodec},
		{errors.New("something odd"), FailureOther},
	}
	for _, c := range cases {
		if got := classifyFailure(c.err); got != c.want {
			t.Errorf("classifyFailure(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}

// TestTransportSwitchIsDebug: a camera that takes TCP only makes an
// "auto" session switch transports on every connect: logged at debug, so
// that INFO stays quiet in steady state.
func TestTransportSwitchIsDebug(t *testing.T) {
	cams := testkit.StartCameras(t, camsim.Config{Cameras: 1, GOP: 25}) // TCP only
	var logs testkit.SyncBuffer
	s := record(t, testkit.OpenStore(t), Config{Stream: "cam0", URL: cams.URL(0), Transport: "auto",
		Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}, func() {
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if strings.Contains(logs.String(), "transport switched") {
				return
			}
		}
	})
	_ = s
	var switched bool
	for _, line := range strings.Split(logs.String(), "\n") {
		if !strings.Contains(line, "transport switched") {
			continue
		}
		switched = true
		if !strings.Contains(line, `"level":"DEBUG"`) {
			t.Errorf("transport switch logged above debug: %s", line)
		}
	}
	if !switched {
		t.Fatalf("no transport switch logged; logs:\n%s", logs.String())
	}
}
