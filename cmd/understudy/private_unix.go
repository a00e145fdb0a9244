//go:build unix

package main

import "syscall"

// privateFiles makes every file and directory the process creates from
// now on readable by its owner only: the control database holds camera
// credentials and the segments are video of people.
func privateFiles() { syscall.Umask(0o077) }
