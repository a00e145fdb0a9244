package segment

import (
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// SegmentReader reads one segment file from its start, hashing what it
// reads: a closed segment's last Read reports a checksum mismatch (the
// file is then quarantined and its entry dropped, as ReadSegment does)
// instead of io.EOF. It holds no more than the caller's buffer, so a peer
// copying a segment of 500 MB costs the node a chunk of memory, not the
// segment.
type SegmentReader struct {
	s    *Store
	e    *entry
	f    vfs.File
	off  int64
	h    hash.Hash
	err  error // sticky end: io.EOF or the mismatch
	info SegmentInfo
}

// OpenSegmentAt opens the segment of stream that starts exactly at start
// (with checksum, when not empty) for a streaming read: a closed segment
// whole, one being written up to its last durable part. No such segment
// is an error wrapping ErrNoSegment.
func (s *Store) OpenSegmentAt(stream string, start time.Time, checksum string) (*SegmentReader, error) {
	es, err := s.entries(stream, start, start.Add(time.Nanosecond))
	if err != nil {
		return nil, err
	}
	for _, e := range es {
		si := e.info()
		if !e.Start.Equal(start) || (checksum != "" && si.Checksum != checksum) {
			continue
		}
		f, err := s.fs.Open(s.abs(e.Path))
		if err != nil {
			return nil, fmt.Errorf("segment %s: open: %w", e.Path, err)
		}
		return &SegmentReader{s: s, e: e, f: f, h: sha256.New(), info: si}, nil
	}
	return nil, fmt.Errorf("segment: %s at %s: %w", stream, start.UTC().Format(time.RFC3339Nano), ErrNoSegment)
}

// Info is the segment being read; Bytes is what the reader delivers.
func (r *SegmentReader) Info() SegmentInfo { return r.info }

// Read implements io.Reader.
func (r *SegmentReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	left := r.e.Bytes - r.off
	if left <= 0 {
		r.err = r.finish()
		return 0, r.err
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	n, err := r.f.ReadAt(p, r.off)
	r.h.Write(p[:n])
	r.off += int64(n)
	if err == io.EOF && r.off < r.e.Bytes {
		err = fmt.Errorf("segment %s: %w: file ends at %d of %d bytes", r.e.Path, io.ErrUnexpectedEOF, r.off, r.e.Bytes)
	} else if err == io.EOF {
		err = nil
	}
	if err != nil {
		r.err = err
	}
	return n, err
}

// finish checks the checksum of a closed segment once every byte was read.
func (r *SegmentReader) finish() error {
	if r.e.Open {
		return io.EOF
	}
	var sum [sha256.Size]byte
	r.h.Sum(sum[:0])
	if sum != r.e.Checksum {
		r.f.Close()
		r.f = nil
		return r.s.checksumFailed(r.e)
	}
	return io.EOF
}

// Close releases the file.
func (r *SegmentReader) Close() error {
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}
