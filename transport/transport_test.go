package transport

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"
)

// Datagrams written before the buffer grows keep their bytes, and Reset
// keeps the memory for reuse.
func TestBatchKeepsEveryDatagramAcrossGrowth(t *testing.T) {
	var b Batch
	to := netip.MustParseAddrPort("127.0.0.1:4000")
	var want [][]byte
	for i := range 100 {
		d := bytes.Repeat([]byte(fmt.Sprint(i%10)), 1+i*13%MaxDatagram)
		want = append(want, d)
		b.WriteTo(d, to)
	}
	b.WriteTo(make([]byte, MaxDatagram+1), to) // over the limit: dropped
	if b.Len() != len(want) {
		t.Fatalf("%d datagrams, want %d", b.Len(), len(want))
	}
	for i, p := range b.Packets() {
		if !bytes.Equal(p.Data, want[i]) || p.Addr != to {
			t.Fatalf("datagram %d changed after the buffer grew", i)
		}
	}
	grown := cap(b.buf)
	b.Reset()
	if b.Len() != 0 || cap(b.buf) != grown {
		t.Fatalf("Reset: %d datagrams left, capacity %d (was %d)", b.Len(), cap(b.buf), grown)
	}
	if a := testing.AllocsPerRun(100, func() {
		b.WriteTo(want[5], to)
		b.Reset()
	}); a != 0 {
		t.Fatalf("a reused Batch allocates %v times per datagram", a)
	}
}
