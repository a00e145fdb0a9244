package engine

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metric names served on /metrics. Rates (frames or bytes per second) are
// rate() of the counters.
const (
	MetricStreamsAssigned  = "understudy_streams_assigned"
	MetricStreamsRecording = "understudy_streams_recording"
	MetricOpenGaps         = "understudy_open_gaps"
	MetricBytesWritten     = "understudy_bytes_written_total"
	MetricFramesWritten    = "understudy_frames_written_total"
	MetricFramesDropped    = "understudy_frames_dropped_total"
	MetricWriteErrors      = "understudy_write_errors_total"
	MetricReconnects       = "understudy_reconnects_total"
	MetricDiskUsed         = "understudy_disk_used_bytes"
	MetricDiskFree         = "understudy_disk_free_bytes"
	MetricCPUPercent       = "understudy_cpu_percent"
	MetricQueueBytes       = "understudy_queue_bytes"
	MetricVideoStalls      = "understudy_video_stalls_total"
	MetricQueueLimit       = "understudy_queue_limit_bytes"
	MetricEventsDropped    = "understudy_events_dropped_total"
	MetricPartsWritten     = "understudy_parts_written_total"
	MetricSegmentsDeleted  = "understudy_retention_segments_deleted_total"
	MetricBytesDeleted     = "understudy_retention_bytes_deleted_total"
	MetricBackfillBytes    = "understudy_backfill_bytes_total"
	MetricBackfillSegments = "understudy_backfill_segments_total"
	MetricBackfillPending  = "understudy_backfill_pending_seconds"
	MetricBackfillLag      = "understudy_backfill_oldest_pending_seconds"
	MetricBufferBytes      = "understudy_buffer_bytes"
	MetricBufferReach      = "understudy_buffer_reach_seconds"
	MetricBufferWindow     = "understudy_buffer_window_seconds"
	MetricBufferEvicted    = "understudy_buffer_evicted_segments_total"
	MetricBufferEvictedB   = "understudy_buffer_evicted_bytes_total"
	MetricBufferEarly      = "understudy_buffer_evicted_early_segments_total"
	MetricLeader           = "understudy_cluster_leader"
	MetricUnderReplicated  = "understudy_streams_under_replicated"
	MetricRecordedNowhere  = "understudy_streams_recorded_nowhere"
	MetricDiskFault        = "understudy_disk_fault"
	MetricDiskFaults       = "understudy_disk_faults_total"
	MetricStreamsByState   = "understudy_streams_by_state"
)

// nodeMetrics is the node's Prometheus registry; every value is read from
// the node when scraped.
type nodeMetrics struct {
	reg *prometheus.Registry
	// Set by the backfill loop.
	backfillBytes, backfillSegments prometheus.Counter
	backfillPending, backfillLag    prometheus.Gauge
}

