package cluster

import "testing"

// TestFaultTransportCutExcept: while cut off except some hosts, traffic
// with peers on those hosts (any port: a peer's streams come from
// ephemeral ones) passes and all other is dropped; Heal ends it, and a
// later plain Cut drops the allowed hosts too.
func TestFaultTransportCutExcept(t *testing.T) {
	tr, err := NewFaultTransport("127.0.0.1", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown()
	if tr.blocked("127.0.0.5:7946") {
		t.Error("blocked before any cut")
	}
	tr.CutExcept("127.0.0.5")
	for addr, want := range map[string]bool{"127.0.0.5:7946": false, "127.0.0.5:40123": false, "127.0.0.6:7946": true, "bad": true} {
		if got := tr.blocked(addr); got != want {
			t.Errorf("cut except 127.0.0.5: blocked(%q) = %v, want %v", addr, got, want)
		}
	}
	if _, err := tr.DialTimeout("127.0.0.6:7946", 0); err == nil {
		t.Error("dial to a cut-off host succeeded")
	}
	tr.Heal()
	if tr.blocked("127.0.0.6:7946") {
		t.Error("blocked after the heal")
	}
	tr.Cut()
	if !tr.blocked("127.0.0.5:7946") {
		t.Error("a plain cut keeps the hosts of the last CutExcept")
	}
}
