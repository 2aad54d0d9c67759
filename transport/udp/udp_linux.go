package udp

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/dhtkit/dht/transport"
)

// Linux has recvmmsg and sendmmsg, which golang.org/x/net/ipv4 also wraps;
// but its Message carries the peer as a net.Addr, which costs two
// allocations per datagram each way. Calling the system calls through the
// socket's RawConn, with our own message headers and raw sockaddrs decoded
// straight into netip.AddrPort, costs none, and still parks the reader in
// the runtime's poller while the socket is idle.

const reusePortSupported = true

// control sets SO_REUSEPORT before bind, so several sockets can share the
// port; the kernel then spreads datagrams across them by flow hash.
func control(reusePort bool) func(network, address string, c syscall.RawConn) error {
	if !reusePort {
		return nil
	}
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}); err != nil {
			return err
		}
		return serr
	}
}

// mmsghdr is struct mmsghdr: a msghdr and the byte count the kernel fills
// in. Go pads it to the C layout on every architecture (56+4+4 on 64-bit).
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// sockaddr holds a struct sockaddr_in or sockaddr_in6.
type sockaddr [unix.SizeofSockaddrInet6]byte

// bufStride is the room per received datagram: one byte more than allowed,
// so that an oversize datagram shows as too long rather than as truncated
// data that could be mistaken for a whole datagram.
const bufStride = transport.MaxDatagram + 1

func socketFamily(conn *net.UDPConn) (raw syscall.RawConn, family int, err error) {
	raw, err = conn.SyscallConn()
	if err != nil {
		return nil, 0, err
	}
	var sa unix.Sockaddr
	var serr error
	if err := raw.Control(func(fd uintptr) { sa, serr = unix.Getsockname(int(fd)) }); err != nil {
		return nil, 0, err
	}
	if serr != nil {
		return nil, 0, serr
	}
	switch sa.(type) {
	case *unix.SockaddrInet4:
		return raw, unix.AF_INET, nil
	case *unix.SockaddrInet6:
		return raw, unix.AF_INET6, nil
	}
	return nil, 0, errors.New("udp: socket is neither IPv4 nor IPv6")
}

// reader receives batches with recvmmsg. It is used by one goroutine.
type reader struct {
	raw   syscall.RawConn
	buf   []byte
	hdrs  []mmsghdr
	iovs  []unix.Iovec
	names []sockaddr

	// The result of the last call, set by fn. fn is built once so that
	// each read passes the same func value and allocates nothing.
	n     int
	errno syscall.Errno
	fn    func(fd uintptr) bool
}

func newReader(conn *net.UDPConn, batch int) (*reader, error) {
	raw, _, err := socketFamily(conn)
	if err != nil {
		return nil, err
	}
	r := &reader{
		raw:   raw,
		buf:   make([]byte, batch*bufStride),
		hdrs:  make([]mmsghdr, batch),
		iovs:  make([]unix.Iovec, batch),
		names: make([]sockaddr, batch),
	}
	for i := range r.hdrs {
		r.iovs[i].Base = &r.buf[i*bufStride]
		r.iovs[i].SetLen(bufStride)
		h := &r.hdrs[i].hdr
		h.Name = &r.names[i][0]
		h.Iov = &r.iovs[i]
		h.SetIovlen(1)
	}
	r.fn = func(fd uintptr) bool {
		for {
			n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(len(r.hdrs)), 0, 0, 0)
			switch e {
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return false // nothing yet: park in the poller
			}
			r.n, r.errno = int(n), e
			return true
		}
	}
	return r, nil
}

// read blocks until at least one datagram arrives and returns how many did.
func (r *reader) read() (int, error) {
	for i := range r.hdrs {
		r.hdrs[i].hdr.Namelen = unix.SizeofSockaddrInet6
		r.hdrs[i].hdr.Flags = 0
	}
	if err := r.raw.Read(r.fn); err != nil {
		return 0, err
	}
	if r.errno != 0 {
		return 0, r.errno
	}
	return r.n, nil
}

