package catalog

import (
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// FatalError is the panic value of the Pebble logger's Fatalf. Pebble calls
// Fatalf when it cannot go on (a failed WAL or MANIFEST sync, corruption);
// its default logger then exits the process. Ours logs the message and
// panics with a *FatalError instead, so a write of the catalog that hits it
// returns an error (see Catalog) and a background failure crashes with a
// stack rather than a silent exit.
type FatalError struct{ Msg string }

func (e *FatalError) Error() string { return "pebble fatal: " + e.Msg }

// PebbleLogger adapts a slog.Logger to pebble.Logger. Fatalf logs at error
// level and panics with a *FatalError.
type PebbleLogger struct{ Log *slog.Logger }

// Infof logs at info level.
func (l PebbleLogger) Infof(format string, args ...any) {
	l.logger().Info(fmt.Sprintf(format, args...))
}

// Errorf logs at error level.
func (l PebbleLogger) Errorf(format string, args ...any) {
	l.logger().Error(fmt.Sprintf(format, args...))
}

// Fatalf logs at error level and panics with a *FatalError.
func (l PebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.logger().Error("pebble fatal", "msg", msg)
	panic(&FatalError{Msg: msg})
}

func (l PebbleLogger) logger() *slog.Logger {
	if l.Log == nil {
		return slog.Default().With("component", "pebble")
	}
	return l.Log
}

// OpenDB opens (creating if needed) the node's control-state Pebble DB in
// dir on fs (nil fs: the OS file system), at the newest format, logging
// through slog.Default() with component=pebble. The catalog and other
// control state share it under distinct key prefixes.
func OpenDB(dir string, fs vfs.FS) (db *pebble.DB, err error) {
	defer recoverFatal(&err)
	if fs == nil {
		fs = vfs.Default
	}
	opts := &pebble.Options{
		FS:                 fs,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             PebbleLogger{Log: slog.Default().With("component", "pebble")},
	}
	db, err = pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("catalog: open pebble %s: %w", dir, err)
	}
	return db, nil
}

// recoverFatal turns a *FatalError panic on this goroutine into *errp; any
// other panic goes on.
func recoverFatal(errp *error) {
	if r := recover(); r != nil {
		fe, ok := r.(*FatalError)
		if !ok {
			panic(r)
		}
		*errp = fe
	}
}
