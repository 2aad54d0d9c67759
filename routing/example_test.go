package routing_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/routing"
)

// contact builds a contact whose ID starts with the given byte.
func contact(first byte, port uint16) id.Contact {
	var x id.ID
	x[0], x[19] = first, byte(port)
	return id.Contact{ID: x, Addr: netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), port)}
}

// A full bucket keeps its old contacts while they answer: the newcomer waits
// in the replacement cache and the least recently seen contact is pinged.
func ExampleTable_Seen() {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tb := routing.New(id.ID{}, routing.Config{K: 2})

	a, b, c := contact(0x80, 4001), contact(0x90, 4002), contact(0xa0, 4003)
	// c arrives 20 minutes later, when a and b are no longer fresh.
	for i, x := range []id.Contact{a, b, c} {
		res, ping, needPing := tb.Seen(x, now.Add(time.Duration(i/2)*20*time.Minute))
		if needPing {
			fmt.Println(x.Addr.Port(), res, "ping", ping.Addr)
		} else {
			fmt.Println(x.Addr.Port(), res)
		}
	}
	// The pinged contact answers: it stays, the newcomer keeps waiting.
	res, _, _ := tb.Seen(a, now.Add(20*time.Minute+time.Second))
	fmt.Println(a.Addr.Port(), res, tb.Len(), len(tb.Replacements(0)))
	// Output:
	// 4001 Added
	// 4002 Added
	// 4003 Full ping 192.0.2.1:4001
	// 4001 Updated 2 1
}

// Requests are unverified sightings, answers verified ones. Only an answer
// proves an address, and a datagram from another address does not move an
// entry: the table asks for a ping of the stored address instead.
func ExampleTable_Verified() {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tb := routing.New(id.ID{}, routing.Config{})
	a := contact(0x80, 4001)

	tb.Seen(a, now) // a request from a
	fmt.Println(tb.Proven(a))
	tb.Verified(a, now.Add(time.Second)) // a answers our request
	fmt.Println(tb.Proven(a))

	spoofed := id.Contact{ID: a.ID, Addr: netip.MustParseAddrPort("198.51.100.7:4001")}
	res, ping, _ := tb.Seen(spoofed, now.Add(time.Hour))
	e, _ := tb.Get(a.ID)
	fmt.Println(res, "ping", ping.Addr, "entry at", e.Contact.Addr)
	// Output:
	// false
	// true
	// Conflict ping 192.0.2.1:4001 entry at 192.0.2.1:4001
}

// A contact that stops answering is replaced by the most recent replacement.
func ExampleTable_Failed() {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tb := routing.New(id.ID{}, routing.Config{K: 2})
	a, b, c := contact(0x80, 4001), contact(0x90, 4002), contact(0xa0, 4003)
	tb.Seen(a, now)
	tb.Seen(b, now)
	later := now.Add(20 * time.Minute) // a is no longer fresh: the newcomer brings a ping
	_, ping, _ := tb.Seen(c, later)

	fmt.Println(tb.Failed(ping.ID, later.Add(5*time.Second)))
	tb.ForEach(func(bucket int, e routing.Entry) { fmt.Println(bucket, e.Contact.Addr) })
	// Output:
	// true
	// 0 192.0.2.1:4002
	// 0 192.0.2.1:4003
}

func ExampleTable_Closest() {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tb := routing.New(id.ID{}, routing.Config{})
	for i, first := range []byte{0x01, 0x40, 0x41, 0x80, 0xff} {
		tb.Seen(contact(first, uint16(4001+i)), now)
	}
	var target id.ID
	target[0] = 0x42
	dst := make([]id.Contact, 0, 3) // reuse dst across calls: Closest then allocates nothing
	for _, c := range tb.Closest(target, 3, dst) {
		fmt.Printf("%02x %v\n", c.ID[0], c.Addr)
	}
	// Output:
	// 40 192.0.2.1:4002
	// 41 192.0.2.1:4003
	// 01 192.0.2.1:4001
}

// A node refreshes every bucket that has seen no lookup for an hour by
// looking up a random ID in it.
func ExampleTable_Stale() {
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tb := routing.New(id.ID{}, routing.Config{K: 1})
	tb.Seen(contact(0x80, 4001), start)
	tb.Seen(contact(0x40, 4002), start.Add(30*time.Minute)) // splits: bucket 1 is new

	r := rand.New(rand.NewPCG(1, 2)) // a real node seeds from crypto/rand
	now := start.Add(80 * time.Minute)
	for _, i := range tb.Stale(now, time.Hour, nil) {
		fmt.Println("refresh bucket", i, "of", tb.Buckets())
		target := tb.RefreshTarget(i, r)
		// ... run a lookup for target, then:
		tb.Touch(target, now)
	}
	fmt.Println(len(tb.Stale(now, time.Hour, nil)), "stale after the refresh")
	// Output:
	// refresh bucket 0 of 2
	// 0 stale after the refresh
}
