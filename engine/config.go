package engine

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/memberlist"
	"gopkg.in/yaml.v3"

	"github.com/understudy-nvr/understudy/engine/catalog"
	"github.com/understudy-nvr/understudy/engine/cluster"
	"github.com/understudy-nvr/understudy/placement"
	"github.com/understudy-nvr/understudy/segment"
)

// Config is the configuration of `understudy serve`. Every field is also a
// command-line flag (--name) and an environment variable
// (UNDERSTUDY_NAME, dashes as underscores); the YAML key of the config file
// is the flag name. Precedence: flag > environment > config file > default.
type Config struct {
	// ID is the node id, unique in the cluster and stable across restarts.
	// Default: the host name.
	ID string `yaml:"id"`
	// Domain is the failure-domain path, outermost first, such as
	// "zone=a/rack=r1/host=h1". Default "host=<id>".
	Domain string `yaml:"domain"`
	// DataDir holds the segments, their index and the control state
	// (catalog). Default "understudy-data".
	DataDir string `yaml:"data-dir"`
	// Listen is the address of the API (Connect, gRPC, gRPC-Web and the
	// plain HTTP endpoints, one port). Default "127.0.0.1:7480".
	Listen string `yaml:"listen"`
	// AdvertiseAddress is the host:port other nodes and clients reach the
	// API at (Node.api_address). Default: the bound listen address.
	AdvertiseAddress string `yaml:"advertise-address"`
	// AdminToken grants every call; ReadToken grants the read-only ones.
	// At least one of AdminToken/AdminTokenFile is required. Default none.
	AdminToken string `yaml:"admin-token"`
	// AdminTokenFile is a file whose content (trimmed) is the admin token;
	// it keeps the token out of ps and of the config file. Default none.
	AdminTokenFile string `yaml:"admin-token-file"`
	// ReadToken grants the read-only calls. Default none.
	ReadToken string `yaml:"read-token"`
	// ReadTokenFile is a file holding the read token. Default none.
	ReadTokenFile string `yaml:"read-token-file"`
	// AnonymousRead lets requests without a token make read-only calls.
	// Default false.
	AnonymousRead bool `yaml:"anonymous-read"`
	// TLSCert and TLSKey, both set, serve TLS (HTTP/2 negotiated by ALPN);
	// both empty serve cleartext HTTP/1.1 and h2c. Default none.
	TLSCert string `yaml:"tls-cert"`
	TLSKey  string `yaml:"tls-key"`
	// LogFormat is "text" or "json". Default "text".
	LogFormat string `yaml:"log-format"`
	// LogLevel is debug, info, warn or error. Default "info".
	LogLevel string `yaml:"log-level"`
	// MaxRange is the longest time range GetTimeline, ListSegments and the
	// exports accept. Default 24h.
	MaxRange time.Duration `yaml:"max-range"`
	// SegmentDuration is the length after which a segment is closed at the
	// next keyframe. Default 60s.
	SegmentDuration time.Duration `yaml:"segment-duration"`
	// Fsync is the segment durability policy: "part" or "interval".
	// Default "part".
	Fsync string `yaml:"fsync"`
	// Transport is the RTSP transport: auto, tcp or udp. Default "auto".
	Transport string `yaml:"transport"`
	// CPUThreshold is the CPU percentage (0..100 of the machine) whose
	// crossing, either way, is an EVENT_KIND_CPU_THRESHOLD event.
	// Default 90.
	CPUThreshold float64 `yaml:"cpu-threshold"`
	// EventBuffer is the number of events held for each WatchEvents
	// subscriber; when it is full, events for that subscriber are dropped
	// (recording never waits). Default 256.
	EventBuffer int `yaml:"event-buffer"`
	// ShutdownTimeout bounds the graceful shutdown of the HTTP server.
	// Default 10s.
	ShutdownTimeout time.Duration `yaml:"shutdown-timeout"`
	// RetentionInterval is how often archive segments older than their
	// stream's retention are deleted. Default 1m.
	RetentionInterval time.Duration `yaml:"retention-interval"`
	// BackfillInterval is how often a node repairs the archives of the
	// streams it is home for from its buffer and its peers (also at once
	// on start and on promotion). Default 30s.
	BackfillInterval time.Duration `yaml:"backfill-interval"`
	// BackfillRateMiB bounds the backfill copy rate in MiB/s, so live
	// recording keeps the disk. Default 100; 0 in the file is the default.
	BackfillRateMiB int `yaml:"backfill-rate-mib"`
	// BufferWindow is how long this node keeps what it records as a
	// replica (its rolling buffer), and how far back a home repairs its
	// archive from the buffers. Default 6h.
	BufferWindow time.Duration `yaml:"buffer-window"`
	// BufferBudgetMiB bounds, in MiB, the disk the buffer holds; when the
	// window needs more, the oldest buffer segments go early (an
	// EVENT_KIND_BUFFER_EVICTED_EARLY event and the
	// understudy_buffer_reach_seconds gauge say so). Default 0: no bound
	// but the disk.
	BufferBudgetMiB int `yaml:"buffer-budget-mib"`
	// MaxExports bounds the clip exports (ExportClip and GET /v1/export
	// together) running at once on this node; one more is refused with
	// RESOURCE_EXHAUSTED (HTTP 429). Each holds the sample tables of its
	// clip and up to two open segment files. Default 4.
	MaxExports int `yaml:"max-exports"`
	// QueueMemoryMiB bounds, in MiB, the memory the recording queues of all
	// streams hold together between the network and the disk (each one
	// also holds at most 64 MiB). It rides out disk stalls: 1024 MiB is
	// about 40 s of 50 cameras at 4 Mbit/s. When it is full, recording
	// drops to the next keyframe and the hole is a gap, instead of the node
	// running out of memory. Default 1024.
	QueueMemoryMiB int `yaml:"queue-memory-mib"`

	// GossipListen is the host:port the cluster's membership gossip binds
	// (UDP and TCP). Empty: the node runs alone, recording every stream
	// itself. Default none.
	GossipListen string `yaml:"gossip-listen"`
	// GossipAdvertise is the host:port peers reach the gossip at, when it
	// differs from GossipListen (NAT, 0.0.0.0). Default: GossipListen.
	GossipAdvertise string `yaml:"gossip-advertise"`
	// Join lists gossip addresses (host:port, comma-separated) of peers to
	// join at start and to re-join every 10 s, so that the two sides of a
	// healed partition merge again. Default none: a new cluster.
	Join string `yaml:"join"`
	// GossipKeyFile holds the gossip encryption keys, one per line, base64
	// of 16, 24 or 32 bytes (`understudy keygen` makes one); the first
	// encrypts, all decrypt. SIGHUP reloads it. Required with
	// GossipListen unless InsecureGossip: the gossip carries the camera
	// credentials of the catalog. Default none.
	GossipKeyFile string `yaml:"gossip-key-file"`
	// InsecureGossip allows gossip without encryption (tests, demos on one
	// machine). Default false.
	InsecureGossip bool `yaml:"insecure-gossip"`
	// Weight is the node's capacity weight: placement gives it a share of
	// the streams in proportion. Default 1.
	Weight int `yaml:"weight"`
	// PlacementLevel is the failure-domain key (of Domain) that the copies
	// of a stream never share, such as "rack" or "zone"; "node" allows any
	// two nodes. Default "rack" (falling back to "node" when the domains
	// name no racks).
	PlacementLevel string `yaml:"placement-level"`
	// PlacementOverload is how far past its load bound, as a fraction of
	// its fair share, a node may go so that a stream's copies stay unique
	// at the tiers above PlacementLevel (zones): Swift's overload, the same
	// knob as `understudy placement --overload`. 0..100, default 0.
	PlacementOverload float64 `yaml:"placement-overload"`
	// HandoffTimeout bounds make-before-break: a node that loses a stream
	// keeps recording it until the stream's new recorders say they record
	// it, or this long. Default 30s.
	HandoffTimeout time.Duration `yaml:"handoff-timeout"`
	// GossipTransport, when set, carries the gossip instead of UDP/TCP
	// sockets on GossipListen (which must name its address): tests cut a
	// node off with cluster.FaultTransport. Not settable from a file or
	// flag.
	GossipTransport memberlist.NodeAwareTransport `yaml:"-"`
	// DiskFS, when set, is the file system the segment store (files and
	// index) goes through instead of the operating system's: tests stall
	// it or make it fail (errorfs) to inject disk faults. Not settable
	// from a file or flag.
	DiskFS vfs.FS `yaml:"-"`
	// CameraDial, when set, opens the sessions' TCP connections to the
	// cameras instead of a net.Dialer: the chaos suite cuts a node off
	// its cameras. Not settable from a file or flag.
	CameraDial func(ctx context.Context, network, address string) (net.Conn, error) `yaml:"-"`
	// Clock, when set, is the wall clock of what the node records (the
	// sessions' frame times where the camera's own are missing or off)
	// and of the catalog's HLC, instead of time.Now: the chaos suite
	// steps one node's clock. Not settable from a file or flag.
	Clock func() time.Time `yaml:"-"`
	// DiskSpace, when set, reports the bytes available and the size of the
	// data directory's file system instead of statfs: tests fill the disk.
	// Not settable from a file or flag.
	DiskSpace func() (avail, total uint64) `yaml:"-"`
	// DiskFreeMinPercent is the share of the data directory's file system
	// that must stay available: below it the node marks itself saturated
	// (its copies move to other nodes before the disk is full), at 1
	// percentage point above it again it takes streams again. Default 2.
	DiskFreeMinPercent float64 `yaml:"disk-free-min-percent"`
	// NoBackfill, when set, runs no backfill loop: a home's archive is
	// never repaired. Only the chaos suite sets it, to show its checkers
	// find the holes (a serve binary built with the chaosfaults tag).
	// Not settable from a file or flag.
	NoBackfill bool `yaml:"-"`
	// NoMakeBeforeBreak, when set, stops a session within a second of its
	// role moving to other nodes instead of waiting for them to record
	// (the handoff timeout becomes 1 ns). DropPartEvery, when above 0,
	// makes the segment store silently leave out one part in that many
	// (segment.Options.DropPartEvery). Only the chaos suite sets them,
	// to show its checkers find what they break (a serve binary built
	// with the chaosfaults tag). Not settable from a file or flag.
	NoMakeBeforeBreak bool `yaml:"-"`
	DropPartEvery     int  `yaml:"-"`
	// RejoinHold is the hysteresis against a flapping node: a node that
	// (re)appears takes streams only after it stayed this long. Default
	// 10s.
	RejoinHold time.Duration `yaml:"rejoin-hold"`
}

