package segment

import (
	"fmt"
	"log/slog"
)

// PebbleFatalError is the panic value of PebbleLogger.Fatalf.
type PebbleFatalError struct{ Msg string }

func (e *PebbleFatalError) Error() string { return "pebble fatal: " + e.Msg }

// PebbleLogger adapts a slog.Logger to pebble.Logger (info lines at debug
// level: they are Pebble's own housekeeping).
//
// Pebble calls Fatalf when it cannot go on: a failed WAL write or sync, a
// failed MANIFEST update, corruption. Its default logger then exits the
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
