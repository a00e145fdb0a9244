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
//
// # What the caps cost in movement
//
// With the cap off, a membership change moves exactly the optimum. With it
// on, each node held at its cap (its first-choice load exceeds the cap)
// costs about a third of a copy per change. One node joining shifts every
// fair share by 1/N, which lowers such a node's cap one time in about five
// (1.1 × 200/1000 copies of drift at R=2), forcing out a copy; and it takes
// one of the node's accepted copies about one time in six, after which the
// cap lets a displaced stream back in. The two are independent, and a pure
// function of (load, cap) that tried to absorb them would have to follow
// their random walk, paying the same at every crossing. The hashing's
// spread (√200 ≈ 7 % at R=2, 5.8 % at R=3) against ε = 10 % holds about
// 90 of 1,000 nodes at their cap at R=2: some 30 copies over an optimum of
// 200, so 1.15-1.19× (1.07-1.10× at R=3); BenchmarkMovementIDSets shows the
// spread over ID draws. Doing better would need the previous placement as
// an input (keep a copy where it is while its node has room), which the
// architecture rules out: every node computes the same answer from the
// same inputs, with no stored assignments.
package placement
