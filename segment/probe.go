package segment

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// probeFile is the file ProbeWrite writes, directly under segments/; crash
// recovery skips it.
const probeFile = ".write-probe"

// probeSize is what a probe writes: a small part's worth, so that a full
// disk (ENOSPC) refuses it as it refuses a part.
const probeSize = 64 << 10

// ProbeWrite writes probeSize bytes to a file in the segments directory,
// fsyncs and removes it, through the store's file system: it tells
// whether the disk takes segment writes now. A node whose writes failed
// calls it to learn, without recording, when the disk is back.
func (s *Store) ProbeWrite() error {
	if s.opts.ReadOnly {
		return errors.New("segment: probe write: the store is read-only")
	}
	path := s.abs(segmentsDir + "/" + probeFile)
	f, err := s.fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("segment: probe write: %w", err)
	}
	_, err = f.Write(make([]byte, probeSize))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if rerr := s.fs.Remove(path); err == nil && rerr != nil && !oserrorIsNotExist(rerr) {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("segment: probe write: %w", err)
	}
	return nil
}