// datagram returns the i-th datagram of the last read and its source.
func (r *reader) datagram(i int) ([]byte, netip.AddrPort, datagramStatus) {
	h := &r.hdrs[i]
	if h.n > transport.MaxDatagram || h.hdr.Flags&unix.MSG_TRUNC != 0 {
		return nil, netip.AddrPort{}, datagramTruncated
	}
	from, ok := decodeSockaddr(&r.names[i], h.hdr.Namelen)
	if !ok {
		return nil, netip.AddrPort{}, datagramBadSource
	}
	start := i * bufStride
	return r.buf[start : start+int(h.n)], from, datagramOK
}

func decodeSockaddr(b *sockaddr, n uint32) (netip.AddrPort, bool) {
	port := binary.BigEndian.Uint16(b[2:4])
	switch binary.NativeEndian.Uint16(b[0:2]) {
	case unix.AF_INET:
		if n < unix.SizeofSockaddrInet4 {
			return netip.AddrPort{}, false
		}
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), port), true
	case unix.AF_INET6:
		if n < unix.SizeofSockaddrInet6 {
			return netip.AddrPort{}, false
		}
		a := netip.AddrFrom16([16]byte(b[8:24])).Unmap()
		if scope := binary.NativeEndian.Uint32(b[24:28]); scope != 0 && a.Is6() {
			// Link-local peers only; a numeric zone avoids an interface
			// lookup, and zoneIndex reads it back.
			a = a.WithZone(strconv.FormatUint(uint64(scope), 10))
		}
		return netip.AddrPortFrom(a, port), true
	}
	return netip.AddrPort{}, false
}

// encodeSockaddr writes to as a sockaddr of the socket's family and returns
// its length, or 0 if the socket cannot send there.
func encodeSockaddr(b *sockaddr, family int, to netip.AddrPort) uint32 {
	a := to.Addr()
	if !a.IsValid() || to.Port() == 0 {
		return 0
	}
	binary.BigEndian.PutUint16(b[2:4], to.Port())
	switch family {
	case unix.AF_INET:
		a = a.Unmap()
		if !a.Is4() {
			return 0
		}
		binary.NativeEndian.PutUint16(b[0:2], unix.AF_INET)
		a4 := a.As4()
		copy(b[4:8], a4[:])
		clear(b[8:16])
		return unix.SizeofSockaddrInet4
	case unix.AF_INET6:
		// IPv4 peers go out as IPv4-mapped addresses, which a dual-stack
		// socket sends over IPv4.
		binary.NativeEndian.PutUint16(b[0:2], unix.AF_INET6)
		clear(b[4:8]) // flow info
		a16 := a.As16()
		copy(b[8:24], a16[:])
		binary.NativeEndian.PutUint32(b[24:28], zoneIndex(a.Zone()))
		return unix.SizeofSockaddrInet6
	}
	return 0
}

// zoneIndex turns an IPv6 zone into an interface index: numeric zones (as
// decodeSockaddr makes them) directly, names through the interface table.
func zoneIndex(zone string) uint32 {
	if zone == "" {
		return 0
	}
	if n, err := strconv.ParseUint(zone, 10, 32); err == nil {
		return uint32(n)
	}
	if ifi, err := net.InterfaceByName(zone); err == nil {
		return uint32(ifi.Index)
	}
	return 0
}

// writer sends batches with sendmmsg. It is used by one goroutine at a time.
type writer struct {
	raw      syscall.RawConn
	family   int
	nonblock bool // drop what a full send buffer refuses instead of waiting
	hdrs     []mmsghdr
	iovs     []unix.Iovec
	names    []sockaddr

	// The call in progress: fn sends cur and records the result, and is
	// built once so that a write allocates nothing.
	cur   []mmsghdr
	n     int
	errno syscall.Errno
	fn    func(fd uintptr) bool

	// sendmmsg replaces the system call in tests (nil: the real one), so
	// that they can make the send buffer look full: on loopback it never
	// is, since the kernel hands each datagram to the receiver at once.
	sendmmsg func(fd uintptr, hdrs []mmsghdr) (int, syscall.Errno)
}

