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
// peer, as in a partition.
type FaultTransport struct {
	*memberlist.NetTransport
	cut      atomic.Bool
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
func (t *FaultTransport) Cut() { t.cut.Store(true) }

// Heal ends Cut.
func (t *FaultTransport) Heal() { t.cut.Store(false) }

func (t *FaultTransport) relayPackets() {
	in := t.NetTransport.PacketCh()
	for {
		select {
		case p := <-in:
			if t.cut.Load() {
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
			if t.cut.Load() {
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
	if t.cut.Load() {
		return time.Now(), nil // lost on the wire
	}
	return t.NetTransport.WriteTo(b, addr)
}

// WriteToAddress implements memberlist.NodeAwareTransport.
func (t *FaultTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if t.cut.Load() {
		return time.Now(), nil
	}
	return t.NetTransport.WriteToAddress(b, a)
}

// DialTimeout implements memberlist.Transport.
func (t *FaultTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if t.cut.Load() {
		return nil, errCutOff
	}
	return t.NetTransport.DialTimeout(addr, timeout)
}

// DialAddressTimeout implements memberlist.NodeAwareTransport.
func (t *FaultTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if t.cut.Load() {
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
