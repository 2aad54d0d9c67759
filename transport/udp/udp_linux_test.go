package udp

import (
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/dhtkit/dht/transport"
)

// sockopt reads an int socket option of s.
func sockopt(t *testing.T, s *socket, opt int) int {
	t.Helper()
	raw, err := s.conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var serr error
	if err := raw.Control(func(fd uintptr) { v, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, opt) }); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
	return v
}

// sysctl reads an integer from /proc/sys, or fails the test.
func sysctl(t *testing.T, name string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/" + name)
	if err != nil {
		t.Skipf("cannot read %s: %v", name, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return n
}

// Every socket gets the asked SO_RCVBUF and SO_SNDBUF. Linux stores twice
// the size asked for (the rest is its bookkeeping) after clamping it to
// rmem_max or wmem_max, so the sizes asked are below both and odd, and the
// sizes read back are compared with twice them and with a socket's default.
func TestSocketBufferSizesAreApplied(t *testing.T) {
	rcv := min(12345, sysctl(t, "net/core/rmem_max"))
	snd := min(23457, sysctl(t, "net/core/wmem_max"))
	tr := listen(t, Config{Addr: "127.0.0.1:0", Sockets: 2, ReadBuffer: rcv, WriteBuffer: snd})
	plain := listen(t, Config{Addr: "127.0.0.1:0"})
	defRcv, defSnd := sockopt(t, plain.socks[0], unix.SO_RCVBUF), sockopt(t, plain.socks[0], unix.SO_SNDBUF)
	if defRcv == 2*rcv || defSnd == 2*snd {
		t.Fatalf("the default sizes %d/%d equal the asked ones doubled: the test cannot tell them apart", defRcv, defSnd)
	}
	for i, s := range tr.socks {
		if got := sockopt(t, s, unix.SO_RCVBUF); got != 2*rcv {
			t.Errorf("socket %d: SO_RCVBUF = %d, want %d (twice %d; the default is %d)", i, got, 2*rcv, rcv, defRcv)
		}
		if got := sockopt(t, s, unix.SO_SNDBUF); got != 2*snd {
			t.Errorf("socket %d: SO_SNDBUF = %d, want %d (twice %d; the default is %d)", i, got, 2*snd, snd, defSnd)
		}
	}
}

// When the send buffer is full, the reader drops its handler's replies and
// counts them rather than wait for room, so it goes on reading. Loopback
// never fills a send buffer (the kernel passes each datagram to the receiver
// during the send), so the reply writer's sendmmsg is replaced by one that
// reports EAGAIN, as the kernel does on a full buffer. A reader that waited
// would be parked by the runtime until the socket became writable, which
// this socket then never does: the second datagram would never be handled.
func TestRepliesToAFullSendBufferAreDroppedAndTheReaderGoesOnReading(t *testing.T) {
	server := listen(t, Config{Addr: "127.0.0.1:0"})
	full := 0
	server.socks[0].replies.sendmmsg = func(uintptr, []mmsghdr) (int, syscall.Errno) {
		full++
		return 0, unix.EAGAIN
	}
	handled := make(chan struct{}, 1)
	server.Start(transport.HandlerFunc(func(data []byte, from netip.AddrPort, w transport.Writer) {
		w.WriteTo(data, from)
		w.WriteTo(data, from)
		handled <- struct{}{}
	}))
	client := listen(t, Config{Addr: "127.0.0.1:0"})
	const count = 5
	for i := range count {
		client.Send([]transport.Packet{{Addr: server.LocalAddr(), Data: []byte("x")}})
		select {
		case <-handled:
		case <-time.After(wait):
			t.Fatalf("datagram %d of %d was never handled: the reader stopped reading", i+1, count)
		}
	}
	server.Close()
	server.Wait()
	s := server.Stats()
	if s.SendDropped != 2*count || s.Sent != 0 || s.SendErrors != 0 || s.Received != count {
		t.Fatalf("stats %+v, want %d received and %d replies dropped", s, count, 2*count)
	}
	if full != count {
		t.Fatalf("%d reply writes tried, want one per datagram (%d): the rest of a batch is dropped untried", full, count)
	}
}

// Other goroutines' Sends keep waiting for room instead: their datagrams
// are requests, and waiting slows only the caller.
func TestSendWaitsForRoomInTheSendBuffer(t *testing.T) {
	tr := listen(t, Config{Addr: "127.0.0.1:0"})
	peer := listen(t, Config{Addr: "127.0.0.1:0"})
	in := make(inbox, 1)
	peer.Start(in)
	refused := make(chan struct{})
	first := true
	tr.socks[0].sendW.sendmmsg = func(fd uintptr, hdrs []mmsghdr) (int, syscall.Errno) {
		if first {
			first = false
			close(refused)
			return 0, unix.EAGAIN // full, this once
		}
		n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&hdrs[0])), uintptr(len(hdrs)), 0, 0, 0)
		return int(n), e
	}
	sent := make(chan error, 1)
	go func() { sent <- tr.Send([]transport.Packet{{Addr: peer.LocalAddr(), Data: []byte("request")}}) }()
	select {
	case <-refused:
	case <-time.After(wait):
		t.Fatal("Send never tried")
	}
	// Send now waits in the poller for the socket to turn writable. Any
	// event on the socket makes the poller look again and find it so.
	peer.Send([]transport.Packet{{Addr: tr.LocalAddr(), Data: []byte("wake")}})
	if p := in.next(t); string(p.Data) != "request" {
		t.Fatalf("got %q", p.Data)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if s := tr.Stats(); s.Sent != 1 || s.SendDropped != 0 {
		t.Fatalf("stats %+v, want the request sent after the wait, nothing dropped", s)
	}
}
