package lookup

import (
	"net/netip"
	"testing"

	"github.com/dhtkit/dht/id"
)

// fuzzOps reads a fuzz input as a program of calls on a Lookup.
type fuzzOps struct {
	h    *harness
	data []byte
}

func (f *fuzzOps) byte() byte {
	if len(f.data) == 0 {
		return 0
	}
	b := f.data[0]
	f.data = f.data[1:]
	return b
}

// contact maps a byte to one of 256 contacts at varied distances from the
// target (bit b%64 of the distance set, so that larger values are closer),
// with self, the target itself and two invalid addresses among them.
func (f *fuzzOps) contact(b byte) id.Contact {
	h := f.h
	switch b {
	case 0:
		return id.Contact{ID: h.self, Addr: addr(1)}
	case 1:
		return id.Contact{ID: h.target, Addr: addr(2)}
	}
	x := h.target
	bit := int(b % 64)
	x[bit/8] ^= 0x80 >> (bit % 8)
	x[id.Len-1] ^= b >> 6
	c := id.Contact{ID: x, Addr: addr(int(b))}
	switch b {
	case 2:
		c.Addr = netip.AddrPort{}
	case 3:
		c.Addr = netip.AddrPortFrom(c.Addr.Addr(), 0)
	}
	return c
}

// id picks the ID a call is about: one handed out before for small
// values, else one of the 256 contacts.
func (f *fuzzOps) id() id.ID {
	b := f.byte()
	if b < 96 && len(f.h.handedList) > 0 {
		return f.h.handedList[int(b)%len(f.h.handedList)].ID
	}
	return f.contact(b).ID
}

// batch reads up to 31 contacts; with the top bit of the length byte set,
// it is a batch of ever-closer contacts instead.
func (f *fuzzOps) batch() []id.Contact {
	n := f.byte()
	out := make([]id.Contact, n&31)
	for i := range out {
		if n&0x80 != 0 {
			out[i] = f.h.closer.next()
		} else {
			out[i] = f.contact(f.byte())
		}
	}
	return out
}

// FuzzLookup runs the calls a fuzz input encodes (the first five bytes pick
// the configuration) and checks the invariants of TestNoSequenceOfCallsBreaksALookup
// after each one, then resolves the remaining requests and checks that the
// lookup reaches Done within MaxQueries resolutions. The seed corpus in
// testdata/fuzz/FuzzLookup holds a few inputs the fuzzer found (reaching
// Requeue, both bounds and stalls) and hand-written ones: handwritten-abandon-*
// play the ever-closer attack until stalled requests are abandoned.
func FuzzLookup(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4096 {
			return // longer programs find nothing shorter ones cannot
		}
		fo := &fuzzOps{data: data}
		cfg := Config{
			K:             1 + int(fo.byte()%8),
			Alpha:         1 + int(fo.byte()%4),
			MaxCandidates: int(fo.byte() % 32),
			MaxQueries:    int(fo.byte() % 64),
			MaxRounds:     int(fo.byte() % 8),
		}
		self, target := id.Key("fuzz self"), id.Key("fuzz target")
		h := newHarness(t, self, target, cfg)
		fo.h = h
		for len(fo.data) > 0 {
			switch fo.byte() % 8 {
			case 0:
				h.seeds(fo.batch())
			case 1:
				h.next()
			case 2:
				h.respond(fo.id(), fo.batch())
			case 3:
				h.fail(fo.id())
			case 4:
				h.stall(fo.id())
			case 5:
				h.requeue(fo.id())
			case 6:
				h.l.Done()
				h.check()
			case 7:
				// Stall everything in flight: the attack's signature.
				for _, c := range h.l.InFlight(nil) {
					h.stall(c.ID)
				}
			}
		}
		// Resolve the rest in order: the closest answers with nothing, the
		// next fails, and so on.
		n := 0
		h.drain(func(awaited []id.Contact) (id.Contact, bool, []id.Contact) {
			n++
			return awaited[0], n%2 == 0, nil
		})
	})
}
