package segment

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// ProblemKind names one kind of inconsistency between index and files.
type ProblemKind string

// Problem kinds found by Check and by recovery in Open.
const (
	ProblemCorruptEntry     ProblemKind = "corrupt-entry"     // undecodable index value: dropped by repair
	ProblemMissingFile      ProblemKind = "missing-file"      // entry without file: dropped by repair (a gap)
	ProblemOpenSegment      ProblemKind = "open-segment"      // entry of a segment whose writer crashed: re-indexed from the file
	ProblemTornTail         ProblemKind = "torn-tail"         // file longer than its last complete part: trimmed
	ProblemShortFile        ProblemKind = "short-file"        // file shorter than its entry says: re-indexed from the file
	ProblemChecksumMismatch ProblemKind = "checksum-mismatch" // closed file fails its checksum: quarantined, entry dropped
	ProblemUnindexedFile    ProblemKind = "unindexed-file"    // file without entry: indexed if it parses, else quarantined
	ProblemStrayFile        ProblemKind = "stray-file"        // not a segment file name (or a leftover temp file)
)

// Problem is one inconsistency found by Check or by recovery.
type Problem struct {
	Kind     ProblemKind
	Stream   string
	Path     string // relative to the data directory
	Detail   string
	Repaired bool
}

func (p Problem) String() string {
	r := ""
	if p.Repaired {
		r = " (repaired)"
	}
	return fmt.Sprintf("%s %s: %s%s", p.Kind, p.Path, p.Detail, r)
}

// CheckReport is the result of Check.
type CheckReport struct {
	Entries  int // index entries examined
	Files    int // segment files examined
	Problems []Problem
	// Dropped are the entries removed by repair: their ranges are now gaps
	// (for backfill to fill).
	Dropped []SegmentInfo
}

// Consistent tells whether no problem is left unrepaired.
func (r CheckReport) Consistent() bool {
	for _, p := range r.Problems {
		if !p.Repaired {
			return false
		}
	}
	return true
}

// RecoveryReport is what Open found and fixed. It has the shape of a
// CheckReport with repair on; checksums of closed segments are not re-read
// by recovery (Check does that).
type RecoveryReport = CheckReport

// Check compares the index with the segment files and verifies the
// checksum of every closed segment. With repair it fixes what recovery
// fixes: trims torn tails, indexes or quarantines unindexed files, drops
// entries without files or with corrupt values, and quarantines files that
// fail their checksum. Segments being written are skipped.
func (s *Store) Check(repair bool) (CheckReport, error) {
	if repair && s.opts.ReadOnly {
		return CheckReport{}, ErrReadOnly
	}
	return s.check(repair, true)
}

func (s *Store) isActive(rel string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active[rel]
}

func (s *Store) check(repair, verify bool) (CheckReport, error) {
	var rep CheckReport
	add := func(p Problem) { rep.Problems = append(rep.Problems, p) }
	// A damaged table anywhere fails the check, so recovery and fsck find
	// it rather than a later query.
	if err := s.scanIndex(); err != nil {
		return rep, fmt.Errorf("read index: %w", err)
	}
	entries, bad, err := s.allEntries()
	if err != nil {
		return rep, fmt.Errorf("read index: %w", err)
	}
	for _, k := range bad {
		p := Problem{Kind: ProblemCorruptEntry, Path: fmt.Sprintf("index key %q", k), Detail: "value does not decode"}
		if stream, _, err := parseSegmentKey(k); err == nil {
			p.Stream = stream
		}
		if repair {
			if err := s.deleteKey(k); err != nil {
				return rep, err
			}
			p.Repaired = true
		}
		add(p)
	}
	indexed := map[string]*entry{}
	for _, e := range entries {
		if s.isActive(e.Path) {
			continue
		}
		if e.Open {
			// The writer may have closed it since the snapshot.
			fresh, err := s.lookupPath(e.Path)
			if err != nil {
				return rep, err
			}
			if fresh == nil || s.isActive(e.Path) {
				continue
			}
			e = fresh
		}
		rep.Entries++
		indexed[e.Path] = e
		if err := s.checkEntry(e, repair, verify, &rep); err != nil {
			return rep, err
		}
	}
	files, err := s.listSegmentFiles()
	if err != nil {
		return rep, err
	}
	for _, rel := range files {
		if indexed[rel] != nil || s.isActive(rel) {
			continue
		}
		if strings.HasSuffix(rel, tmpSuffix) {
			p := Problem{Kind: ProblemStrayFile, Path: rel, Detail: "leftover temporary file of an interrupted trim or import"}
			if repair {
				if err := s.fs.Remove(s.abs(rel)); err != nil {
					return rep, err
				}
				p.Repaired = true
			}
			add(p)
			continue
		}
		rep.Files++
		fn, err := parseSegmentRelPath(rel)
		if err != nil {
			p := Problem{Kind: ProblemStrayFile, Path: rel, Detail: err.Error()}
			if repair {
				if err := s.quarantine(rel); err != nil {
					return rep, err
				}
				p.Repaired = true
			}
			add(p)
			continue
		}
		// A segment created and closed since the index snapshot is fine.
		if e, err := s.lookupPath(rel); err != nil {
			return rep, err
		} else if e != nil {
			continue
		}
		p := Problem{Kind: ProblemUnindexedFile, Stream: fn.stream, Path: rel, Detail: "file has no index entry"}
		if repair {
			detail, err := s.reindex(fn, rel)
			if err != nil {
				return rep, err
			}
			p.Detail += "; " + detail
			p.Repaired = true
		}
		add(p)
	}
	return rep, nil
}

