package segment

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// DeleteReport is what DeleteBefore removed.
type DeleteReport struct {
	Segments int
	Bytes    int64
	Outages  int
}

// DeleteBefore deletes the closed segments of stream in class that end at
// or before `before`: their index entries, then their files (and day
// directories left empty). For ClassArchive it also drops the source
// outages that end by then: the archive's timeline no longer reaches them.
// A segment straddling `before` is kept whole, and segments being written
// are never touched.
//
// Crash safety: the entries are deleted, synced, before the files. A crash
// in between leaves files without entries, which recovery on Open indexes
// again and the next call deletes.
func (s *Store) DeleteBefore(stream string, class Class, before time.Time) (rep DeleteReport, err error) {
	return s.deleteBefore(stream, class, time.Time{}, before, class == ClassArchive)
}

func (s *Store) deleteBefore(stream string, class Class, from, before time.Time, outages bool) (rep DeleteReport, err error) {
	if err := ValidateStreamID(stream); err != nil {
		return rep, err
	}
	if s.opts.ReadOnly {
		return rep, ErrReadOnly
	}
	es, err := s.entries(stream, from, before)
	if err != nil {
		return rep, err
	}
	var doomed []*entry
	for _, e := range es {
		if e.Class == class && !e.Open && !e.End.After(before) && !s.isActive(e.Path) {
			doomed = append(doomed, e)
		}
	}
	s.mu.Lock() // outages are read-merge-written under mu
	err = s.deleteEntries(stream, doomed, outages, before, &rep)
	s.mu.Unlock()
	if err != nil {
		return DeleteReport{}, err
	}
	dirs := map[string]bool{}
	for _, e := range doomed {
		p := s.abs(e.Path)
		if err := s.fs.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("retention: cannot remove segment file (recovery will index it again)", "path", e.Path, "err", err)
			continue
		}
		rep.Segments++
		rep.Bytes += e.Bytes
		dirs[s.fs.PathDir(p)] = true
	}
	s.dirMu.Lock()
	for d := range dirs {
		if names, err := s.fs.List(d); err == nil && len(names) == 0 {
			_ = s.fs.Remove(d)
		}
	}
	s.dirMu.Unlock()
	s.deletedSegments.Add(uint64(rep.Segments))
	s.deletedBytes.Add(uint64(rep.Bytes))
	return rep, nil
}

// deleteEntries deletes the index entries of doomed and, with outages, the
// stream's outages ending at or before `before`, in one synced batch.
func (s *Store) deleteEntries(stream string, doomed []*entry, outages bool, before time.Time, rep *DeleteReport) (err error) {
	if err := s.rlock(); err != nil {
		return err
	}
	defer s.dbMu.RUnlock()
	defer s.recoverIndex(&err)
	b := s.db.NewBatch()
	defer b.Close()
	for _, e := range doomed {
		if err := b.Delete(segmentKey(e), nil); err != nil {
			return err
		}
	}
	if outages {
		ivs, keys, err := s.outages(stream, time.Time{}, before, false)
		if err != nil {
			return err
		}
		for i, iv := range ivs {
			if !iv.End.After(before) {
				if err := b.Delete(keys[i], nil); err != nil {
					return err
				}
				rep.Outages++
			}
		}
	}
	if b.Empty() {
		return nil
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	return nil
}
