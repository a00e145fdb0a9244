package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The tests of this file are the findings of an operator's test, run as
// the operator ran them: the real binary, real files and real signals.

// run runs the binary and returns its exit code, stdout and stderr; a
// command still running after 20 s is killed (exit code -1).
func run(t *testing.T, bin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%s %v: %v", bin, args, err)
	}
	return code, out.String(), errb.String()
}

// noPartial fails if an export left a temporary file in dir.
func noPartial(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".partial") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

// TestExportOutputTarget: export -o never replaces what it was not asked
// to replace: an existing file only with --force, a FIFO, a device or a
// symbolic link never; -o - writes a playable MP4 to stdout.
func TestExportOutputTarget(t *testing.T) {
	bin := understudyBinary(t)
	data := t.TempDir()
	w0 := record(t, data)
	dir := t.TempDir()
	export := func(out string, extra ...string) (int, string, string) {
		args := append([]string{"export", "--data-dir", data, "--stream", "cam1", "--from", w0.Add(time.Second).Format(time.RFC3339),
			"--to", w0.Add(4 * time.Second).Format(time.RFC3339), "-o", out}, extra...)
		return run(t, bin, args...)
	}

	existing := filepath.Join(dir, "existing.mp4")
	os.WriteFile(existing, []byte("an operator's clip"), 0o644)
	if code, _, errs := export(existing); code != 1 || !strings.Contains(errs, "exists") || !strings.Contains(errs, "--force") {
		t.Errorf("existing file: exit %d, %q", code, errs)
	}
	if b, _ := os.ReadFile(existing); string(b) != "an operator's clip" {
		t.Errorf("existing file replaced without --force")
	}
	if code, _, errs := export(existing, "--force"); code != 0 {
		t.Errorf("--force: exit %d, %q", code, errs)
	}
	if st, err := os.Stat(existing); err != nil || st.Size() < 3*16000 {
		t.Errorf("--force did not write the clip: %v", err)
	}

	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := export(fifo, "--force"); code != 1 || !strings.Contains(errs, "named pipe") {
		t.Errorf("FIFO: exit %d, %q", code, errs)
	}
	if st, err := os.Lstat(fifo); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("FIFO replaced: %v %v", st.Mode(), err)
	}

	link := filepath.Join(dir, "link.mp4")
	os.Symlink(existing, link)
	if code, _, errs := export(link, "--force"); code != 1 || !strings.Contains(errs, "symbolic link") {
		t.Errorf("symlink: exit %d, %q", code, errs)
	}
	if target, err := os.Readlink(link); err != nil || target != existing {
		t.Errorf("symlink replaced: %q %v", target, err)
	}
	if code, _, errs := export(dir); code != 1 || !strings.Contains(errs, "directory") {
		t.Errorf("directory: exit %d, %q", code, errs)
	}
	noPartial(t, dir)

	code, out, errs := export("-")
	if code != 0 || !strings.Contains(errs, "wrote -") {
		t.Fatalf("-o -: exit %d, %q", code, errs)
	}
	if len(out) < 8 || out[4:8] != "ftyp" {
		t.Fatalf("-o -: stdout is not an MP4 (%d bytes)", len(out))
	}
	clip := filepath.Join(t.TempDir(), "stdout.mp4")
	os.WriteFile(clip, []byte(out), 0o644)
	if d := ffprobeDuration(t, clip); d < 2900*time.Millisecond || d > 3100*time.Millisecond {
		t.Errorf("-o -: ffprobe reads %s, want 3 s", d)
	}
}

