package cluster

import (
	"errors"
	"net"
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
type FaultTransport struct {
	*memberlist.NetTransport
	cut      atomic.Bool
	allow    atomic.Pointer[map[string]bool] // hosts still reached while cut
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
			if t.blocked(addrString(p.From)) {
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
			if t.blocked(addrString(c.RemoteAddr())) {
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
	if t.blocked(addr) {
		return time.Now(), nil // lost on the wire
	}
	return t.NetTransport.WriteTo(b, addr)
}

// WriteToAddress implements memberlist.NodeAwareTransport.
func (t *FaultTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if t.blocked(a.Addr) {
		return time.Now(), nil
	}
	return t.NetTransport.WriteToAddress(b, a)
}

// DialTimeout implements memberlist.Transport.
func (t *FaultTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if t.blocked(addr) {
		return nil, errCutOff
	}
	return t.NetTransport.DialTimeout(addr, timeout)
}

// DialAddressTimeout implements memberlist.NodeAwareTransport.
func (t *FaultTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if t.blocked(a.Addr) {
		return nil, errCutOff
	}
	return t.NetTransport.DialAddressTimeout(a, timeout)
}

// Shutdown implements memberlist.Transport.
func (t *FaultTransport) Shutdown() error {
	t.once.Do(func() { close(t.done) })
	return t.NetTransport.Shutdown()
}

var _ memberlist.NodeAwareTransport = (*FaultTransport)(nil)
