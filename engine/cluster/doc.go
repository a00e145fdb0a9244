// Package cluster makes the nodes of a deployment one cluster: membership
// and failure detection with hashicorp/memberlist (SWIM), and replication of
// the stream catalog (engine/catalog) over its gossip.
//
// # Membership
//
// Start creates a memberlist instance named Config.Meta.ID and joins
// Config.Join. Each node advertises a Meta (id, failure domain, API address,
// build version, weight, state active|draining|saturated) as its memberlist
// node metadata, encoded by EncodeMeta (format 1, at most MaxMetaSize = 512
// bytes; DecodeMeta never panics). SetMeta changes it and re-gossips it
// (memberlist UpdateNode). Members lists every node seen, self included,
// ordered by id; dead and left nodes stay listed with Alive false. Changes
// notifies (coalesced) after a join, a metadata update, a death or a leave.
// With memberlist's LAN settings a killed node is declared dead in about
// 5-6 s.
//
// memberlist does not merge the sides of a healed partition by itself: each
// side holds the other dead. Every RejoinInterval (default 10s) the node
// joins the Join addresses it does not see alive and the known peers that
// are not alive (dead, not left gracefully); a join is a push/pull, so the
// catalogs converge too. A Join that fails at Start is only logged.
//
// A duplicate node id (memberlist name conflict) and a peer advertising a
// different build version are logged; the node keeps working.
//
// # Catalog replication
//
// The catalog is a set of last-writer-wins registers (see engine/catalog),
// so replication only has to deliver every entry to every node eventually;
// Merge sorts out the order. Two paths do it:
//
//   - Broadcast: after each catalog change (Catalog.Watch) the node queues
//     every entry whose Version is newer than the one it last broadcast for
//     that id (entries merged from peers included, which helps them spread)
//     on a memberlist TransmitLimitedQueue; a newer broadcast of a stream id
//     invalidates a queued older one. A message is one byte of type (1:
//     entry) and catalog.EncodeEntry. Every GossipInterval (200 ms) the node
//     sends the queue to up to 3 random peers that are alive and not
//     suspect, up to 8 packets of about 1.3 KB each, as memberlist
//     best-effort messages; several messages share a packet as a batch
//     (EncodeBatch: byte 3, then uvarint length and message each). Each
//     message goes out RetransmitMult (4) × ⌈log10(alive nodes + 1)⌉ times.
//     memberlist's own gossip carries none of it: it also gossips to suspect
//     peers, and to dead ones for 30 s, and a transmission spent there is
//     lost to the live peers until the next push/pull, just when a failed
//     node's holdings all change. Receivers DecodeEntry and Merge; a
//     message or batch that does not decode or is over MaxEntrySize is
//     dropped and logged at most once per 10 s. An entry too large for one
//     gossip packet is not broadcast and travels by push/pull only.
//   - Push/pull anti-entropy: on every join and every PushPullInterval
//     (default 30s) two nodes exchange their whole catalog, tombstones
//     included (EncodeState: format byte, entry count, length-prefixed
//     entries, bounded by MaxStateEntries, MaxEntrySize and MaxStateSize;
//     DecodeState never panics) and merge it. This repairs lost broadcasts
//     and partitions.
//
// Entries already in the catalog when Start runs are not broadcast; the
// join's push/pull carries them.
//
// # Security
//
// Entries carry camera credentials. With Config.Keys set, all gossip (UDP
// and TCP) is AES-GCM encrypted with the first key, any of the keys
// decrypts, and unencrypted traffic is refused (GossipVerifyIncoming and
// Outgoing): a node with another key cannot join. Without keys gossip is
// clear text; use that only in tests. The package never logs an entry's
// credentials: it logs ids and errors, and Entry's own printed forms redact.
//
// # Testing
//
// FaultTransport wraps memberlist's NetTransport and, when Cut, drops every
// packet and stream to and from the node and fails its dials, until Heal:
// tests partition a node with it.
package cluster
