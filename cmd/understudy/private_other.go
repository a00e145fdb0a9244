//go:build !unix

package main

// privateFiles: on systems without umask the data directory's permissions
// are the operator's to set.
func privateFiles() {}
