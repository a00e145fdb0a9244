package segment

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// ImportSegment stores a closed segment copied from a peer (backfill). The
// bytes must match si.Checksum and parse as a complete segment whose media
// duration gives si.End; the file is written under a temporary name,
// fsynced and renamed to
// segments/<stream>/<day>/<start>-<class>-backfill-<si.Node>.mp4, then
// indexed with OriginBackfill. It never overwrites an existing file. Which
// ranges to import (only holes) is the caller's policy. data belongs to
// the store once passed (the FS may modify it while writing): the caller
// must not use it after.
func (s *Store) ImportSegment(si SegmentInfo, class Class, data []byte) (SegmentInfo, error) {
	if s.opts.ReadOnly {
		return SegmentInfo{}, ErrReadOnly
	}
	if err := ValidateStreamID(si.Stream); err != nil {
		return SegmentInfo{}, fmt.Errorf("segment: import: %w", err)
	}
	if err := validateID(si.Node); err != nil {
		return SegmentInfo{}, fmt.Errorf("segment: import: node: %w", err)
	}
	if !class.valid() {
		return SegmentInfo{}, fmt.Errorf("segment: import: invalid class %d", class)
	}
	sum := sha256.Sum256(data)
	if want := "sha256:" + hex.EncodeToString(sum[:]); si.Checksum != want {
		return SegmentInfo{}, fmt.Errorf("segment: import %s: %w (got %s, want %s)", si.Path, ErrChecksumMismatch, want, si.Checksum)
	}
	ps, err := parseSegment(data)
	if err != nil {
		return SegmentInfo{}, fmt.Errorf("segment: import %s: %w", si.Path, err)
	}
	if ps.Torn != nil || len(ps.Parts) == 0 {
		return SegmentInfo{}, fmt.Errorf("segment: import %s: incomplete segment (%d parts, %v)", si.Path, len(ps.Parts), ps.Torn)
	}
	e := &entry{Stream: si.Stream, Start: si.Start.UTC(), Node: si.Node, Class: class, Origin: OriginBackfill,
		Bytes: int64(len(data)), Checksum: sum}
	e.End = e.Start.Add(ps.mediaDuration())
	if d := e.End.Sub(si.End); d > 1000 || d < -1000 { // ns rounding only
		return SegmentInfo{}, fmt.Errorf("segment: import %s: media ends at %v, info says %v", si.Path, e.End, si.End)
	}
	e.End = si.End.UTC()
	e.Path = segmentRelPath(e.Stream, e.Start, class, OriginBackfill, si.Node)
	path := s.abs(e.Path)
	s.mu.Lock()
	busy := s.active[e.Path]
	s.active[e.Path] = true
	s.mu.Unlock()
	if busy {
		return SegmentInfo{}, fmt.Errorf("segment: import %s: already being written", e.Path)
	}
	defer func() {
		s.mu.Lock()
		delete(s.active, e.Path)
		s.mu.Unlock()
	}()
	if _, err := s.fs.Stat(path); err == nil {
		return SegmentInfo{}, fmt.Errorf("segment: import %s: file exists", e.Path)
	}
	dayDir := s.fs.PathDir(path)
	tmp := path + tmpSuffix
	s.dirMu.Lock()
	err = s.fs.MkdirAll(dayDir, 0o755)
	var f vfs.File
	if err == nil {
		f, err = s.fs.Create(tmp, vfs.WriteCategoryUnspecified)
	}
	s.dirMu.Unlock()
	if err != nil {
		return SegmentInfo{}, fmt.Errorf("segment: import %s: %w", e.Path, err)
	}
	_, err = f.Write(data) // (a vfs.File may modify data: the caller gave it up)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = s.fs.Rename(tmp, path)
	}
	if err == nil {
		for _, d := range []string{dayDir, s.fs.PathDir(dayDir), s.abs(segmentsDir)} {
			if err = syncDir(s.fs, d); err != nil {
				break
			}
		}
	}
	if err != nil {
		_ = s.fs.Remove(tmp)
		return SegmentInfo{}, fmt.Errorf("segment: import %s: %w", e.Path, err)
	}
	if err := s.putEntry(e, pebble.Sync); err != nil {
		return SegmentInfo{}, fmt.Errorf("segment: import %s: index: %w", e.Path, err)
	}
	return e.info(), nil
}
