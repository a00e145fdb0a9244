package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"connectrpc.com/connect"

	"github.com/understudy-nvr/understudy/chaos/camsim"
	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
	"github.com/understudy-nvr/understudy/proto/understudy/v1/understudyv1connect"
)

func init() {
	register("dev", "run a local cluster: 3 nodes in 3 failure domains recording 8 simulated cameras", runDev)
}

// devNode is one `understudy serve` child of `understudy dev`.
type devNode struct {
	id, api, gossip, dir, log string
	args                      []string

	mu  sync.Mutex
	cmd *exec.Cmd
}

func runDev(args []string) int {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	dir := fs.String("dir", "", "data directory of the cluster (default: a new temporary one, removed on exit)")
	nodes := fs.Int("nodes", 3, "number of nodes, each in its own rack")
	cameras := fs.Int("cameras", 8, "number of simulated cameras, one stream each (R=2)")
	apiPort := fs.Int("api-port", 17481, "API port of the first node; the others take the next ones")
	gossipPort := fs.Int("gossip-port", 17946, "gossip port of the first node; the others take the next ones")
	rtspPort := fs.Int("rtsp-port", 18554, "RTSP port of the simulated cameras")
	bitrate := fs.String("bitrate", "1M", "video bitrate of each camera: 1M, 500k")
	restart := fs.Duration("restart-after", 15*time.Second, "restart a node that died after this long, as a service manager would (0: never)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: understudy dev [flags]

Runs a whole Understudy cluster on this machine: simulated cameras, and
the nodes as child processes of this one (understudy serve), each in its
own failure domain, every stream recorded by 2 of them. It prints the API
addresses and the admin token, and runs until Ctrl-C. Kill a node (its pid
is printed) and watch its streams go on without a hole; it is restarted
after --restart-after.

flags:`)
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if *nodes < 1 || *nodes > 32 || *cameras < 0 || *cameras > 1000 {
		fmt.Fprintln(os.Stderr, "dev: --nodes must be 1..32 and --cameras 0..1000")
		return 2
	}
	bps, err := camsim.ParseBitrate(*bitrate)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dev: --bitrate:", err)
		return 2
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "dev:", err)
		return 1
	}
	root := *dir
	if root == "" {
		if root, err = os.MkdirTemp("", "understudy-dev-"); err != nil {
			fmt.Fprintln(os.Stderr, "dev:", err)
			return 1
		}
		defer os.RemoveAll(root)
	} else if err := os.MkdirAll(root, 0o700); err != nil {
		fmt.Fprintln(os.Stderr, "dev:", err)
		return 1
	}

	// The token and the gossip key are kept in the directory, so that a
	// second run on it finds its cluster as it was.
	token, err := devSecret(filepath.Join(root, "admin-token"), func() string {
		b := make([]byte, 16)
		rand.Read(b)
		return "dev-" + hex.EncodeToString(b)
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "dev:", err)
		return 1
	}
	keyFile := filepath.Join(root, "gossip.key")
	if _, err := devSecret(keyFile, func() string {
		b := make([]byte, 32)
		rand.Read(b)
		return base64.StdEncoding.EncodeToString(b)
	}); err != nil {
		fmt.Fprintln(os.Stderr, "dev:", err)
		return 1
	}

	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var cams *camsim.Server
	if *cameras > 0 {
		cams, err = camsim.New(camsim.Config{Listen: "127.0.0.1:" + strconv.Itoa(*rtspPort), Cameras: *cameras,
			Width: 640, Height: 360, Bitrate: bps, GOP: 25, Logger: slog.New(slog.DiscardHandler)})
		if err == nil {
			err = cams.Start()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "dev: cameras:", err)
			return 1
		}
		defer cams.Close()
	}

	ns := make([]*devNode, *nodes)
	for i := range ns {
		id := fmt.Sprintf("n%d", i+1)
		ns[i] = &devNode{id: id, api: "127.0.0.1:" + strconv.Itoa(*apiPort+i), gossip: "127.0.0.1:" + strconv.Itoa(*gossipPort+i),
			dir: filepath.Join(root, id), log: filepath.Join(root, id+".log")}
	}
	for i, n := range ns {
		var join []string
		for j, o := range ns {
			if j != i {
				join = append(join, o.gossip)
			}
		}
		n.args = []string{"serve", "--id", n.id, "--domain", fmt.Sprintf("zone=dev/rack=r%d/host=%s", i+1, n.id),
			"--data-dir", n.dir, "--listen", n.api, "--gossip-listen", n.gossip, "--gossip-key-file", keyFile,
			"--segment-duration", "10s"}
		if len(join) > 0 {
			n.args = append(n.args, "--join", strings.Join(join, ","))
		}
	}
	for _, n := range ns {
		if err := n.start(self, token); err != nil {
			fmt.Fprintf(os.Stderr, "dev: %s: %v\n", n.id, err)
			stopDev(ns)
			return 1
		}
	}
	var wg sync.WaitGroup
	for _, n := range ns {
		wg.Add(1)
		go func() { defer wg.Done(); n.supervise(ctx, self, token, *restart) }()
	}
	defer func() {
		cancel()
		stopDev(ns)
		wg.Wait()
	}()

	base := "http://" + ns[0].api
	if err := devWaitReady(ctx, ns, 20*time.Second); err != nil {
		fmt.Fprintln(os.Stderr, "dev:", err, "(logs in "+root+")")
		return 1
	}
	if cams != nil {
		if err := devAddStreams(ctx, base, token, cams); err != nil {
			fmt.Fprintln(os.Stderr, "dev: adding the cameras:", err)
			return 1
		}
	}

	fmt.Printf("understudy dev: %d nodes, %d cameras, data in %s\n\n", len(ns), *cameras, root)
	for _, n := range ns {
		fmt.Printf("  %-4s api http://%-16s pid %-7d log %s\n", n.id, n.api, n.pid(), n.log)
	}
	if cams != nil {
		fmt.Printf("  cameras rtsp://127.0.0.1:%d/cam/0 .. /cam/%d\n", *rtspPort, *cameras-1)
	}
	fmt.Printf("\n  admin token in %s\n\n", filepath.Join(root, "admin-token"))
	fmt.Printf("  export UNDERSTUDY_SERVER=%s UNDERSTUDY_TOKEN=$(cat %s)\n", base, filepath.Join(root, "admin-token"))
	fmt.Println("  understudy ctl nodes; understudy ctl placement; understudy ctl timeline --stream cam0 --from now-5m --to now")
	fmt.Printf("  kill -9 one node's pid and watch: its streams go on, and it is back after %s.\n\nCtrl-C stops everything.\n", *restart)
	if err := os.WriteFile(filepath.Join(root, "ready"), []byte(base+"\n"), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, "dev:", err)
	}

	select {
	case s := <-sig:
		fmt.Printf("\n%s: stopping the nodes (SIGTERM, they close their segments)...\n", s)
	case <-ctx.Done():
	}
	os.Remove(filepath.Join(root, "ready"))
	return 0
}

// devSecret returns the content of path, creating it with make() first.
func devSecret(path string, make func() string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	v := make()
	return v, os.WriteFile(path, []byte(v+"\n"), 0o600)
}

func (n *devNode) start(self, token string) error {
	lf, err := os.OpenFile(n.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(self, n.args...)
	cmd.Env = append(os.Environ(), "UNDERSTUDY_ADMIN_TOKEN="+token)
	cmd.Stdout, cmd.Stderr = lf, lf
	// Its own process group: Ctrl-C in the terminal reaches dev only, which
	// stops the nodes in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return err
	}
	lf.Close()
	os.WriteFile(filepath.Join(filepath.Dir(n.log), n.id+".pid"), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o600)
	n.mu.Lock()
	n.cmd = cmd
	n.mu.Unlock()
	return nil
}

func (n *devNode) pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

// supervise waits for the node to exit and restarts it after delay.
func (n *devNode) supervise(ctx context.Context, self, token string, delay time.Duration) {
	for {
		n.mu.Lock()
		cmd := n.cmd
		n.mu.Unlock()
		err := cmd.Wait()
		if ctx.Err() != nil || delay <= 0 {
			return
		}
		fmt.Printf("dev: %s exited (%v); restarting it in %s\n", n.id, err, delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		if err := n.start(self, token); err != nil {
			fmt.Printf("dev: %s: restart failed: %v\n", n.id, err)
			return
		}
		fmt.Printf("dev: %s restarted, pid %d\n", n.id, n.pid())
	}
}

// stopDev sends SIGTERM to every node and waits up to 15 s for them.
func stopDev(ns []*devNode) {
	var wg sync.WaitGroup
	for _, n := range ns {
		n.mu.Lock()
		cmd := n.cmd
		n.mu.Unlock()
		if cmd == nil || cmd.Process == nil {
			continue
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := time.Now().Add(15 * time.Second)
			for time.Now().Before(deadline) {
				if cmd.Process.Signal(syscall.Signal(0)) != nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
			_ = cmd.Process.Kill()
		}()
	}
	wg.Wait()
}

func devWaitReady(ctx context.Context, ns []*devNode, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, n := range ns {
		for {
			resp, err := http.Get("http://" + n.api + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("%s not ready after %s: %v", n.id, timeout, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// devAddStreams adds one stream per camera that the catalog lacks.
func devAddStreams(ctx context.Context, base, token string, cams *camsim.Server) error {
	hc := &http.Client{Transport: bearerTransport{token: token}, Timeout: 10 * time.Second}
	sc := understudyv1connect.NewStreamServiceClient(hc, base)
	for i := range cams.NumCameras() {
		id := fmt.Sprintf("cam%d", i)
		_, err := sc.CreateStream(ctx, connect.NewRequest(&understudyv1.CreateStreamRequest{
			Stream: &understudyv1.Stream{Id: id, Url: cams.URL(i), Enabled: true, Replicas: 2, Labels: map[string]string{"site": "dev"}}}))
		if err != nil && connect.CodeOf(err) != connect.CodeAlreadyExists {
			return fmt.Errorf("%s: %w", id, err)
		}
	}
	return nil
}

type bearerTransport struct{ token string }

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}
