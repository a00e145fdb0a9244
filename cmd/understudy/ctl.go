package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"github.com/understudy-nvr/understudy/proto/understudy/v1/understudyv1connect"
)

// understudy ctl is the command-line client of the Connect API
// (proto/understudy/v1). Conventions:
//
//   - Server: --server, else $UNDERSTUDY_SERVER, else http://127.0.0.1:7480 (the default listen address of understudy serve).
//     http:// (or a bare HOST:PORT) speaks HTTP/2 without TLS (h2c, prior
//     knowledge) unless --http1; https:// speaks TLS (HTTP/2 or 1.1).
//   - Token: --token, else --token-file, else $UNDERSTUDY_TOKEN; sent as
//     "Authorization: Bearer ..." on every call. Tokens and camera passwords
//     are never printed.
//   - Output: tables for people; with --json the response message as
//     protobuf JSON with proto field names (node_ids, api_address), enum
//     names, RFC 3339 timestamps, durations as "2592000s", 64-bit integers
//     as strings. Zero scalars and empty lists and maps are printed (so
//     "coverage": [] and "gaps": [] are always present); unset messages are
//     not. Spacing is stable (2-space indent). events --json prints one
//     compact object per line; streams list --json merges all pages into one
//     ListStreamsResponse; export --json prints the first ExportClipResponse
//     without its chunk.
//   - Exit codes: 0 success, 1 failed call ("ctl: CODE: message") or local
//     I/O error, 2 bad usage.
func init() { register("ctl", "drive a node over its API", runCtl) }

func runCtl(args []string) int { return ctlMain(args, os.Stdout, os.Stderr) }

// ctlMain runs ctl with the given arguments and output writers, cancelling
// on an interrupt, and returns the exit code: 0 success, 1 a failed call or
// local I/O error, 2 bad usage.
func ctlMain(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return ctlRun(ctx, args, stdout, stderr)
}

// ctlOptions are the flags every ctl command accepts, before or after its
// name.
type ctlOptions struct {
	server    string
	token     string
	tokenFile string
	json      bool
	insecure  bool
	caFile    string
	http1     bool
	timeout   time.Duration
}

// ctlEnv is what a command runs with.
type ctlEnv struct {
	opts           ctlOptions
	stdout, stderr io.Writer
	now            time.Time
	pos            []string // positional arguments of the command, after parse

	streams   understudyv1connect.StreamServiceClient
	recording understudyv1connect.RecordingServiceClient
	cluster   understudyv1connect.ClusterServiceClient
}

// ctlUsageError is bad usage: exit code 2.
type ctlUsageError struct{ msg string }

func (e *ctlUsageError) Error() string { return e.msg }

func ctlUsagef(format string, a ...any) error {
	return &ctlUsageError{msg: fmt.Sprintf(format, a...)}
}

// ctlCommand is one ctl command; args are those after its name.
type ctlCommand struct {
	usage string
	run   func(ctx context.Context, c *ctlEnv, args []string) error
}

var ctlCommands = map[string]ctlCommand{}

func init() {
	ctlCommands = map[string]ctlCommand{
		"streams":   {"streams add|list|get|update|enable|disable|rm ...", ctlStreams},
		"timeline":  {"timeline ID --from T --to T [--node ID] [--class archive|buffer]", ctlTimeline},
		"export":    {"export ID --from T --to T -o FILE", ctlExport},
		"nodes":     {"nodes [list] | nodes drain|activate|forget ID | nodes update ID [--state S] [--capacity N]", ctlNodes},
		"placement": {"placement [ID] | placement plan [--fail IDS] [--drain IDS] [--add SPEC] [--assignments]", ctlPlacement},
		"events":    {"events [--stream ID]... [--node ID]... [--kind KIND]...", ctlEvents},
	}
}

