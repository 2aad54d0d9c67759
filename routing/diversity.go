package routing

import (
	"fmt"
	"net/netip"
)

// IP diversity (docs/protocol.md, "Routing-table rules a compatible node
// follows"; docs/security.md, "Rate limits and routing diversity").
//
// One address holds one entry (see Table), but one host usually has many
// addresses: a /24 of IPv4 or a /48 of IPv6 is what one operator, one
// hosting customer or one attacker gets cheaply. Without a cap, such a
// block could fill a bucket, or most of the table, with IDs of its
// choosing, and so see, steer or drop the lookups that pass through the
// node (an eclipse). The table therefore holds at most Diversity.PerBucket
// contacts of one prefix in a bucket (its replacement cache included) and
// at most Diversity.PerTable in all. A contact over a cap is refused
// (Crowded): it goes neither into the bucket nor into the replacement
// cache, and Table.Crowded counts it. Contacts already held are never
// pushed out by the cap.
//
// Only global unicast addresses are capped unless Diversity.AllScopes is
// set: loopback, private (RFC 1918, fc00::/7), link-local, shared
// (100.64.0.0/10), reserved (240.0.0.0/4) and documentation addresses
// are where test networks and the simulator's in-memory network
// (127.0.0.0/8) live, thousands of nodes to one prefix, and a LAN holds
// one operator's nodes anyway.

// Defaults of Diversity.
const (
	DefaultPerBucket = 2
	DefaultPerTable  = 10
)

// Diversity caps the contacts of one network prefix (a /24 of IPv4, a /48
// of IPv6) in a table. The zero value takes the defaults: 2 per bucket, 10
// per table, global unicast addresses only.
type Diversity struct {
	// PerBucket is how many contacts of one prefix a bucket and its
	// replacement cache hold together; default 2; negative: no cap.
	PerBucket int
	// PerTable is how many contacts of one prefix the whole table holds,
	// replacement caches included; default 10; negative: no cap.
	PerTable int
	// AllScopes caps every address, loopback and private ones included
	// (for tests of the cap on a loopback network).
	AllScopes bool
}

func (d Diversity) withDefaults() Diversity {
	if d.PerBucket == 0 {
		d.PerBucket = DefaultPerBucket
	}
	if d.PerTable == 0 {
		d.PerTable = DefaultPerTable
	}
	return d
}

// Validate reports whether d, with defaults filled in, can work: a cap
// per bucket above the cap per table would never apply.
func (d Diversity) Validate() error {
	d = d.withDefaults()
	if d.PerBucket > 0 && d.PerTable > 0 && d.PerBucket > d.PerTable {
		return fmt.Errorf("routing: Diversity.PerBucket is %d, above PerTable (%d)", d.PerBucket, d.PerTable)
	}
	return nil
}

// Crowded is the Result of a sighting refused for IP diversity: its
// prefix holds its share of the bucket or of the table already.
const Crowded = Conflict + 1

// diversity is a table's state of the caps: how many contacts of each
// capped prefix it holds. Only capped prefixes are counted, so a table of
// loopback or private contacts keeps an empty map; the map never holds
// more keys than the table holds entries.
type diversity struct {
	perBucket, perTable int // negative: no cap
	all                 bool
	counts              map[uint64]int32
	crowded             uint64
}

func newDiversity(d Diversity) diversity {
	d = d.withDefaults()
	return diversity{perBucket: d.PerBucket, perTable: d.PerTable, all: d.AllScopes}
}

// Documentation prefixes, never routed on the Internet (RFC 5737, 3849),
// and the other non-global ranges the cap leaves alone.
var uncapped = []netip.Prefix{
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("2001:db8::/32"),
}

// capped reports whether a falls under the caps by default.
func capped(a netip.Addr) bool {
	if !a.IsGlobalUnicast() || a.IsPrivate() {
		return false
	}
	for _, p := range uncapped {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// prefix returns e's /24 or /48 as a map key, and whether the caps apply
// to e at all.
func (d *diversity) prefix(e *entry) (uint64, bool) {
	if d.perBucket < 0 && d.perTable < 0 {
		return 0, false
	}
	var a netip.Addr
	var p uint64
	if e.flags&familyMask == family4 {
		a = netip.AddrFrom4([4]byte(e.addr[:4]))
		p = 4<<56 | uint64(e.addr[0])<<16 | uint64(e.addr[1])<<8 | uint64(e.addr[2])
	} else {
		a = netip.AddrFrom16(e.addr)
		p = 6<<56 | uint64(e.addr[0])<<40 | uint64(e.addr[1])<<32 | uint64(e.addr[2])<<24 |
			uint64(e.addr[3])<<16 | uint64(e.addr[4])<<8 | uint64(e.addr[5])
	}
	if !d.all && !capped(a) {
		return 0, false
	}
	return p, true
}

// crowded reports whether ne may not enter bucket b (its entries or its
// cache) under the caps, counting the refusal. leaving, when not nil, is
// an entry that ne's arrival takes out (an entry taking ne's address),
// which does not count against it.
func (t *Table) crowded(ne *entry, b *bucket, leaving *entry) bool {
	d := &t.div
	p, ok := d.prefix(ne)
	if !ok {
		return false
	}
	inTable := int(d.counts[p])
	inBucket := 0
	for _, s := range [2][]entry{b.entries, b.repl} {
		for i := range s {
			if q, ok := d.prefix(&s[i]); ok && q == p && &s[i] != leaving {
				inBucket++
			}
		}
	}
	if leaving != nil {
		if q, ok := d.prefix(leaving); ok && q == p {
			inTable--
		}
	}
	if (d.perBucket >= 0 && inBucket >= d.perBucket) || (d.perTable >= 0 && inTable >= d.perTable) {
		d.crowded++
		return true
	}
	return false
}

// held counts e, now in a bucket or a cache, or (by -1) no longer there.
func (d *diversity) held(e *entry, by int32) {
	p, ok := d.prefix(e)
	if !ok {
		return
	}
	if d.counts == nil {
		d.counts = make(map[uint64]int32)
	}
	if c := d.counts[p] + by; c > 0 {
		d.counts[p] = c
	} else {
		delete(d.counts, p)
	}
}

// Crowded returns how many sightings the table refused for IP diversity
// (see Diversity).
func (t *Table) Crowded() uint64 { return t.div.crowded }
