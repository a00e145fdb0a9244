package segment

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Sentinel errors callers branch on.
var (
	// ErrInvalidStreamID is wrapped by every error about a malformed stream id.
	ErrInvalidStreamID = errors.New("invalid stream id")
	// ErrChecksumMismatch means a closed segment's bytes no longer match the
	// checksum recorded when it was closed. The file has been quarantined and
	// its index entry dropped, so its time range is now a gap.
	ErrChecksumMismatch = errors.New("segment checksum mismatch")
	// ErrNoCoverage means a requested range holds no recorded media.
	ErrNoCoverage = errors.New("no recorded media in range")
	// ErrInUse means another process (a running node, or another command)
	// holds the data directory's index open.
	ErrInUse = errors.New("data directory in use by another process")
	// ErrReadOnly is returned by operations that would modify a store opened
	// with Options.ReadOnly.
	ErrReadOnly = errors.New("segment store is read-only")
	// ErrClosed is returned by a Writer or Store that has been closed.
	ErrClosed = errors.New("closed")
	// ErrIndexCorrupt means a file of the index is damaged (it fails its
	// checksum, is torn or missing): every later index access fails. The
	// segment files are intact; RebuildIndex rebuilds the index from them.
	// Errors wrapping it are *IndexCorruptError.
	ErrIndexCorrupt = errors.New("index is corrupt")
)

// IndexCorruptError is the error of a store whose index is corrupt. It
// wraps ErrIndexCorrupt and Pebble's error.
type IndexCorruptError struct {
	Dir    string // the data directory
	File   string // the damaged file, relative to Dir ("" if Pebble names none)
	Detail string // what is wrong with it, in Pebble's words
	Err    error  // Pebble's error
}

func (e *IndexCorruptError) Error() string {
	where := ""
	if e.File != "" {
		where = e.File + ": "
	}
	return fmt.Sprintf("index of %s is corrupt (%s%s)", e.Dir, where, e.Detail)
}

// Unwrap returns ErrIndexCorrupt and Pebble's error.
func (e *IndexCorruptError) Unwrap() []error { return []error{ErrIndexCorrupt, e.Err} }

// Class tells what a segment is kept for.
type Class uint8

const (
	// ClassArchive is the home node's archive, kept for the stream's retention.
	ClassArchive Class = iota
	// ClassBuffer is a replica's rolling buffer.
	ClassBuffer
)

// String returns "archive" or "buffer".
func (c Class) String() string {
	switch c {
	case ClassArchive:
		return "archive"
	case ClassBuffer:
		return "buffer"
	}
	return fmt.Sprintf("class(%d)", uint8(c))
}

func (c Class) valid() bool { return c <= ClassBuffer }

// ParseClass is the inverse of Class.String.
func ParseClass(s string) (Class, error) {
	switch s {
	case "archive":
		return ClassArchive, nil
	case "buffer":
		return ClassBuffer, nil
	}
	return 0, fmt.Errorf("segment: unknown class %q (want archive or buffer)", s)
}

// Origin tells how a segment came to be on this node.
type Origin uint8

const (
	// OriginLive segments were recorded from the camera by this node.
	OriginLive Origin = iota
	// OriginBackfill segments were copied from a peer to fill a gap.
	OriginBackfill
)

// String returns "live" or "backfill".
func (o Origin) String() string {
	switch o {
	case OriginLive:
		return "live"
	case OriginBackfill:
		return "backfill"
	}
	return fmt.Sprintf("origin(%d)", uint8(o))
}

func (o Origin) valid() bool { return o <= OriginBackfill }

// ParseOrigin is the inverse of Origin.String.
func ParseOrigin(s string) (Origin, error) {
	switch s {
	case "live":
		return OriginLive, nil
	case "backfill":
		return OriginBackfill, nil
	}
	return 0, fmt.Errorf("segment: unknown origin %q (want live or backfill)", s)
}

// Interval is the half-open wall-clock range [Start, End).
type Interval struct{ Start, End time.Time }

// Duration is End - Start.
func (iv Interval) Duration() time.Duration { return iv.End.Sub(iv.Start) }