func ctlUsage(w io.Writer) {
	fmt.Fprintln(w, `usage: understudy ctl [--server ADDR] [--token T | --token-file F] [--json] COMMAND [flags]

A command that names a stream takes its id as the argument (streams get
cam1) or as --id cam1 (timeline and export also --stream cam1).
Every command and group answers -h.

Times are RFC 3339 (2026-01-02T15:04:05Z, or with an offset), now, or now-DUR
(now-90s, now-5m, now-2h, now-1d). --server defaults to $UNDERSTUDY_SERVER,
then `+ctlDefaultServer+`; the token defaults to $UNDERSTUDY_TOKEN.

commands:`)
	names := make([]string, 0, len(ctlCommands))
	for n := range ctlCommands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %s\n", ctlCommands[n].usage)
	}
	fmt.Fprintln(w, "\nglobal flags:")
	fs := flag.NewFlagSet("ctl", flag.ContinueOnError)
	var o ctlOptions
	ctlGlobalFlags(fs, &o)
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// ctlGlobalFlags adds the common flags to fs, bound to o. The current values
// of o are the defaults, so that flags given before the command name survive
// the command's own flag set.
func ctlGlobalFlags(fs *flag.FlagSet, o *ctlOptions) {
	fs.StringVar(&o.server, "server", o.server, "API address: http://HOST:PORT, https://HOST:PORT or HOST:PORT (http) (env UNDERSTUDY_SERVER)")
	// The token's default is never the environment's value: -h prints defaults.
	fs.Var((*ctlSecret)(&o.token), "token", "bearer token (default $UNDERSTUDY_TOKEN)")
	fs.StringVar(&o.tokenFile, "token-file", o.tokenFile, "read the bearer token from this file")
	fs.BoolVar(&o.json, "json", o.json, "print the response as protobuf JSON (proto field names)")
	fs.BoolVar(&o.insecure, "insecure-skip-verify", o.insecure, "https: do not verify the server certificate")
	fs.StringVar(&o.caFile, "ca-file", o.caFile, "https: PEM file of the CA certificates to trust")
	fs.BoolVar(&o.http1, "http1", o.http1, "http: use HTTP/1.1 instead of HTTP/2 without TLS (h2c)")
	fs.DurationVar(&o.timeout, "timeout", o.timeout, "deadline of each unary call (not of export or events)")
}

// ctlSecret is a string flag whose value is never shown, not even as the
// default in -h output.
type ctlSecret string

func (s *ctlSecret) String() string     { return "" }
func (s *ctlSecret) Set(v string) error { *s = ctlSecret(v); return nil }

// ctlRun is ctlMain with an explicit context.
func ctlRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := &ctlEnv{stdout: stdout, stderr: stderr, now: time.Now()}
	c.opts.server = os.Getenv("UNDERSTUDY_SERVER")
	if c.opts.server == "" {
		c.opts.server = ctlDefaultServer
	}
	c.opts.timeout = 30 * time.Second
	fs := flag.NewFlagSet("ctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	ctlGlobalFlags(fs, &c.opts)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			ctlUsage(stdout)
			return 0
		}
		fmt.Fprintf(stderr, "ctl: %v\n\n", err)
		ctlUsage(stderr)
		return 2
	}
	if fs.NArg() == 0 {
		ctlUsage(stderr)
		return 2
	}
	name := fs.Arg(0)
	cmd, ok := ctlCommands[name]
	if !ok {
		fmt.Fprintf(stderr, "ctl: unknown command %q\n\n", name)
		ctlUsage(stderr)
		return 2
	}
	err := cmd.run(ctx, c, fs.Args()[1:])
	code := ctlExit(stderr, err)
	// What an h2c request to an HTTP/1.1-only server ends with, depending
	// on whether the server's answer or its close arrives first.
	if err != nil && (strings.Contains(err.Error(), "looked like an HTTP/1.1 header") ||
		strings.Contains(err.Error(), "http2: client conn could not be established")) {
		fmt.Fprintln(stderr, "ctl: hint: the server does not speak HTTP/2 without TLS (h2c); try --http1")
	}
	return code
}

