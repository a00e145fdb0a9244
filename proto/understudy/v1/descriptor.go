package understudyv1

import (
	_ "embed"
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// descriptorSet is a google.protobuf.FileDescriptorSet of this package's
// .proto files and their imports, with source info (comments), written by
// `make proto` (buf build).
//
//go:embed descriptor_set.binpb
var descriptorSet []byte

// DocumentedFiles returns the descriptors of this package's .proto files (and
// of the files they import) with their comments. The generated code registers
// the same descriptors in protoregistry.GlobalFiles but without comments
// (protoc-gen-go strips them), so gRPC server reflection over the global
// registry shows an undocumented API. Passing these to
// grpcreflect.WithDescriptorResolver lets `grpcurl describe` show the
// documentation of every service, message and field.
//
// Each call parses the embedded set afresh; callers keep the result.
func DocumentedFiles() (*protoregistry.Files, error) {
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(descriptorSet, &set); err != nil {
		return nil, fmt.Errorf("understudyv1: embedded descriptor set: %w", err)
	}
	files, err := protodesc.NewFiles(&set)
	if err != nil {
		return nil, fmt.Errorf("understudyv1: embedded descriptor set: %w", err)
	}
	return files, nil
}