// setting is one configuration key: flag, env and YAML name in one.
type setting struct {
	name  string
	usage string
	field string // Config field name
}

var settings = []setting{
	{"id", "node `id` (default: host name)", "ID"},
	{"domain", "failure `domain`, e.g. zone=a/rack=r1/host=h1 (default host=<id>)", "Domain"},
	{"data-dir", "data `directory` (default understudy-data)", "DataDir"},
	{"listen", "API address `host:port`, all protocols on one port (default 127.0.0.1:7480)", "Listen"},
	{"advertise-address", "API address `host:port` announced to others (default: the bound address)", "AdvertiseAddress"},
	{"admin-token", "bearer `token` of the admin role (prefer --admin-token-file)", "AdminToken"},
	{"admin-token-file", "`file` holding the admin token", "AdminTokenFile"},
	{"read-token", "bearer `token` of the read-only role", "ReadToken"},
	{"read-token-file", "`file` holding the read-only token", "ReadTokenFile"},
	{"anonymous-read", "allow read-only calls without a token (default false)", "AnonymousRead"},
	{"tls-cert", "TLS certificate `file` (with --tls-key)", "TLSCert"},
	{"tls-key", "TLS key `file` (with --tls-cert)", "TLSKey"},
	{"log-format", "log `format`: text or json (default text)", "LogFormat"},
	{"log-level", "log `level`: debug, info, warn, error (default info)", "LogLevel"},
	{"max-range", "longest time range of timeline/segments/export requests, a `duration` (default 24h)", "MaxRange"},
	{"segment-duration", "segment length, a `duration` (default 60s)", "SegmentDuration"},
	{"fsync", "segment fsync `policy`: part or interval (default part)", "Fsync"},
	{"transport", "RTSP `transport`: auto, tcp or udp (default auto)", "Transport"},
	{"disk-free-min-percent", "available `percent` of the data file system below which the node is saturated (default 2)", "DiskFreeMinPercent"},
	{"cpu-threshold", "CPU use, in `percent` of the machine, whose crossing is an event (default 90)", "CPUThreshold"},
	{"event-buffer", "`events` buffered per WatchEvents subscriber (default 256)", "EventBuffer"},
	{"shutdown-timeout", "graceful shutdown bound, a `duration` (default 10s)", "ShutdownTimeout"},
	{"retention-interval", "how often expired archive segments are deleted, a `duration` (default 1m)", "RetentionInterval"},
	{"buffer-window", "how long the replica buffer keeps what it records, a `duration`; also how far back archives are repaired (default 6h)", "BufferWindow"},
	{"buffer-budget-mib", "disk `MiB` the replica buffer may hold; beyond, the oldest goes early (default 0: no bound)", "BufferBudgetMiB"},
	{"max-exports", "clip exports running at once, an `int`; more are refused (default 4)", "MaxExports"},
	{"backfill-interval", "how often archives are repaired from buffers and peers, a `duration` (default 30s)", "BackfillInterval"},
	{"backfill-rate-mib", "backfill copy rate bound in `MiB/s` (default 100)", "BackfillRateMiB"},
	{"queue-memory-mib", "`MiB` all recording queues may hold together to ride out disk stalls (default 1024)", "QueueMemoryMiB"},
	{"gossip-listen", "cluster gossip address `host:port`, UDP and TCP (default none: a single node)", "GossipListen"},
	{"gossip-advertise", "gossip address `host:port` announced to peers (default: gossip-listen)", "GossipAdvertise"},
	{"join", "gossip addresses of peers to join, comma-separated `host:port,...`", "Join"},
	{"gossip-key-file", "`file` of gossip keys, one base64 key per line, first encrypts; SIGHUP reloads", "GossipKeyFile"},
	{"insecure-gossip", "allow unencrypted gossip (tests and demos only; default false)", "InsecureGossip"},
	{"weight", "capacity weight of this node in placement, an `int` from 1 (default 1)", "Weight"},
	{"placement-level", "failure-domain `key` copies never share: rack, zone, node... (default rack)", "PlacementLevel"},
	{"placement-overload", "`fraction` (0 to 100) of its fair share a node may go past its load bound to keep copies in distinct zones (default 0)", "PlacementOverload"},
	{"handoff-timeout", "longest a node records a stream that moved away, waiting for its new recorders, a `duration` (default 30s)", "HandoffTimeout"},
	{"rejoin-hold", "how long a (re)appearing node waits before it takes streams, a `duration` (default 10s)", "RejoinHold"},
}

