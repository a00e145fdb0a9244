// Package catalog owns the stream catalog: the set of stream definitions
// (id, RTSP URL and credentials, R, archive retention, labels, enabled) a
// node records, persisted in Pebble and built to be replicated.
//
// # Model
//
// Each stream id is a last-writer-wins register holding an Entry: the
// latest Stream written under that id, or a tombstone once it is deleted.
// Writes are ordered by a Version: a hybrid logical clock stamp (wall
// milliseconds, logical counter) with the writing node's id as tie-break.
// A local write (Create, Update, Delete) stamps with the node's HLC, which
// is always past every stamp it issued, loaded from disk or saw in Merge;
// Merge applies a remote entry only if its Version is newer. Because the
// order is total and Merge is idempotent, commutative and associative,
// catalogs that saw the same entries in any order hold the same state.
// Tombstones win over older writes for TombstoneTTL (default 24h), after
// which CollectTombstones drops them; a write older than a collected
// tombstone that arrives later than the TTL would come back, so the TTL
// must exceed the longest partition the cluster is expected to heal from.
//
// The HLC is not persisted: on Open it observes every loaded entry, which
// is enough because a collected tombstone is older than the TTL and the
// wall clock has long passed it.
//
// # Storage
//
// One Pebble key per stream id: Config.Prefix + id (ids are
// [A-Za-z0-9._-], so keys sort like ids). Every write is one synced batch,
// made before memory changes: a write that fails changes nothing. The
// node's DB is opened with OpenDB, whose PebbleLogger turns Pebble's Fatalf
// into a panic the catalog's writes recover as an error, instead of exiting
// the process; a damaged table makes the read that finds it fail with an
// error wrapping ErrCorruptDB.
//
// # Encoding (formats 1, 2 and 3)
//
// The value of a key is EncodeEntry(entry), all integers varints
// (encoding/binary Uvarint/Varint), strings as uvarint length + bytes:
//
//	byte     format = 1, or 2 when weight > 1, scope or strict scope is set
//	byte     flags: bit 0 deleted, bit 1 enabled; other bits zero
//	uvarint  version wall time, ms since the Unix epoch (> 0)
//	uvarint  version logical counter (≤ 2^32-1)
//	string   version node id (1..128 bytes)
//	string   stream id
//	-- only when not deleted --
//	string   url (no userinfo)
//	string   username
//	string   password
//	uvarint  replicas
//	varint   archive retention, ns
//	varint   create time, Unix ns (0: unset)
//	varint   update time, Unix ns
//	uvarint  label count (≤ 64), then per label, keys strictly increasing:
//	string   key
//	string   value
//	-- format 2 only --
//	uvarint  weight (0: 1)
//	string   scope (a failure-domain prefix, or empty)
//	byte     strict scope: 0 or 1
//	-- always --
//	uint32   CRC-32C (Castagnoli) of all preceding bytes, little endian
//
// A node record of the known-node registry (node.go; entry id
// NodeEntryPrefix + node id) is written in format 3: the same header
// (flags 0), then
//
//	string   domain
//	uvarint  weight
//	string   state (active, draining or saturated)
//	uint32   CRC-32C
//
// and its tombstone in format 1. Nodes of the versions before reject both
// (a dropped gossip message each), and keep placing without the registry.
//
// A holding record of a stream's placement history (hold.go; entry id
// HoldEntryPrefix + stream id + ":" + node id) is written in format 4:
// the same header (flags 0), then
//
//	varint   since, Unix nanoseconds
//	varint   until, Unix nanoseconds (0: open)
//	uint32   CRC-32C
//
// and its tombstone in format 1.
//
// DecodeEntry checks the format byte, the checksum, every length bound,
// that nothing trails, and then validates the entry like Merge does; any
// failure is an error wrapping ErrCorruptEntry, never a panic. The encoding
// is canonical: an entry encodes to one byte string. An entry with the
// default weight and no scope is written in format 1, which nodes of the
// version before read.
//
// # Secrets
//
// Username and Password are stored in the entry (each recorder of the
// stream needs them) but String, Format (every fmt verb), LogValue and encoding/json of a
// Stream or Entry leave them out, and RecordingURL is the only way to get a
// URL with them. Cameras that take credentials in the URL's query or path
// (?password=…) keep them in Stream.URL; the same printed forms show the
// URL through RedactURL, which masks them. The API must return
// Stream.Redacted() or otherwise pass the URL through RedactURL.
package catalog