// checkEntry checks one entry against its file.
func (s *Store) checkEntry(e *entry, repair, verify bool, rep *CheckReport) error {
	p := Problem{Stream: e.Stream, Path: e.Path}
	drop := func() error {
		if err := s.deleteEntry(e); err != nil {
			return err
		}
		rep.Dropped = append(rep.Dropped, e.info())
		p.Repaired = true
		return nil
	}
	st, err := s.fs.Stat(s.abs(e.Path))
	if err != nil {
		if !oserrorIsNotExist(err) {
			return fmt.Errorf("stat %s: %w", e.Path, err)
		}
		p.Kind, p.Detail = ProblemMissingFile, fmt.Sprintf("indexed [%s, %s) but the file is gone", e.Start.Format(timeLayout), e.End.Format(timeLayout))
		if repair {
			if err := drop(); err != nil {
				return err
			}
		}
		rep.Problems = append(rep.Problems, p)
		return nil
	}
	rep.Files++
	size := st.Size()
	fn, err := parseSegmentRelPath(e.Path)
	if err != nil {
		return fmt.Errorf("index entry %s: %w", e.Path, err)
	}
	switch {
	case e.Open:
		p.Kind, p.Detail = ProblemOpenSegment, "segment was being written when the node stopped"
	case size < e.Bytes:
		p.Kind, p.Detail = ProblemShortFile, fmt.Sprintf("file has %d bytes, index says %d", size, e.Bytes)
	default:
		if verify {
			ok, err := s.verifyFile(e)
			if err != nil {
				return err
			}
			if !ok {
				p.Kind, p.Detail = ProblemChecksumMismatch, "file content does not match its checksum"
				if repair {
					if err := s.quarantine(e.Path); err != nil {
						return err
					}
					if err := drop(); err != nil {
						return err
					}
				}
				rep.Problems = append(rep.Problems, p)
				return nil
			}
		}
		if size == e.Bytes {
			return nil
		}
		p.Kind, p.Detail = ProblemTornTail, fmt.Sprintf("%d bytes after the last durable part", size-e.Bytes)
		if repair {
			if err := s.trim(e.Path, e.Bytes); err != nil {
				return err
			}
			p.Repaired = true
		}
		rep.Problems = append(rep.Problems, p)
		return nil
	}
	if repair {
		detail, err := s.reindex(fn, e.Path)
		if err != nil {
			return err
		}
		p.Detail += "; " + detail
		if strings.Contains(detail, "quarantined") {
			rep.Dropped = append(rep.Dropped, e.info())
		}
		p.Repaired = true
	}
	rep.Problems = append(rep.Problems, p)
	return nil
}

