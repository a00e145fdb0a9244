// Package segment owns everything one node keeps on disk for recorded video:
// the fMP4 segment writer and reader, the on-disk layout, checksums, crash
// recovery, the segment index (Pebble), coverage and gap arithmetic and the
// FS interface all of its I/O goes through (Pebble's vfs.FS, so tests can
// inject errors with vfs/errorfs and crashes with vfs.NewCrashableMem).
//
// # Layout
//
// One data directory (Options.Dir) holds:
//
//	segments/<stream>/<yyyy-mm-dd>/<start>-<class>-<origin>-<node>.mp4
//	index/        the Pebble index
//	quarantine/<stream>/<file>[.N]   files that failed a checksum or did not parse
//
// <stream> is a validated stream id (ValidateStreamID: 1..128 bytes of
// [A-Za-z0-9._-], never "." or ".."), so it is always one path element.
// <yyyy-mm-dd> is the UTC day of the segment's start. <start> is the start in
// UTC as 20060102T150405.000000000Z (no dashes, so the name splits
// unambiguously on its first three dashes), <class> is "archive" or
// "buffer", <origin> is "live" or "backfill", <node> is the node id (same
// rules as stream ids). The name alone is enough to re-index a file.
//
// # Segment files
//
// A segment is a fragmented MP4: ftyp+moov (the init, written and fsynced
// when the file is created, together with its directory entries), then one
// moof+mdat pair per part. A part holds about PartDuration (1 s) of the
// reference track (the first video track, or track 1 for audio-only
// streams) and the samples of the other tracks committed meanwhile. MP4
// track IDs are WriterConfig.Tracks indexes plus one; each track's timescale
// is its clock rate, and tfdt base times count from the segment start
// (the reference track's first sample is at 0), so the wall time of a
// sample is Start + baseDecodeTime/timescale.
//
// A segment starts at a reference-track keyframe and ends before the first
// keyframe at least SegmentDuration (60 s) after its start. Its Start is the
// wall clock of its first frame; its End is Start plus the reference track's
// media duration. Within one writer, while timestamps are continuous, the
// wall clock is anchored once, so the next segment's Start equals the
// previous End exactly (no hairline gaps). The anchor is re-taken (and a new
// segment started) when timestamps go back, jump forward by more than 2 s,
// or drift more than 500 ms from the frames' wall clocks.
//
// # Durability and torn writes
//
// Each part is marshalled in memory and written with one write. With
// FsyncPart (the default) the file is fsynced after every part; with
// FsyncInterval at the first part written at least FsyncInterval after the
// previous fsync. The last part of a segment is always fsynced. So a crash
// (kill -9, power loss) loses at most the part being written (FsyncPart), a
// write that failed leaves at most one torn part at the tail, and
// everything before it is complete moof+mdat pairs. Nothing is ever written
// in place.
//
// On a write or fsync error (EIO, ENOSPC) the writer closes the segment at
// its last durable part: the index entry gets that end, size and checksum;
// bytes after it (a torn or unsynced tail) are trimmed by recovery or by
// Check with repair. The lost range is a gap. The writer starts a new
// segment by itself at the next keyframe once writes succeed again.
//
// # Index
//
// The index is a Pebble database (FormatNewest). Keys:
//
//	0x01 <stream> 0x00 <start:8> <file name>  → segment entry
//	0x02 <stream> 0x00 <start:8>              → source outage end <8>
//	0x03 <stream>                             → longest segment duration (int64 ns, big-endian)
//
// <start:8> is the Unix time in nanoseconds with the sign bit flipped,
// big-endian, so keys sort by time. "Segments of a stream overlapping
// [t0, t1)" is the iterator range [t0 - longest duration, t1). Source
// outages of one stream never overlap (AddSourceOutage merges), so the one
// before t0 is found by seeking back one key.
//
// A segment entry (version 1) is:
//
//	version:1 flags:1 (bit 0: open) class:1 origin:1 end:8 (Unix ns, big-endian)
//	bytes:8 sha256:32 uvarint-len path, uvarint-len node, crc32c:4 (of all before)
//
// An open entry is written (without fsync of the index) when the file is
// created and updated after every durable part with the new end and size;
// its checksum is zero. When the segment closes the entry is rewritten with
// flags 0, the final end and size and the SHA-256 of the file's bytes
// [0, size), computed incrementally while writing; that write is synced.
// A value that does not decode (bad crc, version, bounds, or a path that
// does not match its key) is an error, never a panic.
//
// # Checksums
//
// SegmentInfo.Checksum is "sha256:<hex>" of the first Bytes bytes of the
// file. Reads (ReadSegment, Export) and Check verify it; on a mismatch the
// file is moved to quarantine/, its entry is dropped (the range becomes a
// gap for backfill) and the error wraps ErrChecksumMismatch.
//
// Backfilled segments (ImportSegment) keep the recording node's id in the
// name, get origin "backfill", and are written under <name>.tmp, fsynced and
// renamed into place, so a crash never leaves half a copy under the final
// name (recovery and Check remove leftover .tmp files).
//
// # Recovery
//
// Open (unless ReadOnly) reconciles index and files before returning:
// open entries (a writer that crashed) are re-parsed from the file, the torn
// tail is trimmed back to the last complete part and the entry is closed
// with the real end and checksum; a file without an entry is indexed from
// its name and contents if it holds at least one complete part, or
// quarantined; an entry without a file is dropped and listed in the
// RecoveryReport (its range is a gap); a closed entry whose file is longer
// than its size has its tail trimmed. Recovery does not re-hash closed
// segments; Check does.
package segment
