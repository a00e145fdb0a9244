// Package understudyv1 holds the messages of Understudy's API (protobuf
// package understudy.v1), generated from the .proto files beside this file;
// the Connect clients and handlers are in understudyv1connect.
//
// The .proto files are the contract: StreamService (the catalog of camera
// streams), RecordingService (timeline of coverage and gaps, segments, clip
// export) and ClusterService (nodes, placement, events). Their comments are
// the API documentation.
//
// Edit the .proto files, then run `make proto` at the repository root: it
// lints them (buf lint, STANDARD and COMMENTS rules), regenerates the Go code
// and descriptor_set.binpb (the descriptors with their comments, served by
// DocumentedFiles for gRPC reflection) and records the files' SHA-256 in
// protohash_gen_test.go. The tests of this package fail with "run make
// proto" when the code is not current, so CI needs no buf; `make
// proto-check` regenerates into a temporary copy and diffs. Nothing but generated code, its tests, DocumentedFiles and this
// file belongs in the package: server code lives in engine/.
package understudyv1