func newNodeMetrics(n *Node) *nodeMetrics {
	reg := prometheus.NewRegistry()
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	counter := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
	}
	gauge(MetricStreamsAssigned, "Streams this node is placed to record.", func() float64 {
		_, a, _ := n.sessionTotals()
		return float64(a)
	})
	gauge(MetricStreamsRecording, "Streams whose camera is connected and recording.", func() float64 {
		_, _, r := n.sessionTotals()
		return float64(r)
	})
	gauge(MetricOpenGaps, "Assigned streams not recording now (an open gap each).", func() float64 {
		_, a, r := n.sessionTotals()
		return float64(a - r)
	})
	counter(MetricBytesWritten, "Media payload bytes handed to the segment writers.", func() float64 {
		t, _, _ := n.sessionTotals()
		return float64(t.Bytes)
	})
	counter(MetricFramesWritten, "Frames handed to the segment writers; rate() is frames per second.", func() float64 {
		t, _, _ := n.sessionTotals()
		return float64(t.Frames)
	})
	counter(MetricFramesDropped, "Frames dropped (queue overflow during a disk stall, or no writer).", func() float64 {
		t, _, _ := n.sessionTotals()
		return float64(t.Dropped)
	})
	counter(MetricWriteErrors, "Segment write errors.", func() float64 {
		t, _, _ := n.sessionTotals()
		return float64(t.WriteErrors)
	})
	counter(MetricVideoStalls, "Times a connected camera sent no video for 1-2 s (held frame, not a gap; longer is a gap).", func() float64 {
		t, _, _ := n.sessionTotals()
		return float64(t.Stalls)
	})
	counter(MetricReconnects, "Camera connections that ended and were retried.", func() float64 {
		t, _, _ := n.sessionTotals()
		return float64(t.Reconnects)
	})
	gauge(MetricDiskUsed, "Bytes used on the data directory's file system.", func() float64 {
		u, _ := n.diskUsage()
		return float64(u)
	})
	gauge(MetricDiskFree, "Bytes free on the data directory's file system.", func() float64 {
		_, f := n.diskUsage()
		return float64(f)
	})
	gauge(MetricCPUPercent, "CPU used by the process, percent of the whole machine.", n.CPUPercent)
	gauge(MetricQueueBytes, "Bytes of frames received and not yet written, all streams together.", func() float64 {
		return float64(n.queueMemory.Used())
	})
	gauge(MetricQueueLimit, "The queue memory of all streams together (queue-memory-mib); full, recording drops to the next keyframe.", func() float64 {
		return float64(n.queueMemory.Limit())
	})
	counter(MetricEventsDropped, "Events dropped for WatchEvents subscribers too slow to take them.", func() float64 {
		return float64(n.bus.Dropped())
	})
	counter(MetricPartsWritten, "Segment parts (about 1 s of media each) written; rate() is parts per second.", func() float64 {
		return float64(n.store.Stats().PartsWritten)
	})
	counter(MetricSegmentsDeleted, "Archive segments deleted by retention.", func() float64 {
		return float64(n.store.Stats().SegmentsDeleted)
	})
	counter(MetricBytesDeleted, "Bytes of archive segments deleted by retention.", func() float64 {
		return float64(n.store.Stats().BytesDeleted)
	})
	gauge(MetricBufferBytes, "Bytes of closed segments this node holds in its replica buffer.", func() float64 {
		return float64(n.buffer.Last().Held)
	})
	gauge(MetricBufferReach, "How far back the replica buffer reaches, in seconds: the window, less when the budget evicted early or nothing was buffered that long ago.", func() float64 {
		return n.buffer.Last().Reach.Seconds()
	})
	gauge(MetricBufferWindow, "The replica buffer window (buffer-window), in seconds.", func() float64 {
		return n.buffer.Policy().Window.Seconds()
	})
	counter(MetricBufferEvicted, "Replica buffer segments evicted (out of the window, or early for the budget).", func() float64 {
		s, _, _ := n.buffer.Totals()
		return float64(s)
	})
	counter(MetricBufferEvictedB, "Bytes of replica buffer segments evicted.", func() float64 {
		_, b, _ := n.buffer.Totals()
		return float64(b)
	})
	counter(MetricBufferEarly, "Replica buffer segments evicted inside the window because the buffer was over its budget (buffer-budget-mib).", func() float64 {
		_, _, e := n.buffer.Totals()
		return float64(e)
	})
	gauge(MetricLeader, "1 on the node that runs the cluster's audit (the leader), 0 elsewhere.", func() float64 {
		if n.audit.leader.Load() {
			return 1
		}
		return 0
	})
	gauge(MetricUnderReplicated, "Streams with fewer live recorders receiving media than they ask for, for over 20 s (set on the leader; 0 elsewhere).", func() float64 {
		return float64(n.audit.under.Load())
	})
	gauge(MetricRecordedNowhere, "Streams no live node records with media flowing, for over 20 s (set on the leader; 0 elsewhere).", func() float64 {
		return float64(n.audit.nowhere.Load())
	})
	gauge(MetricDiskFault, "1 while the disk refuses segment writes (EIO, ENOSPC, EDQUOT, EROFS) and the node is saturated for it, 0 otherwise.", func() float64 {
		if f, _, _ := n.disk.state(); f {
			return 1
		}
		return 0
	})
	counter(MetricDiskFaults, "Disk faults that made the node saturated (each ends after 3 good probe writes in a row).", func() float64 {
		n.disk.mu.Lock()
		defer n.disk.mu.Unlock()
		return float64(n.disk.faults)
	})
	reg.MustRegister(stateCollector{n: n, desc: prometheus.NewDesc(MetricStreamsByState,
		"Streams by state (label state, as ctl streams list shows it): the recording states count this node's own recordings; "+
			"disabled and not_placed count the catalog's streams, the same on every node.", []string{"state"}, nil)})
	m := &nodeMetrics{reg: reg,
		backfillBytes:    prometheus.NewCounter(prometheus.CounterOpts{Name: MetricBackfillBytes, Help: "Bytes copied into this node's archive by backfill (from its buffer or peers)."}),
		backfillSegments: prometheus.NewCounter(prometheus.CounterOpts{Name: MetricBackfillSegments, Help: "Segments copied into this node's archive by backfill."}),
		backfillPending:  prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricBackfillPending, Help: "Seconds of holes in the archives this node is home for that a peer holds, or a holder now down may hold, and backfill has not filled yet."}),
		backfillLag:      prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricBackfillLag, Help: "Age in seconds of the oldest hole backfill has not filled yet (0: none)."}),
	}
	reg.MustRegister(m.backfillBytes, m.backfillSegments, m.backfillPending, m.backfillLag)
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// stateCollector serves MetricStreamsByState, counted when scraped; every
// state has a value, 0 when no stream is in it.
type stateCollector struct {
	n    *Node
	desc *prometheus.Desc
}

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	counts := c.n.stateCounts()
	for _, st := range gaugeStates {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(counts[st]), StateName(st))
	}
}
