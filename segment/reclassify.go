package segment

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Reclassify gives a closed segment of this store another class without
// copying its bytes: a segment a node recorded as a replica (buffer)
// becomes part of its archive when it is the stream's home. The file is
// verified against its checksum first (a mismatch quarantines it, as a
// read does, and the error wraps ErrChecksumMismatch); its origin and
// recording node stay what they were.
//
// Crash safety: the new name is a hard link made (and its directory
// synced) before the index swaps the entries in one synced batch, and the
// old name is removed last. A crash in between leaves the same bytes under
// both names; recovery indexes the stray one, so the range is held twice,
// never lost.
func (s *Store) Reclassify(si SegmentInfo, class Class) (SegmentInfo, error) {
	if s.opts.ReadOnly {
		return SegmentInfo{}, ErrReadOnly
	}
	if !class.valid() {
		return SegmentInfo{}, fmt.Errorf("segment: reclassify: invalid class %d", class)
	}
	e, err := s.lookup(si)
	if err != nil {
		return SegmentInfo{}, err
	}
	if e.Class == class {
		return e.info(), nil
	}
	if e.Open || s.isActive(e.Path) {
		return SegmentInfo{}, fmt.Errorf("segment: reclassify %s: still being written", e.Path)
	}
	if _, err := s.readVerified(e); err != nil {
		return SegmentInfo{}, fmt.Errorf("segment: reclassify: %w", err)
	}
	n := *e
	n.Class = class
	n.Path = segmentRelPath(n.Stream, n.Start, class, n.Origin, n.Node)
	oldAbs, newAbs := s.abs(e.Path), s.abs(n.Path)
	s.mu.Lock()
	busy := s.active[n.Path]
	s.active[n.Path] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.active, n.Path)
		s.mu.Unlock()
	}()
	if busy {
		return SegmentInfo{}, fmt.Errorf("segment: reclassify %s: %s is being written", e.Path, n.Path)
	}
	if _, err := s.fs.Stat(newAbs); err == nil {
		return SegmentInfo{}, fmt.Errorf("segment: reclassify %s: %s exists", e.Path, n.Path)
	}
	if err := s.fs.Link(oldAbs, newAbs); err != nil {
		return SegmentInfo{}, fmt.Errorf("segment: reclassify %s: %w", e.Path, err)
	}
	if err := syncDir(s.fs, s.fs.PathDir(newAbs)); err != nil {
		_ = s.fs.Remove(newAbs)
		return SegmentInfo{}, fmt.Errorf("segment: reclassify %s: %w", e.Path, err)
	}
	if err := s.swapEntry(e, &n); err != nil {
		_ = s.fs.Remove(newAbs)
		return SegmentInfo{}, fmt.Errorf("segment: reclassify %s: index: %w", e.Path, err)
	}
	if err := s.fs.Remove(oldAbs); err != nil && !errors.Is(err, os.ErrNotExist) {
		// The old name is a stray hard link; recovery indexes it again and
		// retention removes it in time.
		s.log.Warn("reclassify: cannot remove the old name", "path", e.Path, "err", err)
	}
	return n.info(), nil
}

// swapEntry replaces old by n in one synced batch.
func (s *Store) swapEntry(old, n *entry) (err error) {
	if err := s.rlock(); err != nil {
		return err
	}
	defer s.dbMu.RUnlock()
	defer s.recoverIndex(&err)
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.Delete(segmentKey(old), nil); err != nil {
		return err
	}
	if err := b.Set(segmentKey(n), n.encode(), nil); err != nil {
		return err
	}
	return b.Commit(pebble.Sync)
}

// DeleteRange is DeleteBefore over the segments of class overlapping
// [from, before) that end by before: its cost is proportional to what the range holds, not to
// the stream's whole history (the rolling buffer evicts from its front
// this way). Source outages are left alone.
func (s *Store) DeleteRange(stream string, class Class, from, before time.Time) (rep DeleteReport, err error) {
	return s.deleteBefore(stream, class, from, before, false)
}
