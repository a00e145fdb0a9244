package session

import (
	"errors"
	"net"
	"strings"
	"syscall"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
)

// Failure classifies why a session does not record.
type Failure int

// The kinds of Failure.
const (
	FailureNone Failure = iota
	// FailureUnreachable: refused, timed out, no route, unresolved name, or
	// the camera stopped sending.
	FailureUnreachable
	// FailureAuth: the camera answered 401 or 403.
	FailureAuth
	// FailureNotFound: the camera answered 404.
	FailureNotFound
	// FailureCodec: the camera offers no supported track.
	FailureCodec
	// FailureOther: any other error (an RTSP status, a protocol error).
	FailureOther
)

// errNoSupportedTrack is the connection's error for a camera whose tracks
// the recorder cannot record.
var errNoSupportedTrack = errors.New("the camera offers no supported track (video H.264/H.265, audio AAC/G.711/Opus)")

// classifyFailure says what kind of failure ended a connection attempt
// (nil: the connection ended without an error, the camera went away).
func classifyFailure(err error) Failure {
	if err == nil {
		return FailureUnreachable
	}
	var bad liberrors.ErrClientBadStatusCode
	if errors.As(err, &bad) {
		switch bad.Code {
		case base.StatusUnauthorized, base.StatusForbidden:
			return FailureAuth
		case base.StatusNotFound:
			return FailureNotFound
		}
		return FailureOther
	}
	if errors.Is(err, errNoSupportedTrack) {
		return FailureCodec
	}
	var ne net.Error
	var dns *net.DNSError
	var op *net.OpError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH), errors.As(err, &dns), errors.As(err, &op):
		return FailureUnreachable
	case errors.As(err, &ne) && ne.Timeout():
		return FailureUnreachable
	}
	// gortsplib reports some of these as text only.
	msg := err.Error()
	for _, s := range []string{"timeout", "timed out", "EOF", "connection reset", "broken pipe", "terminated"} {
		if strings.Contains(msg, s) {
			return FailureUnreachable
		}
	}
	return FailureOther
}