// EnvName returns the environment variable of a setting: UNDERSTUDY_ and
// the flag name upper-cased with dashes as underscores.
func EnvName(flagName string) string {
	return "UNDERSTUDY_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// EnsureDefaults fills in the defaults documented on each field, for the
// fields left unset (zero); Validate rejects values out of range.
func (c *Config) EnsureDefaults() {
	if c.ID == "" {
		if h, err := os.Hostname(); err == nil {
			c.ID = sanitizeID(h)
		}
		if c.ID == "" {
			c.ID = "node"
		}
	}
	if c.Domain == "" {
		c.Domain = "host=" + c.ID
	}
	if c.DataDir == "" {
		c.DataDir = "understudy-data"
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:7480"
	}
	if c.LogFormat == "" {
		c.LogFormat = "text"
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.MaxRange == 0 {
		c.MaxRange = 24 * time.Hour
	}
	if c.SegmentDuration == 0 {
		c.SegmentDuration = 60 * time.Second
	}
	if c.Fsync == "" {
		c.Fsync = "part"
	}
	if c.Transport == "" {
		c.Transport = "auto"
	}
	if c.CPUThreshold == 0 {
		c.CPUThreshold = 90
	}
	if c.DiskFreeMinPercent == 0 {
		c.DiskFreeMinPercent = 2
	}
	if c.EventBuffer == 0 {
		c.EventBuffer = 256
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	if c.RetentionInterval == 0 {
		c.RetentionInterval = time.Minute
	}
	if c.BackfillInterval == 0 {
		c.BackfillInterval = 30 * time.Second
	}
	if c.BufferWindow == 0 {
		c.BufferWindow = 6 * time.Hour
	}
	if c.BackfillRateMiB == 0 {
		c.BackfillRateMiB = 100
	}
	if c.QueueMemoryMiB == 0 {
		c.QueueMemoryMiB = DefaultQueueMemoryMiB
	}
	if c.MaxExports == 0 {
		c.MaxExports = 4
	}
	if c.Weight == 0 {
		c.Weight = 1
	}
	if c.PlacementLevel == "" {
		c.PlacementLevel = "rack"
	}
	if c.HandoffTimeout == 0 {
		c.HandoffTimeout = 30 * time.Second
	}
	if c.RejoinHold == 0 {
		c.RejoinHold = 10 * time.Second
	}
	if c.GossipAdvertise == "" {
		c.GossipAdvertise = c.GossipListen
	}
}

// JoinAddrs returns the Join setting as a list.
func (c *Config) JoinAddrs() []string {
	var out []string
	for _, a := range strings.Split(c.Join, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// validHostPort checks a host:port setting with a numeric port.
func validHostPort(name, v string, allowZero bool) error {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return fmt.Errorf("%s: %q is not host:port", name, v)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 || (n == 0 && !allowZero) || strings.ContainsAny(host, " \t/@") {
		return fmt.Errorf("%s: %q is not host:port", name, v)
	}
	return nil
}

func sanitizeID(h string) string {
	var b strings.Builder
	for _, r := range h {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			b.WriteRune(r)
		}
	}
	return strings.TrimLeft(b.String(), ".")
}

// Validate checks the configuration (after EnsureDefaults); the error names
// the setting.
func (c *Config) Validate() error {
	if err := catalog.ValidateNodeID(c.ID); err != nil {
		return fmt.Errorf("id: %w", err)
	}
	if err := segment.ValidateStreamID(c.ID); err != nil {
		return fmt.Errorf("id: %w", err)
	}
	if strings.ContainsAny(c.Domain, " \t\n") {
		return errors.New("domain: must not contain white space")
	}
	for _, part := range strings.Split(c.Domain, "/") {
		if k, v, ok := strings.Cut(part, "="); !ok || k == "" || v == "" {
			return fmt.Errorf("domain: %q is not key=value (like zone=a/rack=r1/host=h1)", part)
		}
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("tls-cert and tls-key: set both or neither")
	}
	if c.AdminToken == "" {
		return errors.New("admin-token: required (or admin-token-file)")
	}
	if c.ReadToken != "" && c.ReadToken == c.AdminToken {
		return errors.New("read-token: must differ from the admin token")
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("log-format: must be text or json, not %q", c.LogFormat)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log-level: must be debug, info, warn or error, not %q", c.LogLevel)
	}
	switch c.Fsync {
	case "part", "interval":
	default:
		return fmt.Errorf("fsync: must be part or interval, not %q", c.Fsync)
	}
	switch c.Transport {
	case "auto", "tcp", "udp":
	default:
		return fmt.Errorf("transport: must be auto, tcp or udp, not %q", c.Transport)
	}
	if !(c.DiskFreeMinPercent > 0 && c.DiskFreeMinPercent <= 50) { // (NaN too)
		return fmt.Errorf("disk-free-min-percent: must be a percentage in (0, 50], got %v", c.DiskFreeMinPercent)
	}
	if !(c.CPUThreshold > 0 && c.CPUThreshold <= 100) { // (NaN too)
		return fmt.Errorf("cpu-threshold: must be a percentage in (0, 100], got %v", c.CPUThreshold)
	}
	for _, d := range []struct {
		name     string
		v        time.Duration
		min, max time.Duration
	}{
		{"max-range", c.MaxRange, time.Second, 100 * 365 * 24 * time.Hour},
		{"segment-duration", c.SegmentDuration, time.Second, 24 * time.Hour},
		{"shutdown-timeout", c.ShutdownTimeout, 100 * time.Millisecond, time.Hour},
		{"retention-interval", c.RetentionInterval, time.Second, 24 * time.Hour},
		{"backfill-interval", c.BackfillInterval, time.Second, time.Hour},
		{"buffer-window", c.BufferWindow, time.Minute, 90 * 24 * time.Hour},
	} {
		if d.v < d.min || d.v > d.max {
			return fmt.Errorf("%s: must be between %v and %v, got %v", d.name, d.min, d.max, d.v)
		}
	}
	if c.BackfillRateMiB < 1 || c.BackfillRateMiB > 100_000 {
		return fmt.Errorf("backfill-rate-mib: must be between 1 and 100000 MiB/s, got %d", c.BackfillRateMiB)
	}
	if c.BufferBudgetMiB < 0 || c.BufferBudgetMiB > 1<<30 {
		return fmt.Errorf("buffer-budget-mib: must be between 0 (no bound) and %d MiB, got %d", 1<<30, c.BufferBudgetMiB)
	}
	if c.EventBuffer < 1 || c.EventBuffer > MaxEventBuffer {
		return fmt.Errorf("event-buffer: must be between 1 and %d events, got %d", MaxEventBuffer, c.EventBuffer)
	}
	if c.QueueMemoryMiB < 16 || c.QueueMemoryMiB > 1<<20 {
		return fmt.Errorf("queue-memory-mib: must be between 16 and %d MiB, got %d", 1<<20, c.QueueMemoryMiB)
	}
	if c.MaxExports < 1 || c.MaxExports > MaxMaxExports {
		return fmt.Errorf("max-exports: must be between 1 and %d, got %d", MaxMaxExports, c.MaxExports)
	}
	if c.AdvertiseAddress != "" {
		host, port, err := net.SplitHostPort(c.AdvertiseAddress)
		if err != nil {
			return fmt.Errorf("advertise-address: %w", err)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || host == "" || strings.ContainsAny(host, " \t/@") {
			return fmt.Errorf("advertise-address: %q is not host:port", c.AdvertiseAddress)
		}
	}
	if err := c.validateCluster(); err != nil {
		return err
	}
	for _, t := range []struct{ name, v string }{{"admin-token", c.AdminToken}, {"read-token", c.ReadToken}} {
		if err := validToken(t.v); err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
	}
	if c.TLSCert != "" {
		if _, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey); err != nil {
			return fmt.Errorf("tls-cert and tls-key: %w", err)
		}
	}
	return nil
}

// validateCluster checks the cluster settings.
func (c *Config) validateCluster() error {
	if len(c.Domain) > cluster.MaxDomainLen {
		return fmt.Errorf("domain: longer than %d bytes", cluster.MaxDomainLen)
	}
	if c.Weight < 1 || c.Weight > placement.MaxNodeWeight {
		return fmt.Errorf("weight: must be between 1 and %d, got %d", placement.MaxNodeWeight, c.Weight)
	}
	if c.PlacementOverload < 0 || c.PlacementOverload > 100 || c.PlacementOverload != c.PlacementOverload {
		return fmt.Errorf("placement-overload: must be between 0 and 100, got %v", c.PlacementOverload)
	}
	if c.PlacementLevel == "" || strings.ContainsAny(c.PlacementLevel, "/= \t\n") {
		return fmt.Errorf("placement-level: %q is not a domain key (like rack or zone) or node", c.PlacementLevel)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"handoff-timeout", c.HandoffTimeout}, {"rejoin-hold", c.RejoinHold}} {
		if d.v < time.Second || d.v > time.Hour {
			return fmt.Errorf("%s: must be between 1s and 1h, got %v", d.name, d.v)
		}
	}
	if c.GossipListen == "" {
		if c.Join != "" || c.GossipKeyFile != "" || c.GossipAdvertise != "" {
			return errors.New("join, gossip-key-file and gossip-advertise need gossip-listen")
		}
		return nil
	}
	if err := validHostPort("gossip-listen", c.GossipListen, true); err != nil {
		return err
	}
	if err := validHostPort("gossip-advertise", c.GossipAdvertise, false); err != nil {
		return fmt.Errorf("%w (set gossip-advertise when gossip-listen has port 0)", err)
	}
	for _, a := range c.JoinAddrs() {
		if err := validHostPort("join", a, false); err != nil {
			return err
		}
	}
	if c.GossipKeyFile == "" && !c.InsecureGossip {
		return errors.New("gossip-key-file: required with gossip-listen (the gossip carries camera credentials); `understudy keygen` makes a key, or set insecure-gossip for a test")
	}
	if c.GossipKeyFile != "" {
		if _, err := ReadGossipKeys(c.GossipKeyFile); err != nil {
			return fmt.Errorf("gossip-key-file: %w", err)
		}
	}
	return nil
}

// ReadGossipKeys reads a gossip key file: one key per line, base64 (std
// or URL alphabet, padded or not) of 16, 24 or 32 bytes; blank lines and
// lines starting with # are skipped. Errors name the line, never the key.
func ReadGossipKeys(path string) ([][]byte, error) {
	data, err := readConfigFile(path)
	if err != nil {
		return nil, err
	}
	var keys [][]byte
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var k []byte
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if k, err = enc.DecodeString(line); err == nil {
				break
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%s line %d: not base64", path, i+1)
		}
		if l := len(k); l != 16 && l != 24 && l != 32 {
			return nil, fmt.Errorf("%s line %d: key of %d bytes; want 16, 24 or 32 (`understudy keygen` makes one)", path, i+1, l)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no key", path)
	}
	return keys, nil
}

// MaxEventBuffer bounds Config.EventBuffer: each WatchEvents subscriber
// gets a buffer that size.
const MaxEventBuffer = 65536

// DefaultQueueMemoryMiB is the default of Config.QueueMemoryMiB.
const DefaultQueueMemoryMiB = 1024

// MaxMaxExports bounds Config.MaxExports.
const MaxMaxExports = 256

// minTokenLen is the shortest bearer token accepted.
const minTokenLen = 8

// validToken checks a bearer token (empty: not set): visible ASCII only, so
// that every client can send it in an Authorization header, and not
// trivially short. The error never quotes the token.
func validToken(t string) error {
	if t == "" {
		return nil
	}
	for i := 0; i < len(t); i++ {
		if t[i] <= ' ' || t[i] > '~' {
			return fmt.Errorf("must be printable ASCII without spaces (character %d is not)", i+1)
		}
	}
	if len(t) < minTokenLen {
		return fmt.Errorf("must be at least %d characters", minTokenLen)
	}
	return nil
}

// LoadConfig builds the configuration of `understudy serve` from its
// arguments, the environment (getenv) and the YAML file named by --config
// (or UNDERSTUDY_CONFIG), with precedence flag > env > file > default; it
// reads the token files, applies the defaults and validates. Unknown keys
// of the file are an error naming the key. Help output goes to out.
func LoadConfig(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(out)
	configPath := fs.String("config", "", "YAML config `file` (env "+EnvName("config")+"); keys are the flag names")
	for _, s := range settings {
		fs.String(s.name, "", s.usage+" (env "+EnvName(s.name)+")")
	}
	// Bool flags must accept the bare form --anonymous-read.
	fs.Lookup("anonymous-read").Value = &boolString{}
	fs.Lookup("insecure-gossip").Value = &boolString{}
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	var cfg Config
	path := *configPath
	if path == "" {
		path = getenv(EnvName("config"))
	}
	if path != "" {
		data, err := readConfigFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("config: %w", err)
		}
		if err := decodeYAML(data, &cfg); err != nil {
			return Config{}, fmt.Errorf("config %s: %w", path, err)
		}
	}
	for _, s := range settings {
		if v, ok := lookupEnv(getenv, EnvName(s.name)); ok {
			if err := setField(&cfg, s.field, v); err != nil {
				return Config{}, fmt.Errorf("%s: %w", EnvName(s.name), err)
			}
		}
	}
	var ferr error
	fs.Visit(func(f *flag.Flag) {
		for _, s := range settings {
			if s.name == f.Name && ferr == nil {
				if err := setField(&cfg, s.field, f.Value.String()); err != nil {
					ferr = fmt.Errorf("--%s: %w", s.name, err)
				}
			}
		}
	})
	if ferr != nil {
		return Config{}, ferr
	}
	if err := cfg.readTokenFiles(); err != nil {
		return Config{}, err
	}
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func lookupEnv(getenv func(string) string, name string) (string, bool) {
	v := getenv(name)
	return v, v != ""
}

// maxConfigFile bounds the size of a config file.
const maxConfigFile = 1 << 20

// readConfigFile reads a config file: a regular file of at most
// maxConfigFile bytes (not /dev/zero, a FIFO or a directory).
func readConfigFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxConfigFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxConfigFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxConfigFile)
	}
	return data, nil
}

