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
// a /48 (servers): 256 or 65,536 sources. Four /64s of one /56 fill any key
// (MaxPerKey 16, 4 per source) for as long as they refresh, so an honest
// publisher is refused with ErrKeyFull; 100 of them fill the whole store,
// which the quotas say should take 100 hosts. The quotas should also bound
// what one site (a /48, say, or a /56) holds.
func TestOneIPv6SiteCannotFillAKey(t *testing.T) {
	m := NewMemory(Limits{})
	now := base
	key := id.Key("squatted")
	for i := range 16 {
		src := netip.MustParseAddr(fmt.Sprintf("2001:db8:0:%x::1", i/4)) // four /64s of 2001:db8::/56
		if err := m.Put(key, []byte(fmt.Sprintf("junk %d", i)), src, now.Add(time.Hour), now); err != nil {
			break // the site is bounded, as it should be
		}
	}
	err := m.Put(key, []byte("honest"), netip.MustParseAddr("198.51.100.7"), now.Add(time.Hour), now)
	if errors.Is(err, ErrKeyFull) {
		t.Errorf("four /64s of one /56 filled a key against every other publisher: %v", err)
	}
}

// The same from a single /48 against the whole store: sources are /64s, so
// one site holds MaxPerSource values per /64, and a hundred of its /64s
// hold the store.
func TestOneIPv6SiteCannotFillTheStore(t *testing.T) {
	m := NewMemory(Limits{MaxValues: 1000, MaxPerKey: 16})
	now := base
	stored := 0
	for s := 0; s < 200 && stored < 1000; s++ {
		src := netip.MustParseAddr(fmt.Sprintf("2001:db8:1:%x::1", s))
		for v := range 10 {
			k := id.Key(fmt.Sprintf("k%d-%d", s, v))
			if m.Put(k, []byte("x"), src, now.Add(time.Hour), now) == nil {
				stored++
			}
		}
	}
	if stored >= m.Limits().MaxValues {
		t.Errorf("one /48 stored %d values, the whole store (%d)", stored, m.Limits().MaxValues)
	}
}

// Every value stays charged to the source that first stored it, and a
// refresh from anyone extends it. So a third party that refreshes a
// publisher's old values keeps them alive, and charged to the publisher,
// for as long as it likes: the publisher's per-key quota stays used up and
// it can never store a new value under its own key. A refresh by another
// source should not keep the first source's quota spent (charge the
// refresher, or let only the first source extend past its own expiry).
func TestOthersRefreshesDoNotKeepAPublishersQuotaSpent(t *testing.T) {
	m := NewMemory(Limits{})
	now := base
	key := id.Key("mine")
	publisher := netip.MustParseAddr("192.0.2.1")
	attacker := netip.MustParseAddr("198.51.100.9")
	per := m.Limits().MaxPerKeyPerSource
	for i := range per {
		if err := m.Put(key, []byte(fmt.Sprintf("old %d", i)), publisher, now.Add(time.Hour), now); err != nil {
			t.Fatal(err)
		}
	}
	// Long after the publisher let its old values go, the attacker has kept
	// refreshing them.
	for range 48 {
		now = now.Add(30 * time.Minute)
		for i := range per {
			if err := m.Put(key, []byte(fmt.Sprintf("old %d", i)), attacker, now.Add(time.Hour), now); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := m.Put(key, []byte("new"), publisher, now.Add(time.Hour), now); errors.Is(err, ErrQuota) {
		t.Errorf("a day after its own values expired, the publisher cannot store under its key: %v", err)
	}
}