// newWriter makes a writer for conn. A nonblock writer drops the datagrams
// a full send buffer refuses (counted in Stats.SendDropped); the others
// wait in the runtime's poller until the socket is writable again.
func newWriter(conn *net.UDPConn, batch int, nonblock bool) (*writer, error) {
	raw, family, err := socketFamily(conn)
	if err != nil {
		return nil, err
	}
	w := &writer{
		raw:      raw,
		family:   family,
		nonblock: nonblock,
		hdrs:     make([]mmsghdr, batch),
		iovs:     make([]unix.Iovec, batch),
		names:    make([]sockaddr, batch),
	}
	for i := range w.hdrs {
		h := &w.hdrs[i].hdr
		h.Name = &w.names[i][0]
		h.Iov = &w.iovs[i]
		h.SetIovlen(1)
	}
	w.fn = func(fd uintptr) bool {
		for {
			var n int
			var e syscall.Errno
			if w.sendmmsg != nil {
				n, e = w.sendmmsg(fd, w.cur)
			} else {
				r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&w.cur[0])), uintptr(len(w.cur)), 0, 0, 0)
				n, e = int(r), errno
			}
			switch e {
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				if !w.nonblock {
					return false // send buffer full: wait until writable
				}
			}
			w.n, w.errno = n, e
			return true
		}
	}
	return w, nil
}

// write sends pkts in batches, skipping (and counting) those that are too
// big or that the socket cannot address, and those the kernel refuses; a
// nonblock writer also drops (and counts) everything from the first
// datagram the full send buffer refuses on. It returns transport.ErrClosed
// once the socket is closed.
func (w *writer) write(pkts []transport.Packet, t *Transport) error {
	defer w.release()
	full := false
	for len(pkts) > 0 {
		k := 0
		for len(pkts) > 0 && k < len(w.hdrs) {
			p := &pkts[0]
			pkts = pkts[1:]
			if len(p.Data) > transport.MaxDatagram {
				t.oversize.Add(1)
				continue
			}
			nl := encodeSockaddr(&w.names[k], w.family, p.Addr)
			if nl == 0 {
				t.sendErrors.Add(1)
				continue
			}
			if full {
				t.sendDropped.Add(1)
				continue
			}
			w.hdrs[k].hdr.Namelen = nl
			if len(p.Data) > 0 {
				w.iovs[k].Base = &p.Data[0]
			} else {
				w.iovs[k].Base = nil
			}
			w.iovs[k].SetLen(len(p.Data))
			k++
		}
		for done := 0; done < k; {
			w.cur = w.hdrs[done:k]
			if err := w.raw.Write(w.fn); err != nil {
				return transport.ErrClosed
			}
			if w.errno == unix.EAGAIN {
				// Only a nonblock writer gets here. The buffer will not
				// drain in the microseconds the rest would take.
				full = true
				t.sendDropped.Add(uint64(k - done))
				break
			}
			if w.errno != 0 {
				// sendmmsg reports an error only for the first datagram
				// it tried: drop that one and go on with the rest.
				t.sendErrors.Add(1)
				done++
				continue
			}
			if w.n <= 0 { // cannot happen; never spin on it
				t.sendErrors.Add(1)
				done++
				continue
			}
			t.sent.Add(uint64(w.n))
			done += w.n
		}
	}
	return nil
}

// release drops the references to the caller's datagrams, so that the
// writer does not keep them alive.
func (w *writer) release() {
	for i := range w.iovs {
		w.iovs[i].Base = nil
	}
	w.cur = nil
}