// ParseTime parses a time as the CLI and GET /v1/export read it: an RFC
// 3339 time (with a zone: "Z" or an offset), "now", or "now-DUR" /
// "now+DUR" where DUR is a duration as ParseDuration reads it ("90s", "5m",
// "2h", "1d", "1d12h"), relative to now. (In a URL query "+" is a space:
// write now%2B1h.)
func ParseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, errors.New("empty time")
	}
	if rest, ok := strings.CutPrefix(s, "now"); ok {
		if rest == "" {
			return now, nil
		}
		sign := rest[0]
		if sign != '-' && sign != '+' {
			return time.Time{}, fmt.Errorf("bad time %q: want now, now-DUR or now+DUR", s)
		}
		d, err := ParseDuration(rest[1:])
		if err != nil {
			return time.Time{}, fmt.Errorf("bad time %q: %w", s, err)
		}
		if sign == '-' {
			d = -d
		}
		return now.Add(d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("bad time %q: want RFC 3339 (2026-01-02T15:04:05Z or with an offset), now, or now-DUR like now-5m", s)
	}
	return t, nil
}

// ParseDuration parses a non-negative duration as every setting and
// command reads one: a Go duration ("90m", "1h30m", "45s"), optionally
// preceded by a whole number of days ("30d", "1d12h"). A day is 24 hours.
func ParseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, errors.New("empty duration")
	}
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		n, err := strconv.ParseUint(s[:i], 10, 32)
		if err != nil || i == 0 {
			return 0, fmt.Errorf("bad duration %q: want a whole number of days like 30d, or a Go duration like 12h or 90m", s)
		}
		if n > 100*365 {
			return 0, fmt.Errorf("bad duration %q: more than 100 years", s)
		}
		days = time.Duration(n) * 24 * time.Hour
		s = s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	if s[0] == '-' || s[0] == '+' {
		return 0, fmt.Errorf("bad duration %q: must not carry a sign", s)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("bad duration %q: want a whole number of days like 30d, or a Go duration like 12h or 90m", s)
	}
	return days + d, nil
}

