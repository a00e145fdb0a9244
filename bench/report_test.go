package bench

import (
	"strings"
	"testing"
)

// TestWriteTablePeer: a side-by-side row shows the peer's figures and the
// ratios; without the peer (skipped) they are "-", never a measured 0.
func TestWriteTablePeer(t *testing.T) {
	row := func(peer bool) PeerRow {
		r := PeerRow{Understudy: Side{Streams: 10, CPUPerStream: 1.14, RSSBytes: 84e6}}
		if peer {
			r.MediaMTX = Side{Streams: 10, CPUPerStream: 1.45, RSSBytes: 39e6}
			r.CPURatio, r.RSSRatio = 1.14/1.45, 84.0/39
		}
		return r
	}
	var with, without strings.Builder
	if err := WriteTable(&with, &Report{Peer: &PeerResult{Bitrate: 4e6, Peer: "MediaMTX", Rows: []PeerRow{row(true)}}}); err != nil {
		t.Fatal(err)
	}
	if err := WriteTable(&without, &Report{Peer: &PeerResult{Bitrate: 4e6, Peer: "MediaMTX", Skipped: "no binary", Rows: []PeerRow{row(false)}}}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(with.String(), "1.45 %") || !strings.Contains(with.String(), "0.79") {
		t.Errorf("side by side lacks the peer's figures:\n%s", with.String())
	}
	last := strings.Fields(strings.TrimSpace(without.String())[strings.LastIndex(strings.TrimSpace(without.String()), "\n")+1:])
	if want := []string{"10", "1.14", "%", "-", "-", "84.0", "MB", "-", "-"}; strings.Join(last, " ") != strings.Join(want, " ") {
		t.Errorf("skipped peer row = %q, want %q:\n%s", last, want, without.String())
	}
}