// ctlExit prints err (if any) and maps it to the exit code.
func ctlExit(stderr io.Writer, err error) int {
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ue *ctlUsageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "ctl: %s\n", ue.msg)
		return 2
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		fmt.Fprintf(stderr, "ctl: %s: %s\n", ce.Code(), ce.Message())
		return 1
	}
	fmt.Fprintf(stderr, "ctl: %v\n", err)
	return 1
}

// flags returns a flag set for a command with the global flags added.
func (c *ctlEnv) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parse reports errors itself
	ctlGlobalFlags(fs, &c.opts)
	return fs
}

// parse parses args with fs: a flag error is a usage error naming the
// flag; -h prints the flags to stdout. With wantArgs >= 0 the number of
// positional arguments must be exactly that.
func (c *ctlEnv) parse(fs *flag.FlagSet, args []string, wantArgs int, argNames string) error {
	// Flags may come before, between and after the positional arguments;
	// everything after "--" is positional.
	c.pos = nil
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				if u, ok := ctlSubUsage[fs.Name()]; ok {
					fmt.Fprintf(c.stdout, "usage: understudy ctl %s\n\n", u)
				}
				fmt.Fprintf(c.stdout, "flags of understudy ctl %s:\n", fs.Name())
				fs.SetOutput(c.stdout)
				fs.PrintDefaults()
				return err
			}
			return ctlUsagef("%s: %v (see -h)", fs.Name(), err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			c.pos = append(c.pos, rest...)
			break
		}
		c.pos = append(c.pos, rest[0])
		args = rest[1:]
	}
	if wantArgs >= 0 && len(c.pos) != wantArgs {
		if wantArgs == 0 {
			return ctlUsagef("%s: unexpected argument %q", fs.Name(), c.pos[0])
		}
		return ctlUsagef("%s: want %s", fs.Name(), argNames)
	}
	return nil
}

// ctlSubUsage is the usage line of every command with its own flag set,
// printed by -h above its flags.
var ctlSubUsage = map[string]string{
	"streams add":     "streams add ID --url URL [--username U --password-file F] [--replicas R] [--retention D] [--label K=V]... [--disabled]",
	"streams list":    "streams list",
	"streams get":     "streams get ID",
	"streams update":  "streams update ID [--url URL] [--replicas R] [--retention D] [--label K=V]... [--clear-labels] [--username U --password-file F | --clear-credentials]",
	"streams enable":  "streams enable ID",
	"streams disable": "streams disable ID",
	"streams rm":      "streams rm ID",
	"timeline":        "timeline ID --from T --to T [--node ID] [--class archive|buffer]",
	"export":          "export ID --from T --to T -o FILE [--force]",
	"nodes list":      "nodes list",
	"nodes drain":     "nodes drain NODE",
	"nodes activate":  "nodes activate NODE",
	"nodes update":    "nodes update NODE [--state active|draining] [--capacity N]",
	"nodes forget":    "nodes forget NODE",
	"placement":       "placement [ID]",
	"placement plan":  "placement plan [--fail IDS] [--drain IDS] [--add ID:DOMAIN:WEIGHT]... [--level L] [--overload P] [--assignments]",
	"events":          "events [--stream ID]... [--node ID]... [--kind KIND]...",
}