// SegmentInfo describes one indexed segment.
type SegmentInfo struct {
	Stream, Node string
	Start, End   time.Time
	Bytes        int64
	Path         string // relative to the data directory, slash-separated
	Checksum     string // "sha256:<hex>" of the closed file; empty while the segment is being written
	Class        Class
	Origin       Origin
}

// Interval returns [Start, End).
func (si SegmentInfo) Interval() Interval { return Interval{si.Start, si.End} }

// FsyncPolicy says when segment files are made durable.
type FsyncPolicy uint8

const (
	// FsyncPart fsyncs a segment file after every part (the default): a crash
	// loses at most the part being written.
	FsyncPart FsyncPolicy = iota
	// FsyncInterval fsyncs a segment file at its first part written at least
	// Options.FsyncInterval after its previous fsync: fewer fsyncs, a crash
	// loses up to FsyncInterval plus one part.
	FsyncInterval
)

// Options configure a Store. Zero values take the documented defaults,
// applied by EnsureDefaults.
type Options struct {
	// Dir is the data directory (required). Segments live under
	// Dir/segments, the index under Dir/index, quarantined files under
	// Dir/quarantine.
	Dir string
	// FS is the file system all I/O goes through. Default vfs.Default.
	FS vfs.FS
	// Node is the node id written into index entries and file names.
	// Default "local". Same character rules as stream ids.
	Node string
	// Logger receives recovery and fault reports. Default slog.Default().
	Logger *slog.Logger
	// Fsync is the durability policy of segment files. Default FsyncPart.
	Fsync FsyncPolicy
	// FsyncInterval is the grouping interval of FsyncInterval. Default 1s.
	FsyncInterval time.Duration
	// OnIndexFailure, if set, is called once when the index fails for good
	// (Pebble reported a fatal error, such as a failed WAL write): every
	// later index write returns that error. The process should restart;
	// crash recovery on Open puts the index back in step with the files.
	OnIndexFailure func(error)
	// OnQuarantine, if set, is called (outside the store's locks) when a
	// closed segment that failed its checksum on a read was quarantined:
	// its range is a hole for backfill to fill.
	OnQuarantine func(SegmentInfo)
	// ReadOnly opens the index read-only and skips crash recovery: for
	// inspection tools. Writers, repairs and quarantining are refused.
	// Pebble still takes the directory lock, so a read-only store cannot
	// be opened while a node has the same directory open.
	ReadOnly bool
	// DropPartEvery, when above 0, makes every writer silently leave out
	// one part in that many (for 100 its 20th, 120th, ...: early in a
	// short run): the part is not written, yet the segment's end, index
	// entry and checksum go on as if it were. Only the chaos suite's
	// tests of its own checkers set it (engine.Config).
	DropPartEvery uint64
}

