package store

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
)

// Keys that come and go between two walks do not pile up in the key order:
// its unsorted tail stays within the keys held plus a constant.
func TestAscendOrderStaysBoundedWhenKeysComeAndGo(t *testing.T) {
	m := NewMemory(Limits{MaxValues: 100, MaxPerPublisher: 100})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	stable := id.Key("stays")
	if err := m.Put(stable, Value{Publisher: stable, Version: 1, Expires: now.Add(24 * time.Hour), Data: []byte("v")}, netip.Addr{}, now); err != nil {
		t.Fatal(err) // the store never empties, which would reset the order
	}
	m.Ascend(id.ID{}, func(id.ID) bool { return true }) // starts keeping the order
	for i := range 20_000 {
		k := id.Key(fmt.Sprint("coming and going ", i))
		if err := m.Put(k, Value{Publisher: k, Version: 1, Expires: now.Add(time.Second), Data: []byte("v")}, netip.Addr{}, now); err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Second)
		m.Sweep(now)
		if o := m.order; len(o.fresh)+len(o.sorted) > 2*len(m.keys)+1024+16 {
			t.Fatalf("after %d keys came and went the order holds %d+%d keys for %d held", i+1, len(o.sorted), len(o.fresh), len(m.keys))
		}
	}
	var n int
	m.Ascend(id.ID{}, func(id.ID) bool { n++; return true })
	if n != 1 {
		t.Fatalf("Ascend reported %d keys, want the 1 held", n)
	}
}
