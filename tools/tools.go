//go:build tools

// Package tools pins the versions of the developer tools the Makefile builds
// (staticcheck and buf), separately from the main module so that their
// dependencies never leak into it.
//
// The protoc plugins (protoc-gen-go, protoc-gen-connect-go) are not pinned
// here: buf v1.75.0 needs a newer google.golang.org/protobuf than the v1.36.12
// the project runs with, which would drag protoc-gen-go along. The Makefile
// builds them from the main module instead, so the generator is always the
// version of the runtime in go.mod (protobuf v1.36.12, connect v1.21.1), and
// proto/understudy/v1's tests check that the generated headers agree.
package tools

import (
	_ "github.com/bufbuild/buf/cmd/buf"
	_ "honnef.co/go/tools/cmd/staticcheck"
)
