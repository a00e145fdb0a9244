package check

import (
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/understudy-nvr/understudy/chaos/camsim"
)

var update = flag.Bool("update", false, "record testdata/record.mp4 and its send log afresh with the real recorder")

// window is testdata/window.json: the range exported.
type window struct {
	From, To time.Time
}

// TestUpdateTestdata records a simulated camera for 12 s with the real
// recorder (`understudy record`, the engine's session and the segment
// store) and exports 8 s of it with `understudy export` (the exporter
// behind GET /v1/export): the MP4 and the camera's send log the other
// tests check. It runs with -update only.
func TestUpdateTestdata(t *testing.T) {
	if !*update {
		t.Skip("-update not set")
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "understudy")
	if out, err := exec.Command("go", "build", "-tags", "pebblegozstd", "-o", bin, "../../cmd/understudy").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	logDir := filepath.Join(tmp, "sendlog")
	cams, err := camsim.New(camsim.Config{Listen: "127.0.0.1:0", Width: 320, Height: 240, FPS: 25, GOP: 25,
		Bitrate: 250_000, SendLogDir: logDir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := cams.Start(); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(tmp, "data")
	t0 := time.Now()
	if out, err := exec.Command(bin, "record", "--url", cams.URL(0), "--stream", "cam0", "--data-dir", data,
		"--duration", "12s", "--segment-duration", "4s", "--quiet").CombinedOutput(); err != nil {
		t.Fatalf("record: %v\n%s", err, out)
	}
	cams.Close()
	w := window{From: t0.Add(2 * time.Second).UTC(), To: t0.Add(10 * time.Second).UTC()}
	out := filepath.Join("testdata", "record.mp4")
	os.Remove(out)
	if b, err := exec.Command(bin, "export", "--data-dir", data, "--stream", "cam0", "--from", w.From.Format(time.RFC3339Nano),
		"--to", w.To.Format(time.RFC3339Nano), "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("export: %v\n%s", err, b)
	}
	sl, err := os.ReadFile(camsim.SendLogPath(logDir, 0))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("testdata", "record.sendlog"), sl, 0o644); err != nil {
		t.Fatal(err)
	}
	b, _ := json.MarshalIndent(w, "", "  ")
	if err := os.WriteFile(filepath.Join("testdata", "window.json"), append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	fmt.Println("testdata updated")
}
