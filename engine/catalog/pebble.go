package catalog

import (
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/understudy-nvr/understudy/segment"
)

// FatalError is the panic value of the Pebble logger's Fatalf (see
// segment.PebbleLogger): a write of the catalog that hits it returns it as
// an error, and a background failure crashes with a stack rather than a
// silent exit.
type FatalError = segment.PebbleFatalError

// PebbleLogger adapts a slog.Logger to pebble.Logger; Fatalf logs at error
// level and panics with a *FatalError.
type PebbleLogger = segment.PebbleLogger

// OpenDB opens (creating if needed) the node's control-state Pebble DB in
// dir on fs (nil fs: the OS file system), at the newest format, logging
// through log (nil: slog.Default()) with component=pebble. A damaged file
// gives an error wrapping ErrCorruptDB, then and on later reads. The catalog and
// other control state share it under distinct key prefixes.
func OpenDB(dir string, fs vfs.FS, log *slog.Logger) (db *pebble.DB, err error) {
	defer segment.RecoverPebbleFatal(&err)
	if fs == nil {
		fs = vfs.Default
	}
	if log == nil {
		log = slog.Default()
	}
	plog := PebbleLogger{Log: log.With("component", "pebble", "db", "control")}
	opts := &pebble.Options{
		FS:                 fs,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             plog,
		EventListener:      plog.EventListener(),
	}
	db, err = pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("catalog: open pebble %s: %w", dir, corruptErr(err))
	}
	return db, nil
}