// EnsureDefaults fills zero fields with their defaults.
func (o *Options) EnsureDefaults() {
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.Node == "" {
		o.Node = "local"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.FsyncInterval <= 0 {
		o.FsyncInterval = time.Second
	}
}

// Store is one node's segment files and their index. It is safe for
// concurrent use; each Writer is used by one goroutine.
type Store struct {
	opts Options
	fs   vfs.FS
	db   *pebble.DB
	log  *slog.Logger

	recovery RecoveryReport

	mu     sync.Mutex
	active map[string]bool // relative paths of segments being written
	// dirMu is held from making a day directory to creating a file in it,
	// and while an empty one is removed, so that retention never removes
	// the directory a writer is about to create its segment in.
	dirMu sync.Mutex

	// dbMu guards db against use after Close (Pebble panics on a closed
	// DB): every index access holds it for reading.
	dbMu     sync.RWMutex
	dbClosed bool

	// failed is the error every index access returns once the index failed
	// for good: Pebble reported a fatal error, or a file is corrupt.
	failed atomic.Pointer[error]

	parts, deletedSegments, deletedBytes atomic.Uint64
}

// StoreStats are the store's counters since Open.
type StoreStats struct {
	// PartsWritten counts segment parts (about 1 s of media each) written.
	PartsWritten uint64
	// SegmentsDeleted and BytesDeleted count what retention removed.
	SegmentsDeleted, BytesDeleted uint64
}

// Stats returns the store's counters.
func (s *Store) Stats() StoreStats {
	return StoreStats{PartsWritten: s.parts.Load(), SegmentsDeleted: s.deletedSegments.Load(), BytesDeleted: s.deletedBytes.Load()}
}

// IndexErr returns the error of the index once it failed for good (a fatal
// Pebble error, or corruption: then it wraps ErrIndexCorrupt), or nil while
// it works.
func (s *Store) IndexErr() error {
	if f := s.failed.Load(); f != nil {
		return *f
	}
	return nil
}

// recoverIndex, deferred by every index access, turns a fatal Pebble error
// (a panic of PebbleLogger.Fatalf) or a corruption error into *errp and
// marks the index failed.
func (s *Store) recoverIndex(errp *error) {
	if r := recover(); r != nil {
		fe, ok := r.(*PebbleFatalError)
		if !ok {
			panic(r)
		}
		*errp = fmt.Errorf("segment index: %w", fe)
		s.fail(*errp)
		return
	}
	if *errp != nil && !errors.Is(*errp, ErrIndexCorrupt) && pebble.IsCorruptionError(*errp) {
		*errp = s.corruptErr(*errp)
		s.fail(*errp)
	}
}

// fail marks the index failed with err, once.
func (s *Store) fail(err error) {
	if !s.failed.CompareAndSwap(nil, &err) {
		return
	}
	if errors.Is(err, ErrIndexCorrupt) {
		s.log.Error("segment index is corrupt: every index access now fails; rebuild it with fsck --repair", "err", err)
	} else {
		s.log.Error("segment index failed: every index access now fails; restart the node to recover", "err", err)
	}
	if s.opts.OnIndexFailure != nil {
		s.opts.OnIndexFailure(err)
	}
}

// damagedIndex tells whether pebble.Open failed on a damaged index: a
// corrupt MANIFEST or WAL, or a table that is missing or has another size
// than the MANIFEST says (Pebble's consistency check on open, which it does
// not mark as corruption).
func damagedIndex(err error) bool {
	return pebble.IsCorruptionError(err) || errors.Is(err, os.ErrNotExist) ||
		strings.Contains(err.Error(), "object size mismatch")
}

// corruptErr turns Pebble's corruption error into an *IndexCorruptError.
func (s *Store) corruptErr(err error) error {
	f, detail, ok := DescribeCorruption(err)
	if !ok {
		detail = err.Error()
	}
	e := &IndexCorruptError{Dir: s.opts.Dir, Detail: detail, Err: err}
	if f != "" {
		// Pebble names it under the directory it was opened with.
		e.File = indexDir + "/" + s.fs.PathBase(f)
	}
	return e
}

// rlock read-locks dbMu, or returns ErrClosed after Close.
func (s *Store) rlock() error {
	s.dbMu.RLock()
	if s.dbClosed {
		s.dbMu.RUnlock()
		return fmt.Errorf("segment store: %w", ErrClosed)
	}
	if err := s.IndexErr(); err != nil {
		s.dbMu.RUnlock()
		return err
	}
	return nil
}

// Directory names under Options.Dir.
const (
	segmentsDir   = "segments"
	indexDir      = "index"
	quarantineDir = "quarantine"
)

// Open opens or creates the store in opts.Dir and, unless ReadOnly, runs
// crash recovery (see Recovery).
func Open(opts Options) (_ *Store, err error) {
	defer RecoverPebbleFatal(&err) // a fatal error while recovering the index
	opts.EnsureDefaults()
	if opts.Dir == "" {
		return nil, errors.New("segment: Options.Dir is required")
	}
	if err := validateID(opts.Node); err != nil {
		return nil, fmt.Errorf("segment: node id: %w", err)
	}
	s := &Store{opts: opts, fs: opts.FS, log: opts.Logger, active: map[string]bool{}}
	if !opts.ReadOnly {
		for _, d := range []string{opts.Dir, s.abs(segmentsDir), s.abs(quarantineDir)} {
			if err := s.fs.MkdirAll(d, 0o755); err != nil {
				return nil, fmt.Errorf("segment: create %s: %w", d, err)
			}
		}
		// Make the directories themselves durable before files go in.
		for _, d := range []string{s.fs.PathDir(opts.Dir), opts.Dir} {
			if err := syncDir(s.fs, d); err != nil {
				return nil, fmt.Errorf("segment: sync %s: %w", d, err)
			}
		}
	} else if _, err := s.fs.Stat(s.abs(indexDir)); err != nil {
		return nil, fmt.Errorf("segment: open %s read-only: %w", opts.Dir, err)
	}
	log := PebbleLogger{opts.Logger.With("component", "pebble", "db", "index")}
	db, err := pebble.Open(s.abs(indexDir), &pebble.Options{
		FS:                 opts.FS,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             log,
		EventListener:      log.EventListener(),
		ReadOnly:           opts.ReadOnly,
	})
	if err != nil {
		if errors.Is(err, syscall.EAGAIN) || strings.Contains(err.Error(), "lock") {
			// Pebble locks the directory, even read-only.
			return nil, fmt.Errorf("segment: open index %s: %w (a node running on %s? stop it, or ask it over its API with understudy ctl): %v",
				s.abs(indexDir), ErrInUse, opts.Dir, err)
		}
		if damagedIndex(err) {
			return nil, s.corruptErr(err)
		}
		return nil, fmt.Errorf("segment: open index: %w", err)
	}
	s.db = db
	if !opts.ReadOnly {
		rep, err := s.check(true, false)
		if err != nil {
			_ = db.Close()
			if errors.Is(err, ErrIndexCorrupt) {
				return nil, err
			}
			return nil, fmt.Errorf("segment: recovery: %w", err)
		}
		s.recovery = rep
		for _, p := range rep.Problems {
			s.log.Warn("segment recovery", "kind", p.Kind, "stream", p.Stream, "path", p.Path, "detail", p.Detail, "repaired", p.Repaired)
		}
	}
	return s, nil
}

// Recovery reports what Open found and fixed: trimmed torn tails, files
// indexed or quarantined, entries dropped (their ranges are now gaps).
func (s *Store) Recovery() RecoveryReport { return s.recovery }

// Dir is the data directory.
func (s *Store) Dir() string { return s.opts.Dir }

// Close closes the index. Writers must be closed first.
func (s *Store) Close() (err error) {
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	if s.dbClosed {
		return nil
	}
	s.dbClosed = true
	defer RecoverPebbleFatal(&err)
	return s.db.Close()
}

func (s *Store) abs(rel string) string {
	if rel == "" {
		return s.opts.Dir
	}
	return s.fs.PathJoin(s.opts.Dir, fromSlash(rel))
}

// fromSlash turns a slash-separated relative path into the FS's separator.
func fromSlash(rel string) string {
	if os.PathSeparator == '/' {
		return rel
	}
	b := []byte(rel)
	for i := range b {
		if b[i] == '/' {
			b[i] = os.PathSeparator
		}
	}
	return string(b)
}

const maxIDLen = 128

// ValidateStreamID checks that id can name a directory: 1..128 bytes of
// [A-Za-z0-9._-], not "." or "..". The error wraps ErrInvalidStreamID.
func ValidateStreamID(id string) error {
	if err := validateID(id); err != nil {
		return fmt.Errorf("stream %q: %w", id, err)
	}
	return nil
}

func validateID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty", ErrInvalidStreamID)
	}
	if len(id) > maxIDLen {
		return fmt.Errorf("%w: %d bytes, at most %d allowed", ErrInvalidStreamID, len(id), maxIDLen)
	}
	if id == "." || id == ".." {
		return fmt.Errorf("%w: %q is a path element", ErrInvalidStreamID, id)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return fmt.Errorf("%w: byte %#02x at offset %d (allowed: A-Z a-z 0-9 . _ -)", ErrInvalidStreamID, c, i)
		}
	}
	return nil
}
