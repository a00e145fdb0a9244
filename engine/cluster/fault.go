package cluster

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// FaultTransport is a memberlist transport for tests: memberlist's
// NetTransport that can be cut off from the network and healed. While cut
// off it drops every packet it would send or receives, fails every dial and
// closes every incoming stream, so the node neither reaches nor hears any
// peer, as in a partition. CutExcept keeps the peers on some hosts: the
// nodes of one failure domain cut off together still hear each other.
// Impair degrades the node's traffic without cutting it: loss in one
// direction or both, and delay.
type FaultTransport struct {
	*memberlist.NetTransport
	cut      atomic.Bool
	allow    atomic.Pointer[map[string]bool] // hosts still reached while cut
	impair   atomic.Pointer[Impairment]
	rndMu    sync.Mutex
	rnd      *rand.Rand
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	done     chan struct{}
	once     sync.Once
}

var errCutOff = errors.New("fault transport: cut off")

// NewFaultTransport listens on bindAddr:bindPort (0: any free port).
func NewFaultTransport(bindAddr string, bindPort int) (*FaultTransport, error) {
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{bindAddr},
		BindPort:  bindPort,
		Logger:    discardLogger(),
	})
	if err != nil {
		return nil, err
	}
	t := &FaultTransport{
		NetTransport: nt,
		packetCh:     make(chan *memberlist.Packet),
		streamCh:     make(chan net.Conn),
		done:         make(chan struct{}),
		rnd:          rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x5eed)),
	}
	go t.relayPackets()
	go t.relayStreams()
	return t, nil
}

// Cut drops all traffic to and from the node from now on.
func (t *FaultTransport) Cut() { t.CutExcept() }

// CutExcept drops all traffic to and from the node from now on, save that
// with peers on the given hosts (IP addresses, or names as the peers'
// addresses give them).
func (t *FaultTransport) CutExcept(hosts ...string) {
	m := map[string]bool{}
	for _, h := range hosts {
		m[h] = true
	}
	t.allow.Store(&m)
	t.cut.Store(true)
}

// Heal ends Cut.
func (t *FaultTransport) Heal() { t.cut.Store(false) }

// Impairment degrades a node's gossip without cutting it off. OutLoss and
// InLoss are the fractions of packets lost that the node sends and that
// it receives (0 to 1). At 1 in either direction the streams (TCP:
// push/pull, joins, fallback probes) fail both ways too, since a
// connection needs packets both ways: OutLoss 1 with InLoss 0 is a node
// that hears its peers' packets but is never heard. Delay holds every packet the node sends, and every dial it
// makes, that long.
type Impairment struct {
	OutLoss, InLoss float64
	Delay           time.Duration
}

// ParseImpairment reads "out=F in=F delay=D" (any of the three, in any
// order; empty: none), as chaos control files give it.
func ParseImpairment(s string) (Impairment, error) {
	var im Impairment
	for _, f := range strings.Fields(s) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return Impairment{}, fmt.Errorf("impairment %q: want key=value", f)
		}
		switch k {
		case "out", "in":
			x, err := strconv.ParseFloat(v, 64)
			if err != nil || x < 0 || x > 1 {
				return Impairment{}, fmt.Errorf("impairment %s=%q: want a fraction from 0 to 1", k, v)
			}
			if k == "out" {
				im.OutLoss = x
			} else {
				im.InLoss = x
			}
		case "delay":
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 || d > time.Minute {
				return Impairment{}, fmt.Errorf("impairment delay=%q: want a duration from 0 to 1m", v)
			}
			im.Delay = d
		default:
			return Impairment{}, fmt.Errorf("impairment %q: unknown key %q (out, in, delay)", f, k)
		}
	}
	return im, nil
}

func (im Impairment) streamsLost() bool { return im.OutLoss >= 1 || im.InLoss >= 1 }

// Impair sets the impairment from now on; the zero Impairment ends it.
func (t *FaultTransport) Impair(im Impairment) { t.impair.Store(&im) }

