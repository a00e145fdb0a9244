package main

import (
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"os"
)

func init() {
	register("keygen", "print a new random gossip encryption key (a line for --gossip-key-file)", runKeygen)
}

func runKeygen(args []string) int {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: understudy keygen

Prints a random 32-byte AES key, base64, for the gossip key file of serve
(--gossip-key-file). The file holds one key per line; the first encrypts,
all decrypt. To rotate without downtime, on every node in turn and with
a SIGHUP after each edit: add the new key as the second line; then move
it to the first line; then delete the old line.`)
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "keygen: takes no arguments")
		return 2
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		fmt.Fprintln(os.Stderr, "keygen:", err)
		return 1
	}
	fmt.Println(base64.StdEncoding.EncodeToString(k))
	return 0
}
