package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/understudy-nvr/understudy/engine"
	"github.com/understudy-nvr/understudy/segment"
)

func init() {
	register("serve", "run a recorder node and its API", runServe)
}

func runServe(args []string) int {
	privateFiles()
	// Signals are caught before anything is opened, so that a SIGTERM
	// during start-up takes the clean path too.
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	cfg, err := engine.LoadConfig(args, os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "serve:", err)
		return 2
	}
	if chaosFaults != nil {
		chaosFaults(&cfg)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		fmt.Fprintln(os.Stderr, "serve: log-level:", err)
		return 2
	}
	log := newLeveledLogger(cfg.LogFormat, level)

	// The first signal starts the graceful shutdown (which may take up to
	// --shutdown-timeout while exports drain); a second one is an operator
	// who does not want to wait: stop at once.
	go func() {
		s := <-sig
		log.Info("shutting down (signal again to stop at once)", "signal", s.String())
		cancel()
		s = <-sig
		log.Error("stopping at once", "signal", s.String())
		os.Exit(1)
	}()

	node, err := engine.OpenNode(cfg, log)
	if err != nil {
		log.Error("cannot start", nodeErrAttrs(cfg.DataDir, err)...)
		return 1
	}
	// SIGHUP re-reads the gossip key file: key rotation without a restart.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := node.ReloadGossipKeys(); err != nil {
					log.Error("SIGHUP: gossip keys not reloaded", "err", err)
				} else {
					log.Info("SIGHUP: gossip keys reloaded", "file", cfg.GossipKeyFile)
				}
			}
		}
	}()
	if err := node.Run(ctx); err != nil {
		log.Error("node failed", nodeErrAttrs(cfg.DataDir, err)...)
		return 1
	}
	return 0
}

// nodeErrAttrs are the log attributes of a node's fatal error: a corrupt
// segment index gets the command that rebuilds it.
func nodeErrAttrs(dataDir string, err error) []any {
	attrs := []any{"err", err}
	if errors.Is(err, segment.ErrIndexCorrupt) {
		attrs = append(attrs, "fix", repairHint(dataDir))
	}
	return attrs
}
