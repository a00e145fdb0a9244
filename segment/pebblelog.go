package segment

import (
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
)

// PebbleFatalError is the panic value of PebbleLogger.Fatalf.
type PebbleFatalError struct{ Msg string }

func (e *PebbleFatalError) Error() string { return "pebble fatal: " + e.Msg }

// PebbleLogger adapts a slog.Logger to pebble.Logger (info lines at debug
// level: they are Pebble's own housekeeping).
//
// Pebble calls Fatalf when it cannot go on: a failed WAL write or sync, a
// failed MANIFEST update (and, unless EventListener is installed,
// corruption found by a read). Its default logger then exits the
// process. A Fatalf that returns lets Pebble carry on as if the failed
// write had succeeded: a commit whose WAL write failed with EIO returns
// nil (TestIndexWriteFault shows it). This Fatalf logs at error level and
// panics with a *PebbleFatalError, which RecoverPebbleFatal turns back into
// an error for the caller of the failed write. On one of Pebble's own
// goroutines (a flush, a compaction) the panic crashes the process with a
// stack, as Pebble intends.
type PebbleLogger struct{ Log *slog.Logger }

// Infof logs at debug level.
func (l PebbleLogger) Infof(format string, args ...any) {
	l.Log.Debug("pebble: " + fmt.Sprintf(format, args...))
}

// Errorf logs at error level.
func (l PebbleLogger) Errorf(format string, args ...any) {
	l.Log.Error("pebble: " + fmt.Sprintf(format, args...))
}

// Fatalf logs at error level and panics with a *PebbleFatalError.
func (l PebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.Log.Error("pebble fatal: " + msg)
	panic(&PebbleFatalError{Msg: msg})
}

// EventListener returns the Pebble event listener of a DB logged through l.
//
// Pebble's default reaction to on-disk corruption (a table failing its
// checksum, say) is Fatalf. A panic raised from inside Pebble's read path
// leaves its file cache with outstanding references: the DB can then not
// even be closed, and the process dies with a trace. This listener logs the
// corruption in one line and returns, so the read that found it fails with
// an error that pebble.IsCorruptionError recognizes and CorruptFile
// attributes to a file; Pebble's own goroutines log it and carry on.
func (l PebbleLogger) EventListener() *pebble.EventListener {
	return &pebble.EventListener{DataCorruption: func(info pebble.DataCorruptionInfo) {
		l.Log.Error("pebble: on-disk corruption", "file", info.Path, "err", fmt.Sprint(info.Details))
	}}
}

// DescribeCorruption tells whether err is a Pebble corruption error and,
// if so, the damaged file it names ("" if none) and what is wrong, in one
// line (Pebble's error joins a multi-line detail carrier).
func DescribeCorruption(err error) (file, detail string, ok bool) {
	if err == nil || !pebble.IsCorruptionError(err) {
		return "", "", false
	}
	if info := pebble.ExtractDataCorruptionInfo(err); info != nil && info.Details != nil {
		return info.Path, fmt.Sprint(info.Details), true
	}
	return "", err.Error(), true
}

// RecoverPebbleFatal, deferred, turns a *PebbleFatalError panic on this
// goroutine into *errp; any other panic goes on.
func RecoverPebbleFatal(errp *error) {
	if r := recover(); r != nil {
		fe, ok := r.(*PebbleFatalError)
		if !ok {
			panic(r)
		}
		*errp = fe
	}
}
