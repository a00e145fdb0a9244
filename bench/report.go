package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// Machine is what the figures were measured on.
type Machine struct {
	Cores       int    `json:"cores"`
	MemoryBytes int64  `json:"memory_bytes"`
	Kernel      string `json:"kernel"`
	CPU         string `json:"cpu"`
	GoVersion   string `json:"go_version"`
}

// Report is a benchmark run: bench-report.json.
type Report struct {
	Machine Machine         `json:"machine"`
	Commit  string          `json:"commit"`
	Date    time.Time       `json:"date"`
	Full    bool            `json:"full"`
	Ingest  []*IngestResult `json:"ingest"`
	// Repeat: the 4 Mbit/s capacity of each repetition (the spread says
	// how far one figure can be trusted).
	Repeat []int `json:"repeat_capacity_4mbit,omitempty"`
	// Peer is the side-by-side run with MediaMTX.
	Peer *PeerResult `json:"peer,omitempty"`
	// Failover: kill -9 of a home node in a 3-node cluster until its
	// death is known and every stream has R recording copies again.
	Failover *FailoverResult `json:"failover,omitempty"`
	// Index: the segment index's write rate, a 24 h GetTimeline, and the
	// start-up of a node holding many segments.
	Index *IndexResult `json:"index,omitempty"`
	// Control: placement at scale, catalog convergence and failure
	// detection of in-process gossip nodes.
	Control *ControlResult `json:"control,omitempty"`
}

func numCPU() int { return runtime.NumCPU() }