// streamID is the stream a command names: its positional argument or the
// value of its --id flag (alias --stream where the command has it), one
// of the two. optional: naming none is allowed (an empty id).
func (c *ctlEnv) streamID(cmd string, flagValues []string, optional bool) (string, error) {
	id := ""
	for _, v := range flagValues {
		if v != "" && id != "" && v != id {
			return "", ctlUsagef("%s: the stream is named twice (%q and %q)", cmd, id, v)
		}
		if v != "" {
			id = v
		}
	}
	switch {
	case len(c.pos) > 1:
		return "", ctlUsagef("%s: want one stream id, got %d arguments", cmd, len(c.pos))
	case len(c.pos) == 1 && id != "" && c.pos[0] != id:
		return "", ctlUsagef("%s: the stream is named twice (%q and %q)", cmd, c.pos[0], id)
	case len(c.pos) == 1:
		id = c.pos[0]
	}
	if id == "" && !optional {
		return "", ctlUsagef("%s: want a stream id (ID, or --id ID)", cmd)
	}
	return id, nil
}

// connect builds the clients from the options.
func (c *ctlEnv) connect() error {
	base, err := normaliseCtlServer(c.opts.server)
	if err != nil {
		return ctlUsagef("--server: %v", err)
	}
	token, err := c.resolveToken()
	if err != nil {
		return err
	}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
	}
	var p http.Protocols
	if strings.HasPrefix(base, "https://") {
		tc := &tls.Config{InsecureSkipVerify: c.opts.insecure}
		if c.opts.caFile != "" {
			pem, err := os.ReadFile(c.opts.caFile)
			if err != nil {
				return ctlUsagef("--ca-file: %v", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return ctlUsagef("--ca-file %s: no PEM certificate in it", c.opts.caFile)
			}
			tc.RootCAs = pool
		}
		tr.TLSClientConfig = tc
		p.SetHTTP1(true)
		p.SetHTTP2(true)
	} else {
		if c.opts.insecure || c.opts.caFile != "" {
			return ctlUsagef("--insecure-skip-verify and --ca-file need an https:// server")
		}
		if c.opts.http1 {
			p.SetHTTP1(true)
		} else {
			// Unencrypted HTTP/2 only (prior knowledge): with HTTP1 also set
			// the transport would use HTTP/1.1 for http:// URLs.
			p.SetUnencryptedHTTP2(true)
		}
	}
	tr.Protocols = &p
	hc := &http.Client{Transport: tr}
	opts := []connect.ClientOption{connect.WithInterceptors(ctlBearer{token: token})}
	c.streams = understudyv1connect.NewStreamServiceClient(hc, base, opts...)
	c.recording = understudyv1connect.NewRecordingServiceClient(hc, base, opts...)
	c.cluster = understudyv1connect.NewClusterServiceClient(hc, base, opts...)
	return nil
}

// resolveToken picks the token: --token, else --token-file, else
// $UNDERSTUDY_TOKEN; empty means no Authorization header.
func (c *ctlEnv) resolveToken() (string, error) {
	if c.opts.token != "" && c.opts.tokenFile != "" {
		return "", ctlUsagef("--token and --token-file are exclusive")
	}
	if c.opts.tokenFile != "" {
		b, err := os.ReadFile(c.opts.tokenFile)
		if err != nil {
			return "", ctlUsagef("--token-file: %v", err)
		}
		t := strings.TrimSpace(string(b))
		if t == "" {
			return "", ctlUsagef("--token-file %s is empty", c.opts.tokenFile)
		}
		return t, nil
	}
	if c.opts.token != "" {
		return c.opts.token, nil
	}
	return strings.TrimSpace(os.Getenv("UNDERSTUDY_TOKEN")), nil
}

// unary returns the context for one unary call.
func (c *ctlEnv) unary(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.opts.timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.opts.timeout)
}

// ctlBearer is a client interceptor that sends the token as
// "Authorization: Bearer TOKEN" on unary and streaming calls.
type ctlBearer struct{ token string }

func (b ctlBearer) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if b.token != "" && req.Spec().IsClient {
			req.Header().Set("Authorization", "Bearer "+b.token)
		}
		return next(ctx, req)
	}
}

func (b ctlBearer) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		if b.token != "" {
			conn.RequestHeader().Set("Authorization", "Bearer "+b.token)
		}
		return conn
	}
}

func (b ctlBearer) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}
