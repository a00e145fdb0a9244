package catalog

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/understudy-nvr/understudy/segment"
)

// Sentinel errors callers branch on (with errors.Is).
var (
	// ErrNotFound: no live stream has the id.
	ErrNotFound = errors.New("stream not found")
	// ErrAlreadyExists: Create found a live stream with the id.
	ErrAlreadyExists = errors.New("stream already exists")
	// ErrCorruptDB: a file of the DB is damaged (it fails its checksum, is
	// torn or missing). The catalog cannot be rebuilt from segment files.
	ErrCorruptDB = errors.New("db is corrupt")
)

// corruptErr wraps a Pebble corruption error in ErrCorruptDB, named by the
// damaged file; other errors pass unchanged.
func corruptErr(err error) error {
	file, detail, ok := segment.DescribeCorruption(err)
	if !ok {
		return err
	}
	if file != "" {
		detail = file + ": " + detail
	}
	return fmt.Errorf("%w (%s)", ErrCorruptDB, detail)
}

// List page sizes.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// Config configures a Catalog.
type Config struct {
	// DB is the node's control-state Pebble DB (see OpenDB). Required. The
	// catalog does not close it.
	DB *pebble.DB
	// Prefix is prepended to every key the catalog writes, so the node can
	// share one DB between components. Default "catalog/".
	Prefix string
	// NodeID is this node's id, the tie-break of the versions it stamps.
	// Required; 1..128 bytes of printable UTF-8, stable across restarts.
	NodeID string
	// TombstoneTTL is how long a deleted stream's tombstone is kept (to win
	// over late, older writes from other nodes) before CollectTombstones
	// drops it. Default 24h.
	TombstoneTTL time.Duration
	// Now is the wall clock of the HLC and of tombstone expiry. Default
	// time.Now.
	Now func() time.Time
	// Logger receives the catalog's log lines. Default slog.Default().
	Logger *slog.Logger
}

// EnsureDefaults fills the zero fields that have defaults.
func (c *Config) EnsureDefaults() {
	if c.Prefix == "" {
		c.Prefix = "catalog/"
	}
	if c.TombstoneTTL == 0 {
		c.TombstoneTTL = 24 * time.Hour
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Catalog is the set of stream definitions a node knows, one last-writer-
// wins register per stream id, persisted in Pebble. All methods are safe
// for concurrent use. A write that fails (validation, a storage error)
// changes nothing, in memory or on disk.
type Catalog struct {
	cfg Config
	log *slog.Logger

	mu       sync.RWMutex
	entries  map[string]Entry // by id, tombstones included
	ids      []string         // sorted keys of entries
	clock    hlc
	failed   error // a Pebble fatal error seen by a write: the DB is unusable
	watchers map[*watcher]struct{}
}

type watcher struct{ ch chan struct{} }

// Open loads the catalog stored in cfg.DB under cfg.Prefix. A stored value
// that does not decode fails Open with an error naming its key.
func Open(cfg Config) (*Catalog, error) {
	cfg.EnsureDefaults()
	if cfg.DB == nil {
		return nil, errors.New("catalog: Config.DB is required")
	}
	if err := ValidateNodeID(cfg.NodeID); err != nil {
		return nil, fmt.Errorf("catalog: Config.NodeID: %w", err)
	}
	if cfg.TombstoneTTL < 0 {
		return nil, fmt.Errorf("catalog: Config.TombstoneTTL must be positive, got %s", cfg.TombstoneTTL)
	}
	c := &Catalog{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "catalog"),
		entries:  make(map[string]Entry),
		clock:    hlc{now: cfg.Now},
		watchers: make(map[*watcher]struct{}),
	}
	if err := c.load(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Catalog) load() (err error) {
	defer segment.RecoverPebbleFatal(&err)
	lower := []byte(c.cfg.Prefix)
	it, err := c.cfg.DB.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(lower)})
	if err != nil {
		return fmt.Errorf("catalog: load: %w", corruptErr(err))
	}
	for ok := it.First(); ok; ok = it.Next() {
		key := string(it.Key())
		e, err := DecodeEntry(it.Value())
		if err != nil {
			_ = it.Close()
			return fmt.Errorf("catalog: load key %q: %w", key, err)
		}
		if c.key(e.ID) != key {
			_ = it.Close()
			return fmt.Errorf("catalog: load key %q: %w: holds entry %q", key, ErrCorruptEntry, e.ID)
		}
		c.entries[e.ID] = e
		c.ids = append(c.ids, e.ID) // the iterator yields keys in order
		c.clock.observe(e.Version.WallMS, e.Version.Logical)
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("catalog: load: %w", corruptErr(err))
	}
	return nil
}

