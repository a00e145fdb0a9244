// Package placement is the pure function at the heart of N:M failover: given
// the live nodes (id, failure-domain path, capacity weight, state) and the
// streams (id, replicas, load weight) it returns, for each stream, an ordered
// list of distinct nodes in distinct failure domains, the first being the
// home. It owns the topology model, failure-domain-aware weighted consistent
// hashing with bounded loads, and the movement and balance reports.
//
// placement imports the standard library only: it knows nothing of networks
// or disks, and the same inputs give byte-identical output on every node.
package placement