// decodeYAML decodes one YAML document into cfg; unknown keys, and more
// documents after it, are errors naming the line. Durations are read as
// flags read them (ParseDuration: "30d" too).
func decodeYAML(data []byte, cfg *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return err
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return errors.New("more than one YAML document (a second '---'): one config per file")
	}
	if len(doc.Content) != 1 {
		return nil
	}
	m := doc.Content[0]
	if m.Kind != yaml.MappingNode {
		if m.Kind == yaml.ScalarNode && m.Tag == "!!null" {
			return nil
		}
		return fmt.Errorf("line %d: not a mapping of settings (like \"listen: 127.0.0.1:7480\")", m.Line)
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		kind, ok := yamlKeys[k.Value]
		if !ok {
			return fmt.Errorf("line %d: unknown setting %q (the settings are the flags of serve -h, without the dashes)", k.Line, k.Value)
		}
		if kind != reflect.TypeFor[time.Duration]() || v.Kind != yaml.ScalarNode {
			continue
		}
		d, err := ParseDuration(v.Value)
		if err != nil {
			return fmt.Errorf("line %d: %s: %w", v.Line, k.Value, err)
		}
		v.Value, v.Tag, v.Style = d.String(), "!!str", 0
	}
	return doc.Decode(cfg)
}

// yamlKeys are the YAML keys of the settings, with their Go types.
var yamlKeys = func() map[string]reflect.Type {
	keys := map[string]reflect.Type{}
	t := reflect.TypeFor[Config]()
	for i := range t.NumField() {
		f := t.Field(i)
		if name := strings.Split(f.Tag.Get("yaml"), ",")[0]; name != "" && name != "-" {
			keys[name] = f.Type
		}
	}
	return keys
}()

