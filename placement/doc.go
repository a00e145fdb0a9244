// Package placement is the pure function at the heart of N:M failover: given
// the live nodes (id, failure-domain path, capacity weight, state) and the
// streams (id, replicas, load weight) it returns, for each stream, an ordered
// list of distinct nodes in distinct failure domains, the first being the
// home. It owns the topology model, failure-domain-aware weighted consistent
// hashing with bounded loads, and the movement and balance reports.
//
// placement imports the standard library only: it knows nothing of networks
// or disks, and the same inputs give byte-identical output on every node.
//
// # How streams are placed
//
//  1. Preference. Each stream ranks the nodes by weighted rendezvous
//     hashing: the score of node n is −ln(u)/wₙ with u a hash of (stream,
//     node), computed in integer fixed point (a log₂ table built by integer
//     squaring, a reciprocal multiply for the weight), so every architecture
//     ranks alike. Ties break on the hash, then on the node ID. Only the 16
//     best nodes per stream are kept (found with one multiply-hash and one
//     comparison per node within each weight class, on all CPUs); a stream
//     that needs more falls back to its full order, so the result never
//     depends on that number.
//  2. Copies. Streams are taken in a fixed order (light streams first, then
//     by stream hash). Each walks its preference order and takes the first
//     min(R, active nodes) active nodes that are under their copy cap and
//     in domains (at Config.Level) no earlier copy uses. When that cannot
//     be done, the cap gives way before the domains do, then the domain
//     level steps down one tier at a time to distinct nodes; the shortfall
//     is reported by Placement.Dispersion, never hidden.
//  3. Homes. The home is the first copy in preference order under its home
//     cap, so when it fails the next copy, already recording, becomes home.
//     Homes left over their cap are then moved between the copies of a
//     stream (never moving a copy).
//
// Caps are at most ⌊(1+ε)·fair share⌋ of load weight, for copies and for
// homes, rounded with a per-node dither so that one node joining or leaving
// (which shifts every fair share a little) changes few caps: each cap
// change would move streams.
//
// Placement depends on nothing but its inputs; stability comes from the
// hashing. A Placer caches step 1 so that a membership change is re-placed
// in tens of milliseconds, always with the result Place would give.
package placement