// RebuildIndex repairs an index that fails with ErrIndexCorrupt (or is
// missing): it moves opts.Dir/index aside to index.corrupt-<UTC time>,
// kept as evidence and never deleted, and opens the store with a new,
// empty index, whose crash recovery indexes every segment file again
// (Recovery reports each one). What only the old index held is lost:
// recorded source outages (that time now counts as a system gap) and
// entries of files that were already missing. It returns the store and
// where the old index went, relative to opts.Dir ("" when there was none).
// It refuses a read-only store, and a directory a node has open.
func RebuildIndex(opts Options) (_ *Store, aside string, err error) {
	opts.EnsureDefaults()
	if opts.ReadOnly {
		return nil, "", ErrReadOnly
	}
	if opts.Dir == "" {
		return nil, "", errors.New("segment: Options.Dir is required")
	}
	fs := opts.FS
	if _, err := fs.Stat(opts.Dir); err != nil {
		return nil, "", fmt.Errorf("segment: rebuild index: %w", err)
	}
	index := fs.PathJoin(opts.Dir, indexDir)
	if _, err := fs.Stat(index); err == nil {
		// Pebble's lock: held while a node (or another command) has the
		// index open, even read-only.
		lock, err := fs.Lock(fs.PathJoin(index, "LOCK"))
		if err != nil {
			return nil, "", fmt.Errorf("segment: rebuild index %s: %w (a node running on %s? stop it first): %v", index, ErrInUse, opts.Dir, err)
		}
		ts := time.Now().UTC().Format("20060102T150405Z")
		aside = indexDir + ".corrupt-" + ts
		for i := 1; err == nil; i++ {
			if _, err = fs.Stat(fs.PathJoin(opts.Dir, aside)); err == nil {
				aside = fmt.Sprintf("%s.corrupt-%s.%d", indexDir, ts, i)
			}
		}
		if oserrorIsNotExist(err) {
			err = fs.Rename(index, fs.PathJoin(opts.Dir, aside))
		}
		if cerr := lock.Close(); err == nil && cerr != nil {
			opts.Logger.Warn("segment: release index lock", "err", cerr)
		}
		if err != nil {
			return nil, "", fmt.Errorf("segment: rebuild index: move %s aside: %w", index, err)
		}
		if err := syncDir(fs, opts.Dir); err != nil {
			return nil, aside, fmt.Errorf("segment: rebuild index: %w", err)
		}
		opts.Logger.Warn("segment index moved aside; rebuilding it from the segment files", "dir", opts.Dir, "to", aside)
	} else if !oserrorIsNotExist(err) {
		return nil, "", fmt.Errorf("segment: rebuild index: %w", err)
	}
	s, err := Open(opts)
	if err != nil {
		return nil, aside, err
	}
	return s, aside, nil
}

func oserrorIsNotExist(err error) bool { return errors.Is(err, os.ErrNotExist) }

// verifyFile reports whether the first e.Bytes bytes of e's file match its
// checksum.
func (s *Store) verifyFile(e *entry) (bool, error) {
	f, err := s.fs.Open(s.abs(e.Path))
	if err != nil {
		return false, fmt.Errorf("open %s: %w", e.Path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, e.Bytes)); err != nil {
		return false, fmt.Errorf("read %s: %w", e.Path, err)
	}
	return bytes.Equal(h.Sum(nil), e.Checksum[:]), nil
}

// reindex parses a segment file and indexes it as closed, trimming a torn
// tail first; a file without a complete part is quarantined (and any entry
// of it dropped). It returns what it did.
func (s *Store) reindex(fn fileName, rel string) (string, error) {
	data, err := s.readFile(rel, -1)
	if err != nil {
		return "", err
	}
	e := &entry{Stream: fn.stream, Start: fn.start, Node: fn.node, Path: rel, Class: fn.class, Origin: fn.origin}
	ps, perr := parseSegment(data)
	if perr != nil || len(ps.Parts) == 0 {
		why := "no complete part"
		if perr != nil {
			why = perr.Error()
		}
		if err := s.quarantine(rel); err != nil {
			return "", err
		}
		if err := s.deleteEntry(e); err != nil {
			return "", err
		}
		return "quarantined: " + why, nil
	}
	detail := fmt.Sprintf("indexed with %d parts", len(ps.Parts))
	if ps.ValidLen < int64(len(data)) {
		if err := s.trim(rel, ps.ValidLen); err != nil {
			return "", err
		}
		detail = fmt.Sprintf("trimmed %d torn bytes (%v); %s", int64(len(data))-ps.ValidLen, ps.Torn, detail)
	}
	e.End = e.Start.Add(ps.mediaDuration())
	e.Bytes = ps.ValidLen
	e.Checksum = sha256.Sum256(data[:ps.ValidLen])
	if err := s.putEntry(e, pebble.Sync); err != nil {
		return "", err
	}
	return detail, nil
}

