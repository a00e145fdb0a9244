// Package segment owns everything one node keeps on disk for recorded video:
// the fMP4 segment writer and reader, the on-disk layout, checksums, crash
// recovery, the segment index (Pebble), coverage and gap arithmetic and the
// FS interface all of its I/O goes through.
package segment