// prefixEnd returns the smallest key greater than every key with prefix p
// (nil: no upper bound).
func prefixEnd(p []byte) []byte {
	end := slices.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

func (c *Catalog) key(id string) string { return c.cfg.Prefix + id }

// now returns the wall clock in the form stored (UTC, ns precision, no
// monotonic reading), so a Stream reads back equal after a restart.
func (c *Catalog) now() time.Time { return time.Unix(0, c.cfg.Now().UnixNano()).UTC() }

// stamp returns a new local version. Callers hold mu.
func (c *Catalog) stamp() Version {
	w, l := c.clock.next()
	return Version{WallMS: w, Logical: l, Node: c.cfg.NodeID}
}

// commit writes e (synced) and, only if that worked, installs it in memory
// and notifies watchers. Callers hold mu for writing.
func (c *Catalog) commit(e Entry) error {
	if err := c.write(func(b *pebble.Batch) error {
		return b.Set([]byte(c.key(e.ID)), EncodeEntry(e), nil)
	}); err != nil {
		return fmt.Errorf("catalog: write %q: %w", e.ID, err)
	}
	if _, ok := c.entries[e.ID]; !ok {
		i, _ := slices.BinarySearch(c.ids, e.ID)
		c.ids = slices.Insert(c.ids, i, e.ID)
	}
	c.entries[e.ID] = e
	c.notify()
	return nil
}

// write applies one synced batch. A Pebble fatal error (a panic of
// PebbleLogger.Fatalf on this goroutine) becomes an error, and every later
// write fails with it: Pebble's commit pipeline is unusable after one.
func (c *Catalog) write(fill func(*pebble.Batch) error) (err error) {
	if c.failed != nil {
		return fmt.Errorf("storage failed earlier: %w", c.failed)
	}
	defer func() {
		if r := recover(); r != nil {
			fe, ok := r.(*FatalError)
			if !ok {
				panic(r)
			}
			c.failed = fe
			err = fe
		}
	}()
	b := c.cfg.DB.NewBatch()
	defer b.Close()
	if err := fill(b); err != nil {
		return err
	}
	return b.Commit(pebble.Sync)
}

func (c *Catalog) notify() {
	for w := range c.watchers {
		select {
		case w.ch <- struct{}{}:
		default: // a notification is already pending: coalesced
		}
	}
}

func (c *Catalog) live(id string) (Entry, bool) {
	e, ok := c.entries[id]
	if !ok || e.Deleted || !isStreamEntryID(id) {
		return Entry{}, false
	}
	return e, true
}

// Create adds a stream. It normalizes s (credentials out of the URL,
// defaults), validates it, and sets CreateTime and UpdateTime. A live
// stream with the same id gives ErrAlreadyExists; a tombstone does not
// stand in the way. It returns the stream as stored.
func (c *Catalog) Create(s Stream) (Stream, error) {
	s = s.Clone()
	s.Normalize()
	if err := s.Validate(); err != nil {
		return Stream{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.live(s.ID); ok {
		return Stream{}, fmt.Errorf("catalog: stream %q: %w", s.ID, ErrAlreadyExists)
	}
	now := c.now()
	s.CreateTime, s.UpdateTime = now, now
	e := Entry{ID: s.ID, Version: c.stamp(), Stream: s}
	if err := c.commit(e); err != nil {
		return Stream{}, err
	}
	c.log.Info("stream created", "stream", s, "version", e.Version.String())
	return s.Clone(), nil
}

// Get returns the live stream with the id, or ErrNotFound.
func (c *Catalog) Get(id string) (Stream, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.live(id)
	if !ok {
		return Stream{}, fmt.Errorf("catalog: stream %q: %w", id, ErrNotFound)
	}
	return e.Stream.Clone(), nil
}

// List returns live streams ordered by id, at most pageSize of them
// (0: DefaultPageSize; above MaxPageSize: MaxPageSize), starting after
// the position pageToken names ("" for the first page). next is the token
// of the following page, "" after the last one. A negative page size or a
// token List did not issue gives a *FieldError.
func (c *Catalog) List(pageSize int, pageToken string) (streams []Stream, next string, err error) {
	switch {
	case pageSize < 0:
		return nil, "", fieldErr("page_size", "must not be negative, got %d", pageSize)
	case pageSize == 0:
		pageSize = DefaultPageSize
	case pageSize > MaxPageSize:
		pageSize = MaxPageSize
	}
	after := ""
	if pageToken != "" {
		raw, err := base64.RawURLEncoding.DecodeString(pageToken)
		if err != nil || ValidateID(string(raw)) != nil {
			return nil, "", fieldErr("page_token", "invalid")
		}
		after = string(raw)
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	i := 0
	if after != "" {
		i, _ = slices.BinarySearch(c.ids, after)
		if i < len(c.ids) && c.ids[i] == after {
			i++
		}
	}
	for ; i < len(c.ids); i++ {
		e := c.entries[c.ids[i]]
		if e.Deleted || !isStreamEntryID(e.ID) {
			continue
		}
		if len(streams) == pageSize {
			return streams, base64.RawURLEncoding.EncodeToString([]byte(streams[len(streams)-1].ID)), nil
		}
		streams = append(streams, e.Stream.Clone())
	}
	return streams, "", nil
}

// Update applies a read-modify-write to the live stream with the id: apply
// gets a copy to change; the result is normalized and validated, keeps its
// id and CreateTime, and gets a new UpdateTime. An error of apply or of
// validation changes nothing. apply runs under the catalog's write lock and
// must not call the Catalog.
func (c *Catalog) Update(id string, apply func(*Stream) error) (Stream, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old, ok := c.live(id)
	if !ok {
		return Stream{}, fmt.Errorf("catalog: stream %q: %w", id, ErrNotFound)
	}
	s := old.Stream.Clone()
	if err := apply(&s); err != nil {
		return Stream{}, err
	}
	if s.ID != id {
		return Stream{}, fieldErr("id", "cannot be changed")
	}
	s.Normalize()
	if err := s.Validate(); err != nil {
		return Stream{}, err
	}
	s.CreateTime = old.Stream.CreateTime
	s.UpdateTime = c.now()
	e := Entry{ID: id, Version: c.stamp(), Stream: s.Clone()}
	if err := c.commit(e); err != nil {
		return Stream{}, err
	}
	c.log.Info("stream updated", "stream", s, "version", e.Version.String())
	return s, nil
}

// Delete replaces the live stream with the id by a tombstone, or returns
// ErrNotFound.
func (c *Catalog) Delete(id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.live(id); !ok {
		return fmt.Errorf("catalog: stream %q: %w", id, ErrNotFound)
	}
	e := Entry{ID: id, Version: c.stamp(), Deleted: true}
	if err := c.commit(e); err != nil {
		return err
	}
	c.log.Info("stream deleted", "id", id, "version", e.Version.String())
	return nil
}

// Enabled returns the live, enabled streams ordered by id: what the node
// should record (before placement).
func (c *Catalog) Enabled() []Stream {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []Stream
	for _, id := range c.ids {
		if e := c.entries[id]; !e.Deleted && e.Stream.Enabled && isStreamEntryID(id) {
			out = append(out, e.Stream.Clone())
		}
	}
	return out
}

// Watch returns a channel that receives a value after every change (local
// write, applied merge, collected tombstone). Notifications coalesce: one
// pending value stands for any number of changes, so the reader should
// re-read the catalog. cancel stops the notifications and closes the
// channel; it is idempotent.
func (c *Catalog) Watch() (<-chan struct{}, func()) {
	w := &watcher{ch: make(chan struct{}, 1)}
	c.mu.Lock()
	c.watchers[w] = struct{}{}
	c.mu.Unlock()
	var once sync.Once
	return w.ch, func() {
		once.Do(func() {
			c.mu.Lock()
			delete(c.watchers, w)
			close(w.ch)
			c.mu.Unlock()
		})
	}
}

// Merge applies an entry from another node if it is newer (by Version)
// than the local one, and moves the local HLC past its stamp either way.
// An invalid entry gives an error and changes nothing. A tombstone older
// than the tombstone TTL for an id the catalog does not hold is dropped
// (applied false): it would only be collected again.
func (c *Catalog) Merge(e Entry) (applied bool, err error) {
	if err := e.Validate(); err != nil {
		return false, fmt.Errorf("catalog: merge %q: %w", e.ID, err)
	}
	e = e.Clone()
	if e.Deleted {
		e.Stream = Stream{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clock.observe(e.Version.WallMS, e.Version.Logical)
	old, ok := c.entries[e.ID]
	if ok && old.Version.Compare(e.Version) >= 0 {
		return false, nil
	}
	if !ok && e.Deleted && c.expired(e) {
		return false, nil
	}
	if err := c.commit(e); err != nil {
		return false, err
	}
	c.log.Debug("entry merged", "entry", e)
	return true, nil
}

// Entries returns every entry, tombstones included, ordered by id: the
// state anti-entropy exchanges.
func (c *Catalog) Entries() []Entry {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]Entry, 0, len(c.ids))
	for _, id := range c.ids {
		out = append(out, c.entries[id].Clone())
	}
	return out
}

func (c *Catalog) expired(e Entry) bool {
	return e.Deleted && c.cfg.Now().Sub(e.Version.Time()) >= c.cfg.TombstoneTTL
}

// CollectTombstones drops the tombstones older than the tombstone TTL (by
// their version's wall time) and returns how many it dropped. A storage
// error is logged and drops none.
func (c *Catalog) CollectTombstones() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var drop []string
	for _, id := range c.ids {
		if c.expired(c.entries[id]) {
			drop = append(drop, id)
		}
	}
	if len(drop) == 0 {
		return 0
	}
	err := c.write(func(b *pebble.Batch) error {
		for _, id := range drop {
			if err := b.Delete([]byte(c.key(id)), nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		c.log.Error("collect tombstones", "err", err)
		return 0
	}
	for _, id := range drop {
		delete(c.entries, id)
	}
	c.ids = slices.DeleteFunc(c.ids, func(id string) bool { _, ok := c.entries[id]; return !ok })
	c.notify()
	c.log.Info("tombstones collected", "count", len(drop))
	return len(drop)
}