// readFile reads the first n bytes of a file (all of it when n < 0).
func (s *Store) readFile(rel string, n int64) ([]byte, error) {
	f, err := s.fs.Open(s.abs(rel))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", rel, err)
	}
	defer f.Close()
	if n < 0 {
		st, err := f.Stat()
		if err != nil {
			return nil, fmt.Errorf("stat %s: %w", rel, err)
		}
		n = st.Size()
	}
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, 0); err != nil && !(errors.Is(err, io.EOF) && n == 0) {
		return nil, fmt.Errorf("read %s: %w", rel, err)
	}
	return buf, nil
}

// tmpSuffix marks a file being written by trim or ImportSegment before it is
// renamed into place.
const tmpSuffix = ".tmp"

// trim cuts a file to its first n bytes. vfs has no truncate, so the prefix
// is written to a temporary file that replaces the original atomically.
func (s *Store) trim(rel string, n int64) error {
	if s.opts.ReadOnly {
		return ErrReadOnly
	}
	data, err := s.readFile(rel, n)
	if err != nil {
		return err
	}
	path := s.abs(rel)
	tmp := path + tmpSuffix
	f, err := s.fs.Create(tmp, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("trim %s: %w", rel, err)
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return fmt.Errorf("trim %s: %w", rel, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("trim %s: %w", rel, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("trim %s: %w", rel, err)
	}
	if err := s.fs.Rename(tmp, path); err != nil {
		return fmt.Errorf("trim %s: %w", rel, err)
	}
	return syncDir(s.fs, s.fs.PathDir(path))
}

// quarantine moves a file to quarantine/<stream>/<name>, adding a numeric
// suffix when the name is taken.
func (s *Store) quarantine(rel string) error {
	if s.opts.ReadOnly {
		return ErrReadOnly
	}
	parts := strings.Split(rel, "/")
	stream := "unknown"
	if len(parts) >= 2 && validateID(parts[1]) == nil {
		stream = parts[1]
	}
	dir := s.abs(quarantineDir + "/" + stream)
	if err := s.fs.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("quarantine %s: %w", rel, err)
	}
	base := parts[len(parts)-1]
	dst := s.fs.PathJoin(dir, base)
	for i := 1; ; i++ {
		if _, err := s.fs.Stat(dst); err != nil {
			break
		}
		dst = s.fs.PathJoin(dir, fmt.Sprintf("%s.%d", base, i))
	}
	if err := s.fs.Rename(s.abs(rel), dst); err != nil {
		return fmt.Errorf("quarantine %s: %w", rel, err)
	}
	s.log.Warn("segment quarantined", "path", rel, "to", dst)
	if err := syncDir(s.fs, dir); err != nil {
		return err
	}
	return syncDir(s.fs, s.fs.PathDir(s.abs(rel)))
}

// listSegmentFiles lists every file under segments/ as relative paths
// (segments/<stream>/<day>/<file>), sorted.
func (s *Store) listSegmentFiles() ([]string, error) {
	var out []string
	var walk func(rel string, depth int) error
	walk = func(rel string, depth int) error {
		names, err := s.fs.List(s.abs(rel))
		if err != nil {
			if oserrorIsNotExist(err) {
				return nil
			}
			return fmt.Errorf("list %s: %w", rel, err)
		}
		slices.Sort(names)
		for _, n := range names {
			if depth == 0 && n == probeFile {
				continue // ProbeWrite's, left by a crash: not a segment
			}
			child := rel + "/" + n
			st, err := s.fs.Stat(s.abs(child))
			if err != nil {
				if oserrorIsNotExist(err) {
					continue
				}
				return fmt.Errorf("stat %s: %w", child, err)
			}
			if st.IsDir() {
				if depth < 2 {
					if err := walk(child, depth+1); err != nil {
						return err
					}
				}
				continue
			}
			out = append(out, child)
		}
		return nil
	}
	return out, walk(segmentsDir, 0)
}
