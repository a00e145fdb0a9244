package catalog

import (
	"errors"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// TestStorageFailureChangesNothing makes the WAL fail under a live catalog:
// the write returns an error, memory is unchanged, watchers hear nothing,
// and the process does not exit (Pebble's default logger would).
func TestStorageFailureChangesNothing(t *testing.T) {
	var failing atomic.Bool
	inj := errorfs.InjectorFunc(func(op errorfs.Op) error {
		if failing.Load() && strings.HasSuffix(op.Path, ".log") &&
			(op.Kind == errorfs.OpFileWrite || op.Kind == errorfs.OpFileSync || op.Kind == errorfs.OpFileSyncData) {
			return errorfs.ErrInjected
		}
		return nil
	})
	fs := errorfs.Wrap(vfs.NewMem(), inj)
	db, err := OpenDB("db", fs, nil)
	if err != nil {
		t.Fatal(err)
	}
	clk := newClock()
	c := openCatalog(t, db, "catalog/", "node-a", clk)
	if _, err := c.Create(streamNamed("before")); err != nil {
		t.Fatal(err)
	}
	before := c.Entries()
	ch, cancel := c.Watch()
	defer cancel()

	failing.Store(true)
	_, err = c.Create(streamNamed("during"))
	if err == nil {
		t.Fatal("Create succeeded on a failing WAL")
	}
	t.Logf("Create on a failing WAL: %v", err)
	if _, err := c.Get("during"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after failed Create: %v", err)
	}
	if err := c.Delete("before"); err == nil {
		t.Fatal("Delete succeeded on a failing WAL")
	}
	if !reflect.DeepEqual(c.Entries(), before) {
		t.Fatal("failed writes changed the catalog")
	}
	select {
	case <-ch:
		t.Fatal("failed writes notified watchers")
	default:
	}

	// After the fault clears, the DB reopens with only what succeeded.
	failing.Store(false)
	func() {
		defer func() { t.Logf("close after the fault: recovered %v", recover()) }()
		t.Logf("close after the fault: %v", db.Close())
	}()
	db, err = OpenDB("db", fs, nil)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer db.Close()
	c2 := openCatalog(t, db, "catalog/", "node-a", clk)
	if !reflect.DeepEqual(c2.Entries(), before) {
		t.Fatalf("after reopen: %v, want %v", c2.Entries(), before)
	}
}