// TestCtlExportOutputTarget is TestExportOutputTarget for ctl export.
func TestCtlExportOutputTarget(t *testing.T) {
	_, srv := ctlServe(t)
	dir := t.TempDir()
	export := func(out string, extra ...string) (int, string, string) {
		args := append([]string{"export", "--stream", "door", "--from", "now-1m", "--to", "now", "-o", out}, extra...)
		return ctlCall(t, srv, "good", args...)
	}
	want := bytes.Join(ctlClipChunks, nil)
	existing := filepath.Join(dir, "existing.mp4")
	os.WriteFile(existing, []byte("keep"), 0o644)
	if code, _, errs := export(existing); code != 1 || !strings.Contains(errs, "exists") {
		t.Errorf("existing file: exit %d, %q", code, errs)
	}
	if b, _ := os.ReadFile(existing); string(b) != "keep" {
		t.Errorf("existing file replaced without --force")
	}
	if code, _, errs := export(existing, "--force"); code != 0 {
		t.Errorf("--force: exit %d, %q", code, errs)
	}
	if b, _ := os.ReadFile(existing); !bytes.Equal(b, want) {
		t.Errorf("--force wrote %d bytes, want the clip", len(b))
	}
	link := filepath.Join(dir, "link.mp4")
	os.Symlink(existing, link)
	if code, _, errs := export(link, "--force"); code != 1 || !strings.Contains(errs, "symbolic link") {
		t.Errorf("symlink: exit %d, %q", code, errs)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("symlink replaced")
	}
	noPartial(t, dir)
	code, out, errs := export("-")
	if code != 0 || out != string(want) || !strings.Contains(errs, "wrote 3003 bytes") {
		t.Errorf("-o -: exit %d, %d bytes on stdout, stderr %q", code, len(out), errs)
	}
	if code, _, _ := export("-", "--json"); code != 2 {
		t.Errorf("-o - --json: exit %d, want 2", code)
	}
}

// TestRecordExitStatus: a recording that recorded nothing fails (exit 1,
// saying why), and nonsense durations and arguments are usage errors.
func TestRecordExitStatus(t *testing.T) {
	bin := understudyBinary(t)
	closed := freePort(t) // nothing listens there any more
	code, _, errs := run(t, bin, "record", "--url", "rtsp://"+closed+"/cam/0", "--stream", "cam0",
		"--data-dir", t.TempDir(), "--duration", "1500ms", "--quiet")
	last := errs[strings.LastIndexByte(strings.TrimSuffix(errs, "\n"), '\n')+1:]
	if code != 1 || !strings.Contains(last, "no frame recorded") || !strings.Contains(last, "connection refused") {
		t.Errorf("record from a closed port: exit %d, last line %q", code, last)
	}
	if code, _, errs := run(t, bin, "record", "--url", "rtsp://"+closed+"/cam/0", "--stream", "cam0",
		"--data-dir", t.TempDir(), "--duration", "-5s"); code != 2 || !strings.Contains(errs, "negative") {
		t.Errorf("--duration -5s: exit %d, %q", code, errs)
	}
}

// TestLocalTimeRange: times the index cannot represent are refused, naming
// the flag; the relative times of ctl work.
func TestLocalTimeRange(t *testing.T) {
	bin := understudyBinary(t)
	data := t.TempDir()
	w0 := record(t, data)
	for _, c := range []struct{ cmd, flag, value string }{
		{"segments", "--to", "9999-12-31T00:00:00Z"},
		{"segments", "--from", "1900-01-01T00:00:00Z"},
		{"export", "--to", "9999-12-31T00:00:00Z"},
	} {
		args := []string{c.cmd, "--data-dir", data, "--stream", "cam1", c.flag, c.value}
		if c.cmd == "export" {
			args = append(args, "--from", w0.Format(time.RFC3339), "-o", filepath.Join(t.TempDir(), "x.mp4"))
		}
		code, _, errs := run(t, bin, args...)
		if code != 2 || !strings.Contains(errs, "flag "+c.flag[1:]) || !strings.Contains(errs, "out of range") {
			t.Errorf("%s %s %s: exit %d, %q", c.cmd, c.flag, c.value, code, errs)
		}
	}
	// The recording is of 2026-03-01: it lies before now-1h.
	if code, out, errs := run(t, bin, "segments", "--data-dir", data, "--stream", "cam1", "--to", "now-1h"); code != 0 || !strings.Contains(out, "4 segments") {
		t.Errorf("segments --to now-1h: exit %d, %q %q", code, out, errs)
	}
}

