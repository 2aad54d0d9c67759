//go:build !linux

package udp

import (
	"net"
	"net/netip"
	"syscall"

	"github.com/dhtkit/dht/transport"
)

// Elsewhere, the reader and writer move one datagram per system call
// through the standard library's allocation-free AddrPort methods.

const reusePortSupported = false

func control(bool) func(network, address string, c syscall.RawConn) error { return nil }

// reader receives one datagram at a time. It is used by one goroutine.
type reader struct {
	conn *net.UDPConn
	buf  []byte
	n    int
	from netip.AddrPort
}

func newReader(conn *net.UDPConn, _ int) (*reader, error) {
	// One byte more than allowed, so an oversize datagram shows as too long.
	return &reader{conn: conn, buf: make([]byte, transport.MaxDatagram+1)}, nil
}

func (r *reader) read() (int, error) {
	n, _, _, from, err := r.conn.ReadMsgUDPAddrPort(r.buf, nil)
	if err != nil {
		return 0, err
	}
	r.n, r.from = n, from
	return 1, nil
}

func (r *reader) datagram(int) ([]byte, netip.AddrPort, datagramStatus) {
	if r.n > transport.MaxDatagram {
		return nil, netip.AddrPort{}, datagramTruncated
	}
	return r.buf[:r.n], netip.AddrPortFrom(r.from.Addr().Unmap(), r.from.Port()), datagramOK
}

// writer sends one datagram per system call. It is used by one goroutine at
// a time. Here every writer waits while the send buffer is full, the
// reader's too: the standard library has no write that fails instead, and
// a write deadline would apply to the other goroutines' Sends as well.
type writer struct {
	conn *net.UDPConn
	v4   bool
}

func newWriter(conn *net.UDPConn, _ int, _ bool) (*writer, error) {
	la := conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr()
	return &writer{conn: conn, v4: la.Is4()}, nil
}

func (w *writer) write(pkts []transport.Packet, t *Transport) error {
	for i := range pkts {
		p := &pkts[i]
		if len(p.Data) > transport.MaxDatagram {
			t.oversize.Add(1)
			continue
		}
		to := p.Addr
		if w.v4 {
			to = netip.AddrPortFrom(to.Addr().Unmap(), to.Port())
		}
		if !to.IsValid() || to.Port() == 0 || (w.v4 && !to.Addr().Is4()) {
			t.sendErrors.Add(1)
			continue
		}
		if _, err := w.conn.WriteToUDPAddrPort(p.Data, to); err != nil {
			if t.down.Load() {
				return transport.ErrClosed
			}
			t.sendErrors.Add(1)
			continue
		}
		t.sent.Add(1)
	}
	return nil
}
