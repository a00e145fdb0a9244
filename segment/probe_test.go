package segment

import (
	"errors"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// TestProbeWrite: the probe reports the errno of a disk that refuses
// segment writes (EIO on write, ENOSPC on create, EIO on fsync), succeeds
// once the disk is healed, leaves no file behind, and a probe file left by
// a crash is not taken for a segment by recovery.
func TestProbeWrite(t *testing.T) {
	mem := vfs.NewMem()
	fault := &segmentFault{}
	s := openTestStore(t, Options{Dir: "/data", FS: errorfs.Wrap(mem, fault)})
	if err := s.ProbeWrite(); err != nil {
		t.Fatalf("healthy disk: %v", err)
	}
	for _, tc := range []struct {
		errno syscall.Errno
		kind  errorfs.OpKind
	}{{syscall.EIO, errorfs.OpFileWrite}, {syscall.ENOSPC, errorfs.OpCreate}, {syscall.EIO, errorfs.OpFileSync}} {
		fault.errno, fault.kinds = tc.errno, []errorfs.OpKind{tc.kind}
		fault.on.Store(true)
		err := s.ProbeWrite()
		fault.on.Store(false)
		if !errors.Is(err, tc.errno) {
			t.Errorf("%v on op %v: probe returned %v", tc.errno, tc.kind, err)
		}
	}
	if err := s.ProbeWrite(); err != nil {
		t.Fatalf("healed disk: %v", err)
	}
	if _, err := mem.Stat("/data/segments/" + probeFile); !oserrorIsNotExist(err) {
		t.Errorf("probe file left behind: %v", err)
	}
	// A crash between create and remove leaves the file: recovery skips it.
	f, err := mem.Create("/data/segments/"+probeFile, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("torn"))
	f.Close()
	if rc, err := s.Check(false); err != nil || !rc.Consistent() {
		t.Errorf("Check with a probe file left: %+v %v", rc, err)
	}
	ro := Store{opts: Options{ReadOnly: true}}
	if err := ro.ProbeWrite(); err == nil {
		t.Error("a read-only store probed")
	}
}