// TestHelpAndStrayArguments: -h is not an error for any command; a
// positional argument to a command that takes none is.
func TestHelpAndStrayArguments(t *testing.T) {
	bin := understudyBinary(t)
	for _, c := range []string{"record", "segments", "export", "fsck", "camsim", "serve", "ctl", "placement"} {
		for _, h := range []string{"-h", "--help"} {
			if code, _, errs := run(t, bin, c, h); code != 0 {
				t.Errorf("%s %s: exit %d: %s", c, h, code, errs)
			}
		}
	}
	dir := t.TempDir()
	for _, args := range [][]string{
		{"record", "--url", "rtsp://127.0.0.1:1/", "--stream", "a", "--data-dir", dir, "--duration", "1s", "stray"},
		{"segments", "--data-dir", dir, "--stream", "a", "stray"},
		{"export", "--data-dir", dir, "--stream", "a", "--from", "now-1m", "--to", "now", "-o", "-", "stray"},
		{"fsck", "--data-dir", dir, "stray"},
	} {
		if code, _, errs := run(t, bin, args...); code != 2 || !strings.Contains(errs, "stray") {
			t.Errorf("%v: exit %d, %q", args, code, errs)
		}
	}
}

// TestServeSecondSignal: a second SIGTERM during a graceful shutdown that
// waits for a request stops the node at once, with status 1.
func TestServeSecondSignal(t *testing.T) {
	bin := understudyBinary(t)
	addr := freePort(t)
	logPath := filepath.Join(t.TempDir(), "serve.log")
	lf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	cmd := exec.Command(bin, "serve", "--id", "n1", "--domain", "zone=a/rack=r1/host=h1", "--data-dir", t.TempDir(),
		"--listen", addr, "--shutdown-timeout", "30s")
	cmd.Env = append(os.Environ(), "UNDERSTUDY_ADMIN_TOKEN="+e2eAdmin)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	waited := false
	defer func() {
		if !waited {
			cmd.Process.Kill()
			<-exited
		}
	}()
	logText := func() string { b, _ := os.ReadFile(logPath); return string(b) }
	waitLog := func(s string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logText(), s); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the log:\n%s", s, logText())
			}
		}
	}
	waitLog("node serving")

	// A CPU profile of 25 s is a request the graceful shutdown waits for.
	// It is known to be running when a second profile is refused.
	client := h2cClient(e2eAdmin)
	profile := func(secs string) (int, error) {
		resp, err := client.Get("http://" + addr + "/debug/pprof/profile?seconds=" + secs)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	long := make(chan struct{})
	startLong := func() {
		long = make(chan struct{})
		go func(done chan struct{}) { profile("25"); close(done) }(long)
	}
	startLong()
	for deadline := time.Now().Add(10 * time.Second); ; {
		code, err := profile("1")
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-long: // refused, the probe came first
			startLong()
			continue
		default:
		}
		if code == http.StatusInternalServerError {
			break // the long profile runs
		}
		if time.Now().After(deadline) {
			t.Fatal("the long profile request did not start")
		}
	}

	cmd.Process.Signal(syscall.SIGTERM)
	waitLog("signal again to stop at once")
	select {
	case err := <-exited:
		waited = true
		t.Fatalf("serve exited before the second signal (%v): the test's request did not hold the shutdown\n%s", err, logText())
	case <-time.After(200 * time.Millisecond):
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		waited = true
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Errorf("exit after the second signal: %v, want status 1", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("serve still running 5 s after the second signal (shutdown timeout 30 s)\n%s", logText())
	}
	if !strings.Contains(logText(), "stopping at once") {
		t.Errorf("the second signal was not logged:\n%s", logText())
	}
}
