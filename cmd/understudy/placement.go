package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/understudy-nvr/understudy/placement"
	"github.com/understudy-nvr/understudy/placement/dryrun"
)

func init() {
	register("placement", "dry-run placement of streams on a topology, with what-if scenarios", runPlacement)
}

// listFlag collects comma-separated values, the flag may repeat.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

type addFlag []string

func (a *addFlag) String() string     { return strings.Join(*a, " ") }
func (a *addFlag) Set(v string) error { *a = append(*a, v); return nil }

func runPlacement(args []string) int {
	fs := flag.NewFlagSet("placement", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: understudy placement --topology topo.yaml (--streams N | --streams-file streams.csv) [flags]")
		fs.PrintDefaults()
	}
	topo := fs.String("topology", "", "topology YAML file (required)")
	n := fs.Int("streams", 0, "place N generated streams of weight 1")
	file := fs.String("streams-file", "", "streams CSV file with header id,weight,replicas[,scope[,mode]] (scope: a domain prefix such as zone=hq; mode: preferred or strict)")
	replicas := fs.Int("replicas", 2, "replicas of generated streams")
	level := fs.String("level", "rack", "failure-domain tier the copies of a stream must not share (or \"node\")")
	eps := fs.Float64("epsilon", 0.10, "load bound: at most (1+epsilon) times the fair share")
	overload := fs.Float64("overload", 0, "how far past its load bound, as a fraction of its fair share, a node may go so that copies stay unique at the tiers above --level (0: the bound wins)")
	nocap := fs.Bool("no-load-cap", false, "turn the load bound off")
	var fail, drain listFlag
	var add addFlag
	fs.Var(&fail, "fail", "nodes that fail (ID,...)")
	fs.Var(&add, "add", "node that joins, ID:DOMAIN:WEIGHT (repeatable)")
	fs.Var(&drain, "drain", "nodes to drain (ID,...)")
	format := fs.String("format", "table", "output format: table or json")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	bad := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "understudy placement: "+format+"\n", a...)
		return 2
	}
	if fs.NArg() > 0 {
		return bad("unexpected argument %q", fs.Arg(0))
	}
	if *topo == "" {
		return bad("--topology is required")
	}
	if (*n > 0) == (*file != "") {
		return bad("give exactly one of --streams N (N > 0) and --streams-file")
	}
	if *n > placement.MaxStreams {
		return bad("--streams %d: at most %d", *n, placement.MaxStreams)
	}
	for _, l := range []struct {
		flag string
		ids  listFlag
	}{{"--fail", fail}, {"--drain", drain}} {
		for i, id := range l.ids {
			if slices.Contains(l.ids[:i], id) {
				return bad("%s: node %q listed twice", l.flag, id)
			}
		}
	}
	if *format != "table" && *format != "json" {
		return bad("--format %q: want table or json", *format)
	}
	if *eps <= 0 || *eps > 100 {
		return bad("--epsilon %v: want a value in (0, 100]", *eps)
	}
	if *overload < 0 || *overload > 100 || *overload != *overload {
		return bad("--overload %v: want a value in [0, 100]", *overload)
	}
	if *replicas < 1 || *replicas > placement.MaxReplicas {
		return bad("--replicas %d: want 1..%d", *replicas, placement.MaxReplicas)
	}
	nodes, err := readWith(*topo, dryrun.ParseTopology)
	if err != nil {
		return fail2(err)
	}
	var streams []placement.Stream
	if *file != "" {
		if streams, err = readWith(*file, dryrun.ParseStreams); err != nil {
			return fail2(err)
		}
	} else {
		streams = dryrun.GenerateStreams(*n, *replicas)
	}
	opts := dryrun.Options{
		Config: placement.Config{Level: *level, Epsilon: *eps, Overload: *overload, NoLoadCap: *nocap},
		Fail:   fail, Drain: drain,
	}
	for _, spec := range add {
		node, err := dryrun.ParseNodeSpec(spec)
		if err != nil {
			return fail2(fmt.Errorf("--add: %w", err))
		}
		opts.Add = append(opts.Add, node)
	}
	rep, err := dryrun.Run(nodes, streams, opts)
	if err != nil {
		return fail2(err)
	}
	if *format == "json" {
		err = dryrun.WriteJSON(os.Stdout, rep)
	} else {
		err = dryrun.WriteTable(os.Stdout, rep)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "understudy placement: %v\n", err)
		return 1
	}
	return 0
}

// fail2 prints err; bad input exits 2, anything else (I/O) 1.
func fail2(err error) int {
	fmt.Fprintf(os.Stderr, "understudy placement: %v\n", err)
	if errors.Is(err, dryrun.ErrBadInput) || errors.Is(err, os.ErrNotExist) {
		return 2
	}
	return 1
}

func readWith[T any](path string, parse func(io.Reader) (T, error)) (T, error) {
	f, err := os.Open(path)
	if err != nil {
		var zero T
		return zero, err
	}
	defer f.Close()
	v, err := parse(f)
	if err != nil {
		return v, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}
