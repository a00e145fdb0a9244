//go:build tools

// Package tools pins the versions of the developer tools the Makefile builds
// (staticcheck, buf and the protoc plugins), separately from the main module
// so that their dependencies never leak into it.
package tools

import (
	_ "honnef.co/go/tools/cmd/staticcheck"
)
