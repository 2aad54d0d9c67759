package core

import (
	"testing"

	"github.com/dhtkit/dht/id"
)

// BenchmarkReview10EventQueuePushWhenFull measures a push into a queue
// full of distinct publishers' events (a callback that fell behind a flood
// of forged inline NOTIFYs, each of a new publisher): every such push
// coalesces the whole queue, two maps of 1024 entries, to free nothing.
func BenchmarkReview10EventQueuePushWhenFull(b *testing.B) {
	var q eventQueue
	pubs := make([]id.ID, 2*maxQueuedEvents)
	for i := range pubs {
		pubs[i][0], pubs[i][1] = byte(i), byte(i>>8)
	}
	for i := range maxQueuedEvents {
		q.push(Event{Kind: EventPut, Record: Record{Publisher: pubs[i], Version: 1}})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		q.push(Event{Kind: EventPut, Record: Record{Publisher: pubs[i%len(pubs)], Version: uint64(i + 2)}})
	}
}

// A flood of events of new publishers into a full queue (forged inline
// NOTIFYs from the key's notifiers' addresses, each a small datagram, while
// the callback is behind) must not make every push coalesce the whole
// queue: the review measured 139µs and 132 KB allocated per push before.
// Coalescing runs when it frees at least 1/8 of the queue; otherwise the
// oldest event goes.
func TestReview10FullQueueOfNewPublishersDoesNotCoalesceOnEveryPush(t *testing.T) {
	var q eventQueue
	pub := func(i int) id.ID {
		var p id.ID
		p[0], p[1], p[2] = byte(i), byte(i>>8), byte(i>>16)
		return p
	}
	for i := range maxQueuedEvents {
		q.push(Event{Kind: EventPut, Record: Record{Publisher: pub(i), Version: 1}})
	}
	next := maxQueuedEvents
	allocs := testing.AllocsPerRun(200, func() {
		next++
		if _, c, _ := q.push(Event{Kind: EventPut, Record: Record{Publisher: pub(next), Version: 1}}); c != 0 {
			t.Fatalf("coalesced %d events of distinct publishers", c)
		}
	})
	if allocs >= 1 {
		t.Fatalf("%.1f allocations per push into a full queue of distinct publishers", allocs)
	}
	// One repeated publisher per push: coalescing would free one event
	// each time; it runs at most once per 1/8 of the queue.
	runs := 0
	for i := range 4 * maxQueuedEvents {
		p := pub(next)
		if i%2 == 0 {
			next++
			p = pub(next)
		}
		if _, c, _ := q.push(Event{Kind: EventReplace, Record: Record{Publisher: p, Version: uint64(i + 2)}}); c > 0 {
			runs++
			if c*coalesceFrees < maxQueuedEvents {
				t.Fatalf("a coalescing pass freed %d events", c)
			}
		}
		if len(q.q) > maxQueuedEvents || len(q.pubs) > len(q.q) {
			t.Fatalf("%d events queued, %d publishers counted", len(q.q), len(q.pubs))
		}
	}
	if runs > 4*coalesceFrees {
		t.Fatalf("%d coalescing passes in %d pushes", runs, 4*maxQueuedEvents)
	}
}
