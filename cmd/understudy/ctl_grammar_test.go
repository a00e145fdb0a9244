package main

import (
	"bytes"
	"context"
	"sort"
	"strings"
	"testing"

	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
)

// ctlAllCommands is every ctl group and command, as typed.
var ctlAllCommands = [][]string{
	{}, {"streams"}, {"streams", "add"}, {"streams", "list"}, {"streams", "get"}, {"streams", "update"},
	{"streams", "enable"}, {"streams", "disable"}, {"streams", "rm"},
	{"timeline"}, {"export"},
	{"nodes"}, {"nodes", "list"}, {"nodes", "drain"}, {"nodes", "activate"}, {"nodes", "update"}, {"nodes", "forget"},
	{"placement"}, {"placement", "plan"}, {"events"},
}

// TestCtlEveryCommandHelp: every group and command answers -h (and
// --help) on stdout with its usage, exit 0, without calling a server.
func TestCtlEveryCommandHelp(t *testing.T) {
	// Every top-level command is in the list.
	var names []string
	for n := range ctlCommands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		found := false
		for _, c := range ctlAllCommands {
			found = found || (len(c) > 0 && c[0] == n)
		}
		if !found {
			t.Errorf("command %s is not walked by this test", n)
		}
	}
	for _, cmd := range ctlAllCommands {
		for _, h := range []string{"-h", "--help"} {
			args := append(append([]string{"--server", "http://127.0.0.1:1"}, cmd...), h)
			var out, errb bytes.Buffer
			code := ctlRun(context.Background(), args, &out, &errb)
			if code != 0 || !strings.Contains(out.String(), "usage: understudy ctl") {
				t.Errorf("ctl %s %s: exit %d, stdout %q, stderr %q", strings.Join(cmd, " "), h, code, out.String(), errb.String())
			}
		}
	}
}

// TestCtlStreamIDBothWays: every command that names a stream takes it as
// the argument or as --id (and --stream where it had it), gives the same
// request either way, and refuses two different names or none.
func TestCtlStreamIDBothWays(t *testing.T) {
	f, srv := ctlServe(t)
	f.streams["door"] = &understudyv1.Stream{Id: "door", Url: "rtsp://h/x"}
	from, to := "--from=2026-03-01T12:00:00Z", "--to=2026-03-01T12:01:00Z"
	out := t.TempDir() + "/clip"
	cases := []struct {
		args  []string // the command; the id is appended as "door" or "--id door"
		check func() string
	}{
		{[]string{"streams", "get"}, nil},
		{[]string{"streams", "update", "--replicas", "2"}, func() string { return f.updates[len(f.updates)-1].GetStream().GetId() }},
		{[]string{"streams", "disable"}, func() string { return f.updates[len(f.updates)-1].GetStream().GetId() }},
		{[]string{"streams", "enable"}, func() string { return f.updates[len(f.updates)-1].GetStream().GetId() }},
		{[]string{"timeline", from, to}, func() string { return f.timeline.GetStreamId() }},
		{[]string{"placement"}, nil},
	}
	for _, c := range cases {
		for _, way := range [][]string{{"door"}, {"--id", "door"}, {"--id=door"}} {
			args := append(append([]string{}, c.args...), way...)
			code, stdout, stderr := ctlCall(t, srv, "good", args...)
			if code != 0 {
				t.Errorf("ctl %q: exit %d, %q %q", args, code, stdout, stderr)
				continue
			}
			if c.check != nil {
				f.mu.Lock()
				got := c.check()
				f.mu.Unlock()
				if got != "door" {
					t.Errorf("ctl %q sent stream %q", args, got)
				}
			}
		}
	}
	for _, way := range [][]string{{"door"}, {"--id", "door"}, {"--stream", "door"}} {
		args := append([]string{"export", from, to, "-o", out, "--force"}, way...)
		if code, stdout, stderr := ctlCall(t, srv, "good", args...); code != 0 {
			t.Errorf("ctl %q: exit %d, %q %q", args, code, stdout, stderr)
		}
	}
	// add takes the id both ways too; rm last.
	if code, _, stderr := ctlCall(t, srv, "good", "streams", "add", "cam2", "--url", "rtsp://h/y"); code != 0 {
		t.Errorf("streams add cam2: exit %d %q", code, stderr)
	}
	if code, _, stderr := ctlCall(t, srv, "good", "streams", "add", "--id", "cam3", "--url", "rtsp://h/z"); code != 0 {
		t.Errorf("streams add --id cam3: exit %d %q", code, stderr)
	}
	if code, _, stderr := ctlCall(t, srv, "good", "streams", "rm", "--id", "cam2"); code != 0 {
		t.Errorf("streams rm --id cam2: exit %d %q", code, stderr)
	}
	if code, _, stderr := ctlCall(t, srv, "good", "streams", "rm", "cam3"); code != 0 {
		t.Errorf("streams rm cam3: exit %d %q", code, stderr)
	}
	// Bad use: two different names, none, two arguments.
	for _, args := range [][]string{
		{"streams", "get", "door", "--id", "cam2"},
		{"streams", "get"},
		{"streams", "get", "door", "cam2"},
		{"timeline", from, to},
		{"timeline", "door", "--stream", "cam2", from, to},
		{"streams", "add", "--url", "rtsp://h/y"},
	} {
		code, _, stderr := ctlCall(t, srv, "good", args...)
		if code != 2 || !strings.Contains(stderr, "stream") {
			t.Errorf("ctl %q: exit %d, stderr %q; want a usage error about the stream", args, code, stderr)
		}
	}
}

// TestCtlEventsWaitingAndKinds: events says on stderr that it waits, and
// a wrong kind lists the valid ones.
func TestCtlEventsWaitingAndKinds(t *testing.T) {
	_, srv := ctlServe(t)
	code, stdout, stderr := ctlCall(t, srv, "good", "events", "--stream", "server-stops")
	if code != 1 || !strings.Contains(stderr, "waiting for events") || strings.Contains(stdout, "waiting") {
		t.Errorf("events: exit %d, stdout %q, stderr %q; want the waiting line on stderr only", code, stdout, stderr)
	}
	code, _, stderr = ctlCall(t, srv, "good", "events", "--kind", "gap")
	if code != 2 || !strings.Contains(stderr, "gap_opened") || !strings.Contains(stderr, "replication_changed") {
		t.Errorf("events --kind gap: exit %d, stderr %q; want the valid kinds", code, stderr)
	}
	// A reason said once: the message carries it, the details do not repeat it.
	line := fmtCtlEvent(&understudyv1.Event{Kind: understudyv1.EventKind_EVENT_KIND_RECORDING_STOPPED, StreamId: "cam1",
		Message: "recording stopped: disabled by an operator", Details: map[string]string{"reason": "disabled by an operator", "role": "home"}})
	if strings.Count(line, "disabled by an operator") != 1 || !strings.Contains(line, "role=home") {
		t.Errorf("event line %q: want the reason once", line)
	}
}
