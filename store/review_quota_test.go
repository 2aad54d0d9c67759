package store

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
)

// A source is an IPv6 /64, but one host is routinely given a /56 (homes) or
// a /48 (servers): 256 or 65,536 sources. Without site quotas, four /64s of
// one /56 fill any key's records for as long as they refresh, so an honest
// publisher is refused with ErrKeyFull; the quotas should bound what one
// site (a /48, say, or a /56) holds.
func TestOneIPv6SiteCannotFillAKey(t *testing.T) {
	m := NewMemory(Limits{})
	now := base
	key := id.Key("squatted")
	for i := range m.Limits().MaxPerKey {
		src := netip.MustParseAddr(fmt.Sprintf("2001:db8:0:%x::1", i/m.Limits().MaxPerKeyPerSource)) // /64s of 2001:db8::/56
		v := Value{Publisher: id.Key(fmt.Sprint("junk ", i)), Expires: now.Add(time.Hour), Data: []byte("junk")}
		if err := m.Put(key, v, src, now); err != nil {
			break // the site is bounded, as it should be
		}
	}
	err := m.Put(key, Value{Publisher: id.Key("honest"), Expires: now.Add(time.Hour), Data: []byte("honest")}, netip.MustParseAddr("198.51.100.7"), now)
	if errors.Is(err, ErrKeyFull) {
		t.Errorf("the /64s of one /56 filled a key against every other publisher: %v", err)
	}
}

// The same from a single /48 against the whole store: sources are /64s, so
// one site holds MaxPerSource records per /64, and a hundred of its /64s
// hold the store.
func TestOneIPv6SiteCannotFillTheStore(t *testing.T) {
	m := NewMemory(Limits{MaxValues: 1000, MaxPerKey: 16})
	now := base
	stored := 0
	for s := 0; s < 200 && stored < 1000; s++ {
		src := netip.MustParseAddr(fmt.Sprintf("2001:db8:1:%x::1", s))
		for v := range 10 {
			k := id.Key(fmt.Sprintf("k%d-%d", s, v))
			if m.Put(k, Value{Publisher: k, Expires: now.Add(time.Hour), Data: []byte("x")}, src, now) == nil {
				stored++
			}
		}
	}
	if stored >= m.Limits().MaxValues {
		t.Errorf("one /48 stored %d records, the whole store (%d)", stored, m.Limits().MaxValues)
	}
}

// A third party that refreshes a source's old records keeps them alive; if
// they stayed charged to the source that first stored them, the source's
// quota under its key would stay spent for as long as the third party
// likes, and it could never store a new record there. A record is charged to
// its newest writer: the refresher pays for what it keeps alive.
func TestOthersRefreshesDoNotKeepASourcesQuotaSpent(t *testing.T) {
	m := NewMemory(Limits{})
	now := base
	key := id.Key("mine")
	publisher := netip.MustParseAddr("192.0.2.1")
	attacker := netip.MustParseAddr("198.51.100.9")
	per := m.Limits().MaxPerKeyPerSource
	rec := func(i int, now time.Time) Value {
		return Value{Publisher: id.Key(fmt.Sprint("program ", i)), Version: 1, Expires: now.Add(time.Hour), Data: []byte("old")}
	}
	for i := range per {
		if err := m.Put(key, rec(i, now), publisher, now); err != nil {
			t.Fatal(err)
		}
	}
	// Long after the source let its old records go, the attacker has kept
	// refreshing them.
	for range 48 {
		now = now.Add(30 * time.Minute)
		for i := range per {
			if err := m.Put(key, rec(i, now), attacker, now); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := m.Put(key, Value{Publisher: id.Key("new program"), Expires: now.Add(time.Hour), Data: []byte("new")}, publisher, now); errors.Is(err, ErrQuota) {
		t.Errorf("a day after its own records expired, the source cannot store under its key: %v", err)
	}
}