func (t *FaultTransport) impairment() Impairment {
	if p := t.impair.Load(); p != nil {
		return *p
	}
	return Impairment{}
}

// lose draws whether one packet is lost at fraction f.
func (t *FaultTransport) lose(f float64) bool {
	switch {
	case f <= 0:
		return false
	case f >= 1:
		return true
	}
	t.rndMu.Lock()
	defer t.rndMu.Unlock()
	return t.rnd.Float64() < f
}

// blocked reports whether traffic with addr (host:port) is dropped now.
func (t *FaultTransport) blocked(addr string) bool {
	if !t.cut.Load() {
		return false
	}
	m := t.allow.Load()
	if m == nil || len(*m) == 0 {
		return true
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	return !(*m)[host]
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

func (t *FaultTransport) relayPackets() {
	in := t.NetTransport.PacketCh()
	for {
		select {
		case p := <-in:
			if t.blocked(addrString(p.From)) || t.lose(t.impairment().InLoss) {
				continue
			}
			select {
			case t.packetCh <- p:
			case <-t.done:
				return
			}
		case <-t.done:
			return
		}
	}
}

func (t *FaultTransport) relayStreams() {
	in := t.NetTransport.StreamCh()
	for {
		select {
		case c := <-in:
			if t.blocked(addrString(c.RemoteAddr())) || t.impairment().streamsLost() {
				_ = c.Close()
				continue
			}
			select {
			case t.streamCh <- c:
			case <-t.done:
				_ = c.Close()
				return
			}
		case <-t.done:
			return
		}
	}
}

// PacketCh implements memberlist.Transport.
func (t *FaultTransport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

// StreamCh implements memberlist.Transport.
func (t *FaultTransport) StreamCh() <-chan net.Conn { return t.streamCh }

// WriteTo implements memberlist.Transport.
func (t *FaultTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress implements memberlist.NodeAwareTransport.
func (t *FaultTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	im := t.impairment()
	if t.blocked(a.Addr) || t.lose(im.OutLoss) {
		return time.Now(), nil // lost on the wire
	}
	if im.Delay > 0 {
		// Send a copy later, as a slow link would: the caller may reuse b.
		buf := append([]byte(nil), b...)
		time.AfterFunc(im.Delay, func() {
			select {
			case <-t.done:
			default:
				_, _ = t.NetTransport.WriteToAddress(buf, a)
			}
		})
		return time.Now(), nil
	}
	return t.NetTransport.WriteToAddress(b, a)
}

// DialTimeout implements memberlist.Transport.
func (t *FaultTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout implements memberlist.NodeAwareTransport.
func (t *FaultTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	im := t.impairment()
	if t.blocked(a.Addr) || im.streamsLost() {
		return nil, errCutOff
	}
	if im.Delay > 0 {
		if im.Delay >= timeout && timeout > 0 {
			time.Sleep(timeout)
			return nil, fmt.Errorf("fault transport: dial %s: delayed past the timeout", a.Addr)
		}
		time.Sleep(im.Delay)
		if timeout > 0 {
			timeout -= im.Delay
		}
	}
	return t.NetTransport.DialAddressTimeout(a, timeout)
}

// Shutdown implements memberlist.Transport.
//
// The relays stop at once, so until the inner transport has shut down its
// packets and streams are drained here: its UDP listener blocks sending a
// packet nobody reads, and its Shutdown waits for that listener (a node's
// Leave hung for 8 minutes in a CI run).
func (t *FaultTransport) Shutdown() error {
	t.once.Do(func() { close(t.done) })
	stop := make(chan struct{})
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		pin, sin := t.NetTransport.PacketCh(), t.NetTransport.StreamCh()
		for {
			select {
			case <-pin:
			case c := <-sin:
				_ = c.Close()
			case <-stop:
				return
			}
		}
	}()
	err := t.NetTransport.Shutdown()
	close(stop)
	<-drained
	return err
}

var _ memberlist.NodeAwareTransport = (*FaultTransport)(nil)