func (c *Config) readTokenFiles() error {
	read := func(field, path string, dst *string) error {
		if path == "" {
			return nil
		}
		if *dst != "" {
			return fmt.Errorf("%s: set either the token or its file, not both", field)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("%s: %w", field, err)
		}
		*dst = strings.TrimSpace(string(b))
		if *dst == "" {
			return fmt.Errorf("%s: %s is empty", field, path)
		}
		return nil
	}
	if err := read("admin-token-file", c.AdminTokenFile, &c.AdminToken); err != nil {
		return err
	}
	return read("read-token-file", c.ReadTokenFile, &c.ReadToken)
}

// setField parses v into the Config field by its Go type.
func setField(cfg *Config, field, v string) error {
	f := reflect.ValueOf(cfg).Elem().FieldByName(field)
	switch f.Kind() {
	case reflect.String:
		f.SetString(v)
	case reflect.Bool:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("not a boolean: %q", v)
		}
		f.SetBool(b)
	case reflect.Int:
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("not an integer: %q", v)
		}
		f.SetInt(int64(n))
	case reflect.Float64:
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return fmt.Errorf("not a number: %q", v)
		}
		f.SetFloat(x)
	case reflect.Int64: // time.Duration
		d, err := ParseDuration(v)
		if err != nil {
			return err
		}
		f.SetInt(int64(d))
	default:
		return fmt.Errorf("unsupported field %s", field)
	}
	return nil
}

// boolString is a flag.Value that accepts the bare --flag form.
type boolString struct{ v string }

func (b *boolString) String() string { return b.v }
func (b *boolString) Set(s string) error {
	if _, err := strconv.ParseBool(s); err != nil {
		return fmt.Errorf("not a boolean: %q", s)
	}
	b.v = s
	return nil
}
func (b *boolString) IsBoolFlag() bool { return true }
