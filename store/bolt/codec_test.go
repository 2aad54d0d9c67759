package bolt

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/store"
)

func TestRecordRoundTrip(t *testing.T) {
	srcs := []netip.Addr{
		{},
		netip.MustParseAddr("203.0.113.7"),
		netip.MustParseAddr("2001:db8::1"),
		netip.MustParseAddr("::ffff:198.51.100.1"),
	}
	pub := id.Key("publisher")
	vals := []store.Value{
		{Version: 0, Expires: time.Unix(0, 0)},
		{Version: 1<<64 - 1, Expires: time.Date(2030, 1, 2, 3, 4, 5, 999_999_999, time.UTC), Data: []byte("hello")},
		{Version: 7, Expires: time.Date(1969, 12, 31, 23, 59, 59, 1, time.UTC), Deleted: true},
		{Version: 1_700_000_000_000_000, Expires: time.Unix(1<<40, 5), Data: bytes.Repeat([]byte{0}, 65536)},
		{Version: 3, Expires: time.Unix(1<<33, 0), Envelope: true, Data: []byte{2, 0, 'x'}},
	}
	rk := recordKey(id.Key("key"), pub)
	for _, src := range srcs {
		for _, v := range vals {
			v.Publisher = pub
			b := appendRecord([]byte("prefix"), &rk, &v, src)
			if got, want := len(b)-len("prefix"), recordLen(&v, src); got != want {
				t.Fatalf("recordLen = %d, appendRecord wrote %d", want, got)
			}
			gotRK, got, gotSrc, err := decodeRecord(b[len("prefix"):])
			if err != nil {
				t.Fatalf("decode %v from %v: %v", v, src, err)
			}
			if gotRK != rk || got.Publisher != pub || got.Version != v.Version || !got.Expires.Equal(v.Expires) ||
				got.Deleted != v.Deleted || got.Envelope != v.Envelope || !bytes.Equal(got.Data, v.Data) || gotSrc != src.WithZone("") {
				t.Fatalf("round trip of %+v from %v gave %+v from %v", v, src, got, gotSrc)
			}
		}
	}
}

func TestRecordDropsZone(t *testing.T) {
	v := store.Value{Expires: time.Unix(1, 0)}
	_, _, src, err := decodeRecord(appendRecord(nil, &rkey{}, &v, netip.MustParseAddr("fe80::1%eth0")))
	if err != nil || src != netip.MustParseAddr("fe80::1") {
		t.Fatalf("got %v, %v; want fe80::1 without zone", src, err)
	}
}

func TestRecordKeySplits(t *testing.T) {
	k, p := recordKey(id.ID{1}, id.ID{9}).split()
	if k != (id.ID{1}) || p != (id.ID{9}) {
		t.Fatal("split does not invert recordKey")
	}
}

func TestSeqKeysSortAsNumbers(t *testing.T) {
	for _, pair := range [][2]uint64{{0, 1}, {255, 256}, {1<<32 - 1, 1 << 32}, {1<<63 + 5, 1<<64 - 1}} {
		a, b := seqKey(pair[0]), seqKey(pair[1])
		if bytes.Compare(a[:], b[:]) >= 0 {
			t.Fatalf("seqKey(%d) does not sort before seqKey(%d)", pair[0], pair[1])
		}
	}
}

func TestDecodeRefusesMalformed(t *testing.T) {
	rk := recordKey(id.ID{1}, id.ID{2})
	ok := appendRecord(nil, &rk, &store.Value{Version: 3, Expires: time.Unix(10, 0)}, netip.MustParseAddr("2001:db8::1"))
	tomb := appendRecord(nil, &rk, &store.Value{Version: 3, Expires: time.Unix(10, 0), Deleted: true}, netip.Addr{})
	head := rk[:]
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	bad := map[string][]byte{
		"empty":             {},
		"no flags":          head,
		"unknown flag":      cat(head, []byte{0x80, 0, 0, 0}),
		"unknown src kind":  cat(head, []byte{3 << srcShift, 0, 0, 0}),
		"truncated version": cat(head, []byte{0, 0x80}),
		"nanos too big":     binary.AppendUvarint(cat(head, []byte{0, 0, 0}), uint64(time.Second)),
		"short IPv6 source": ok[:len(ok)-1],
		"tombstone data":    append(tomb, 'x'),
	}
	for name, b := range bad {
		if _, _, _, err := decodeRecord(b); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

// FuzzDecodeRecord: no input makes decodeRecord panic, and whatever it
// accepts encodes back to the same record.
func FuzzDecodeRecord(f *testing.F) {
	rk := recordKey(id.ID{1}, id.ID{2})
	f.Add(appendRecord(nil, &rk, &store.Value{Version: 3, Expires: time.Unix(10, 5), Data: []byte("x")}, netip.MustParseAddr("1.2.3.4")))
	f.Add(appendRecord(nil, &rk, &store.Value{Deleted: true, Expires: time.Unix(-10, 0)}, netip.MustParseAddr("::1")))
	f.Fuzz(func(t *testing.T, b []byte) {
		rk, v, src, err := decodeRecord(b)
		if err != nil {
			return
		}
		// Varints have several encodings of one number; compare values.
		rk2, v2, src2, err := decodeRecord(appendRecord(nil, &rk, &v, src))
		if err != nil || rk2 != rk || v2.Publisher != v.Publisher || v2.Version != v.Version ||
			!v2.Expires.Equal(v.Expires) || v2.Deleted != v.Deleted || !bytes.Equal(v2.Data, v.Data) || src2 != src {
			t.Fatalf("re-encoding %x changed it: %+v %v vs %+v %v (%v)", b, v, src, v2, src2, err)
		}
	})
}

// The ENVELOPE bit is one older files never set: a record written without
// it decodes as plain, and one with it set on a tombstone or on no data is
// refused as malformed rather than read as a record no Put could make.
func TestRecordEnvelopeBit(t *testing.T) {
	rk := recordKey(id.Key("key"), id.Key("publisher"))
	plain := store.Value{Version: 1, Expires: time.Unix(100, 0), Data: []byte("v")}
	b := appendRecord(nil, &rk, &plain, netip.Addr{})
	if b[len(rk)]&flagEnvelope != 0 {
		t.Fatal("a plain record sets the envelope bit")
	}
	if _, got, _, err := decodeRecord(b); err != nil || got.Envelope {
		t.Fatalf("plain record decodes as %+v, %v", got, err)
	}
	tomb := store.Value{Version: 1, Expires: time.Unix(100, 0), Deleted: true}
	bad := appendRecord(nil, &rk, &tomb, netip.Addr{})
	bad[len(rk)] |= flagEnvelope
	if _, _, _, err := decodeRecord(bad); err == nil {
		t.Fatal("an enveloped tombstone decodes")
	}
}
