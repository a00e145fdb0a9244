package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/understudy-nvr/understudy/chaos/camsim"
)

// TestTypeScriptClientExample compiles the TypeScript client of clients/ts
// with its example, starts a real `understudy serve` recording a simulated
// camera, and runs the compiled example with node, as a frontend developer
// would: it must list the stream and print a timeline in which node n1
// recorded it. With a wrong token it must fail with Connect's
// unauthenticated code. Skipped only when node is not installed.
func TestTypeScriptClientExample(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: compiles TypeScript and runs a real node")
	}
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the TypeScript client is not tested (apt-get install -y nodejs npm)")
	}
	tsDir, err := filepath.Abs(filepath.Join("..", "..", "clients", "ts"))
	if err != nil {
		t.Fatal(err)
	}
	example := compileTSClient(t, tsDir)

	tmp := t.TempDir()
	bin := understudyBinary(t)
	cams, err := camsim.New(camsim.Config{Listen: "127.0.0.1:0", Cameras: 1, Width: 320, Height: 240, Bitrate: 500_000, GOP: 12})
	if err != nil {
		t.Fatal(err)
	}
	if err := cams.Start(); err != nil {
		t.Fatal(err)
	}
	defer cams.Close()
	addr := freePort(t)
	logPath := filepath.Join(tmp, "server.log")
	srv := startServer(t, bin, filepath.Join(tmp, "data"), addr, logPath)
	defer func() {
		srv.kill()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("server log:\n%s", b)
		}
	}()
	base := "http://" + addr

	body := fmt.Sprintf(`{"stream":{"id":"ts-cam","url":%q,"enabled":true,"labels":{"site":"ts"}}}`, cams.URL(0))
	req, _ := http.NewRequest("POST", base+"/understudy.v1.StreamService/CreateStream", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+e2eAdmin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CreateStream: %d %s", resp.StatusCode, b)
	}

	run := func(token string) (string, string, error) {
		cmd := exec.Command(nodeBin, example)
		cmd.Env = append(os.Environ(), "UNDERSTUDY_SERVER="+base, "UNDERSTUDY_TOKEN="+token)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}

	// The read token is enough. The first runs may come before the first
	// durable segment part: retry until n1 shows on the timeline.
	listed := regexp.MustCompile(`(?m)^  ts-cam\t(STARTING|RECORDING)\tenabled=true\treplicas=\d+\trtsp://\S+\tsite=ts$`)
	recorded := regexp.MustCompile(`(?m)^  recorded \S+Z \.\. \S+Z\tn1\tLIVE$`)
	summary := regexp.MustCompile(`(?m)^coverage: [1-9]\d* intervals, gaps: \d+, \d+\.\d\d % recorded$`)
	deadline := time.Now().Add(30 * time.Second)
	var out string
	for {
		stdout, stderr, err := run(e2eRead)
		if err != nil {
			t.Fatalf("example: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
		}
		out = stdout
		if !strings.HasPrefix(out, "streams: 1\n") || !listed.MatchString(out) || !strings.Contains(out, "\ntimeline of ts-cam from ") {
			t.Fatalf("example does not list the stream and its timeline:\n%s", out)
		}
		if recorded.MatchString(out) && summary.MatchString(out) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no coverage by n1 on the example's timeline after 30 s:\n%s", out)
		}
		time.Sleep(time.Second)
	}
	t.Logf("example output:\n%s", out)

	stdout, stderr, err := run("not-a-token")
	if err == nil {
		t.Fatalf("example with a wrong token succeeded:\n%s", stdout)
	}
	if !strings.Contains(stderr, "list-and-timeline: Unauthenticated") {
		t.Fatalf("example with a wrong token: want Connect's unauthenticated code on stderr, got:\n%s", stderr)
	}
}

// compileTSClient installs the locked dependencies of clients/ts when they
// are missing and compiles the package into a fresh directory inside it (so
// node resolves its node_modules), returning the example's JavaScript.
func compileTSClient(t *testing.T, tsDir string) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(tsDir, "node_modules", ".package-lock.json")); err != nil {
		if _, err := exec.LookPath("npm"); err != nil {
			t.Fatal("node is installed but npm is not: cannot install clients/ts's dependencies (apt-get install -y npm, or make ts)")
		}
		cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
		cmd.Dir = tsDir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in clients/ts: %v\n%s", err, out)
		}
	}
	outDir, err := os.MkdirTemp(tsDir, ".test-dist-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(outDir) })
	cmd := exec.Command(filepath.Join(tsDir, "node_modules", ".bin", "tsc"), "-p", "tsconfig.json", "--outDir", outDir)
	cmd.Dir = tsDir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tsc in clients/ts: %v\n%s", err, out)
	}
	js := filepath.Join(outDir, "examples", "list-and-timeline.js")
	if _, err := os.Stat(js); err != nil {
		t.Fatalf("tsc wrote no example: %v", err)
	}
	return js
}
