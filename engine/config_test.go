package engine

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "understudy.yaml")
	os.WriteFile(file, []byte("id: from-file\ndomain: zone=f/host=f\nlisten: 127.0.0.1:1111\nadmin-token: file-admin\nmax-range: 2h\nanonymous-read: true\n"), 0o600)
	tokenFile := filepath.Join(dir, "read.token")
	os.WriteFile(tokenFile, []byte("  read-from-file\n"), 0o600)
	env := map[string]string{
		"UNDERSTUDY_LISTEN":          "127.0.0.1:2222",
		"UNDERSTUDY_ID":              "from-env",
		"UNDERSTUDY_READ_TOKEN_FILE": tokenFile,
		"UNDERSTUDY_MAX_EXPORTS":     "2",
	}
	cfg, err := LoadConfig([]string{"--config", file, "--id", "from-flag"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct{ name, got, want string }{
		{"id (flag over env and file)", cfg.ID, "from-flag"},
		{"listen (env over file)", cfg.Listen, "127.0.0.1:2222"},
		{"domain (file)", cfg.Domain, "zone=f/host=f"},
		{"admin token (file)", cfg.AdminToken, "file-admin"},
		{"read token (token file)", cfg.ReadToken, "read-from-file"},
		{"data dir (default)", cfg.DataDir, "understudy-data"},
		{"log format (default)", cfg.LogFormat, "text"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %q, want %q", c.name, c.got, c.want)
		}
	}
	if cfg.MaxRange != 2*time.Hour || !cfg.AnonymousRead || cfg.SegmentDuration != time.Minute || cfg.MaxExports != 2 {
		t.Errorf("max-range %v anonymous-read %v segment-duration %v max-exports %d", cfg.MaxRange, cfg.AnonymousRead, cfg.SegmentDuration, cfg.MaxExports)
	}
	if cfg, err := LoadConfig([]string{"--admin-token", "admin-token-1"}, func(string) string { return "" }, io.Discard); err != nil || cfg.MaxExports != 4 {
		t.Errorf("default max-exports %d (%v), want 4", cfg.MaxExports, err)
	}
}

// TestConfigDurationsInDays: every duration setting reads days as ctl
// does ("7d", "1d12h"), from the file, the environment and flags alike.
func TestConfigDurationsInDays(t *testing.T) {
	file := filepath.Join(t.TempDir(), "understudy.yaml")
	os.WriteFile(file, []byte("# retention runs daily\nadmin-token: admin-token-1\n\nmax-range: 7d\nretention-interval: \"1d\"\nsegment-duration: 90s\n"), 0o600)
	cfg, err := LoadConfig([]string{"--config", file, "--shutdown-timeout", "0d30s"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxRange != 7*24*time.Hour || cfg.RetentionInterval != 24*time.Hour || cfg.SegmentDuration != 90*time.Second || cfg.ShutdownTimeout != 30*time.Second {
		t.Errorf("max-range %v, retention-interval %v, segment-duration %v, shutdown-timeout %v", cfg.MaxRange, cfg.RetentionInterval, cfg.SegmentDuration, cfg.ShutdownTimeout)
	}
	env := map[string]string{"UNDERSTUDY_MAX_RANGE": "1d12h", "UNDERSTUDY_ADMIN_TOKEN": "admin-token-1"}
	if cfg, err := LoadConfig(nil, func(k string) string { return env[k] }, io.Discard); err != nil || cfg.MaxRange != 36*time.Hour {
		t.Errorf("UNDERSTUDY_MAX_RANGE=1d12h: %v, %v", cfg.MaxRange, err)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("admin-token: x\nlisten_addr: 1\n"), 0o600)
	badDur := filepath.Join(dir, "dur.yaml")
	os.WriteFile(badDur, []byte("admin-token: admin-token-1\n\nmax-range: 7days\n"), 0o600)
	list := filepath.Join(dir, "list.yaml")
	os.WriteFile(list, []byte("- admin-token: admin-token-1\n"), 0o600)
	twoDocs := filepath.Join(dir, "two.yaml")
	os.WriteFile(twoDocs, []byte("admin-token: admin-token-1\n---\nlisten_addr: 1\n"), 0o600)
	multiLine := filepath.Join(dir, "multi.token")
	os.WriteFile(multiLine, []byte("first-line-token\nsecond-line\n"), 0o600)
	noenv := func(string) string { return "" }
	tok := "admin-token-1"
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--config", bad}, `line 2: unknown setting "listen_addr"`},
		{[]string{"--config", badDur}, "line 3: max-range: bad duration"},
		{[]string{"--config", list}, "line 1: not a mapping of settings"},
		// Not a regular file: /dev/zero would be read forever.
		{[]string{"--config", "/dev/zero", "--admin-token", tok}, "not a regular file"},
		{[]string{"--config", dir, "--admin-token", tok}, "not a regular file"},
		{[]string{"--config", twoDocs}, "more than one YAML document"},
		// Out-of-range values are refused, not replaced by the defaults.
		{[]string{"--admin-token", tok, "--event-buffer", "99999999999"}, "event-buffer"},
		{[]string{"--admin-token", tok, "--event-buffer", "-1"}, "event-buffer"},
		{[]string{"--admin-token", tok, "--retention-interval", "1ns"}, "retention-interval"},
		{[]string{"--admin-token", tok, "--segment-duration", "1ns"}, "segment-duration"},
		{[]string{"--admin-token", tok, "--max-range", "-1h"}, "max-range"},
		{[]string{"--admin-token", tok, "--shutdown-timeout", "-1s"}, "shutdown-timeout"},
		{[]string{"--admin-token", tok, "--max-exports", "-1"}, "max-exports"},
		{[]string{"--admin-token", tok, "--queue-memory-mib", "8"}, "queue-memory-mib"},
		{[]string{"--admin-token", tok, "--queue-memory-mib", "99999999"}, "queue-memory-mib"},
		{[]string{"--admin-token", tok, "--max-exports", "100000"}, "max-exports"},
		{[]string{"--admin-token", tok, "--cpu-threshold", "NaN"}, "cpu-threshold"},
		{[]string{"--admin-token", tok, "--cpu-threshold", "-5"}, "cpu-threshold"},
		{[]string{"--admin-token", tok, "--advertise-address", "not an address!"}, "advertise-address"},
		{[]string{"--admin-token", tok, "--advertise-address", "host:99999"}, "advertise-address"},
		// Tokens no client could send, or trivially short.
		{[]string{"--admin-token", " "}, "admin-token"},
		{[]string{"--admin-token", "short"}, "admin-token"},
		{[]string{"--admin-token-file", multiLine}, "admin-token"},
		{[]string{"--admin-token", tok, "--read-token", "read token"}, "read-token"},
		{[]string{"--admin-token", tok, "--tls-cert", filepath.Join(dir, "missing.pem"), "--tls-key", filepath.Join(dir, "missing.key")}, "tls-cert"},
		{[]string{}, "admin-token"},
		{[]string{"--admin-token", "a", "--domain", "zone"}, "domain"},
		{[]string{"--admin-token", "a", "--log-format", "xml"}, "log-format"},
		{[]string{"--admin-token", "a", "--max-range", "soon"}, "max-range"},
		{[]string{"--admin-token", "a", "--id", "a/b"}, "id"},
		{[]string{"--admin-token", "a", "--tls-cert", "c.pem"}, "tls-key"},
		{[]string{"--admin-token", "a", "--read-token", "a"}, "read-token"},
	} {
		_, err := LoadConfig(c.args, noenv, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one naming %s", c.args, err, c.want)
		}
	}
}

// TestConfigErrorsKeepTokensSecret: a refused token is never quoted.
func TestConfigErrorsKeepTokensSecret(t *testing.T) {
	for _, tok := range []string{"secret token", "secret\ttoken", "sec"} {
		_, err := LoadConfig([]string{"--admin-token", tok}, func(string) string { return "" }, io.Discard)
		if err == nil || strings.Contains(err.Error(), tok) {
			t.Errorf("token %q: %v", tok, err)
		}
	}
}

// TestServeHelpTypes: serve -h names each flag's real type or unit, never
// the "string" every flag is stored as.
func TestServeHelpTypes(t *testing.T) {
	var out bytes.Buffer
	if _, err := LoadConfig([]string{"-h"}, func(string) string { return "" }, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("LoadConfig -h: %v", err)
	}
	help := out.String()
	for _, want := range []string{"-max-exports int\n", "-queue-memory-mib MiB\n", "-cpu-threshold percent\n",
		"-segment-duration duration\n", "-backfill-rate-mib MiB/s\n", "-listen host:port\n", "-anonymous-read\n"} {
		if !strings.Contains(help, want) {
			t.Errorf("serve -h lacks %q", want)
		}
	}
	if strings.Contains(help, " string\n") {
		t.Errorf("serve -h still says string:\n%s", help)
	}
	if n := strings.Count(help, "\n  -"); n != len(settings)+1 {
		t.Errorf("serve -h lists %d flags, want %d", n, len(settings)+1)
	}
}