// ThisMachine describes the machine the process runs on.
func ThisMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version()}
	m.MemoryBytes = procField("/proc/meminfo", "MemTotal:") * 1024
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// Commit is the git commit of dir, "" when it is not a checkout.
func Commit(dir string) string {
	cmd := exec.Command("git", "-C", dir, "rev-parse", "--short", "HEAD")
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// WriteJSON writes r as indented JSON.
func WriteJSON(w io.Writer, r *Report) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// WriteTable prints the figures an operator sizes with.
func WriteTable(w io.Writer, r *Report) error {
	fmt.Fprintf(w, "machine: %d cores, %.1f GiB, %s, Linux %s; commit %s; %s\n\n", r.Machine.Cores,
		float64(r.Machine.MemoryBytes)/(1<<30), r.Machine.CPU, r.Machine.Kernel, r.Commit, r.Date.UTC().Format(time.RFC3339))
	if len(r.Ingest) > 0 {
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "BITRATE\tCAPACITY (streams)\tCPU/STREAM (% of a core)\tRSS/STREAM\tIDLE RSS\tDISK")
		for _, in := range r.Ingest {
			fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.2f MB\t%.1f MB\t%.1f MB/s\n", rateString(in.Bitrate), in.Capacity, in.CPUPerStream,
				in.RSSPerStreamBytes/1e6, float64(in.IdleRSSBytes)/1e6, in.DiskBytesPerSec/1e6)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(r.Repeat) > 0 {
		fmt.Fprintf(w, "\n4 Mbit/s capacity over %d runs: %v\n", len(r.Repeat), r.Repeat)
	}
	if p := r.Peer; p != nil {
		fmt.Fprintf(w, "\nside by side at %s with %s", rateString(p.Bitrate), p.Peer)
		if p.Skipped != "" {
			fmt.Fprintf(w, ": skipped, %s", p.Skipped)
		}
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "STREAMS	UNDERSTUDY CPU/STREAM	PEER CPU/STREAM	RATIO	UNDERSTUDY RSS	PEER RSS	RATIO")
		for _, row := range p.Rows {
			// Without the peer (skipped) its figures and the ratios are "-",
			// not a measured 0.
			peerCPU, cpuRatio, peerRSS, rssRatio := "-", "-", "-", "-"
			if row.MediaMTX.RSSBytes > 0 {
				peerCPU, peerRSS = fmt.Sprintf("%.2f %%", row.MediaMTX.CPUPerStream), fmt.Sprintf("%.1f MB", float64(row.MediaMTX.RSSBytes)/1e6)
				cpuRatio, rssRatio = fmt.Sprintf("%.2f", row.CPURatio), fmt.Sprintf("%.2f", row.RSSRatio)
			}
			fmt.Fprintf(tw, "%d	%.2f %%	%s	%s	%.1f MB	%s	%s\n", row.Understudy.Streams,
				row.Understudy.CPUPerStream, peerCPU, cpuRatio,
				float64(row.Understudy.RSSBytes)/1e6, peerRSS, rssRatio)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if f := r.Failover; f != nil {
		fmt.Fprintf(w, "\nfailover: kill -9 of the home of the most streams, %d nodes, %d cameras at %s, R=%d, %d trials (polled every %.0f ms)\n",
			f.Nodes, f.Cameras, rateString(f.Bitrate), f.Replicas, len(f.Trials), f.PollMS)
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "FROM THE KILL TO\tMEDIAN\tP99\tMAX")
		fmt.Fprintf(tw, "declared down by every survivor\t%s\t%s\t%s\n", secs(f.Down.Median), secs(f.Down.P99), secs(f.Down.Max))
		fmt.Fprintf(tw, "%d recording copies of every stream\t%s\t%s\t%s\n", f.Replicas, secs(f.Recording.Median), secs(f.Recording.P99), secs(f.Recording.Max))
		if err := tw.Flush(); err != nil {
			return err
		}
		if f.VideoLost != "" {
			fmt.Fprintf(w, "video lost: %s\n", f.VideoLost)
		}
	}
	if x := r.Index; x != nil {
		fmt.Fprintln(w, "\nsegment index")
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		if x.Write != nil {
			fmt.Fprintf(tw, "segments written and indexed (one stream, fsync on)\t%.0f /s\t(%d in %.1f s)\n", x.Write.SegmentsPerSec, x.Write.Segments, x.Write.Seconds)
		}
		if t := x.Timeline; t != nil {
			fmt.Fprintf(tw, "GetTimeline over 24 h (%d segments)\tmedian %.1f ms, p99 %.1f ms\t(%d calls)\n", t.Segments, t.Latency.Median, t.Latency.P99, t.Calls)
		}
		if st := x.Startup; st != nil {
			fmt.Fprintf(tw, "start-up with %s segments (%d streams)\tstore open %s, node ready %s\t(page cache: %s)\n",
				count(st.Segments), st.Streams, secs(st.StoreOpenMS), secs(st.NodeReadyMS), st.Cache)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if c := r.Control; c != nil {
		fmt.Fprintln(w, "\ncontrol plane")
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		if p := c.Placement; p != nil {
			fmt.Fprintf(tw, "placement of %s streams (R=%d) on %s nodes\t%.0f ms wall, %.0f ms CPU\t(median of %d)\n",
				count(p.Streams), p.Replicas, count(p.Nodes), p.FullWallMS, p.FullCPUMS, p.Runs)
			fmt.Fprintf(tw, "re-placement after one node failed\t%.1f ms wall, %.1f ms CPU\t(median of %d)\n", p.FailWallMS, p.FailCPUMS, p.Runs)
		}
		if g := c.Gossip; g != nil {
			fmt.Fprintf(tw, "catalog write → visible on all %d gossip nodes\tmedian %.0f ms, p99 %.0f ms\t(%d writes)\n", g.Nodes, g.Convergence.Median, g.Convergence.P99, g.Convergence.N)
			fmt.Fprintf(tw, "kill → dead on all %d survivors\t%s (median survivor %s)\t\n", g.Nodes-1, secs(g.DetectionAllMS), secs(g.Detection.Median))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// secs formats milliseconds as seconds.
func secs(ms float64) string { return fmt.Sprintf("%.2f s", ms/1000) }

// count formats n with thousands separators.
func count(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
