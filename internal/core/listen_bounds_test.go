package core

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/transport/memnet"
	"github.com/dhtkit/dht/wire"
)

// NOTIFYs of records to fetch, from 20 publishers at one instant: the
// subscription fetches two, keeps eight waiting, and answers the rest ERROR
// busy (not NOTIFIED: it did not take them), counting them; the waiting
// ones are fetched as the first fetches end, one FETCH each (the notifier
// never sends a part).
func TestNotifiedFetchesPastTheBacklogAreRefusedBusy(t *testing.T) {
	ns := newNotifierSetup(t, 811)
	const n = 20
	for i := range n {
		ns.notify(t, uint64(700+i), wire.Record{Publisher: id.Key(fmt.Sprint("pub", i)), Version: 1, TTL: 600, Size: 5000})
	}
	ns.tn.clk.RunFor(6 * time.Millisecond) // delivered (5 ms), no FETCH answered yet
	s := ns.subscription()
	ns.sub.mu.Lock()
	fetches, waiting := len(s.fetches), len(s.backlog)
	ns.sub.mu.Unlock()
	if fetches != maxNotifyFetches || waiting != maxFetchBacklog {
		t.Errorf("%d NOTIFYs at once: %d fetches, %d waiting; want %d and %d", n, fetches, waiting, maxNotifyFetches, maxFetchBacklog)
	}
	ns.tn.clk.RunFor(10 * time.Second)
	st := ns.sub.Stats()
	dropped := n - maxNotifyFetches - maxFetchBacklog
	if st.Listen.FetchesDropped != uint64(dropped) || st.ErrorsSent["busy"] != uint64(dropped) {
		t.Errorf("%d NOTIFYs past the backlog: %d counted dropped, %d answered busy; want %d", dropped, st.Listen.FetchesDropped, st.ErrorsSent["busy"], dropped)
	}
	if want := maxNotifyFetches + maxFetchBacklog; ns.fetch != want {
		t.Errorf("the notifier got %d FETCHes, want %d: one per record taken", ns.fetch, want)
	}
	ns.sub.mu.Lock()
	fetches, waiting = len(s.fetches), len(s.backlog)
	ns.sub.mu.Unlock()
	if fetches != 0 || waiting != 0 {
		t.Errorf("after the fetches failed: %d fetches, %d waiting", fetches, waiting)
	}
}

// A notifier that holds the record proves it with its first PART: the fetch
// then opens its window and completes, and the subscription reports it.
func TestNotifiedRecordIsFetchedOnceTheNotifierProvesIt(t *testing.T) {
	ns := newNotifierSetup(t, 812)
	value := make([]byte, 20*wire.MaxPart+17)
	for i := range value {
		value[i] = byte(i)
	}
	at := map[time.Time]int{} // FETCHes received at each instant
	var instants []time.Time
	ns.peer.script = func(req *wire.Message, from netip.AddrPort) *wire.Message {
		if req.Type != wire.Fetch {
			return answer(req, from, nil)
		}
		ns.fetch++
		now := ns.tn.clk.Now()
		if at[now] == 0 {
			instants = append(instants, now)
		}
		at[now]++
		end := min(int(req.Offset)+wire.MaxPart, len(value))
		return &wire.Message{Type: wire.Part, Offset: req.Offset, Size: uint32(len(value)), Value: value[req.Offset:end]}
	}
	ns.notify(t, 900, wire.Record{Publisher: id.Key("holder"), Version: 3, TTL: 600, Size: uint32(len(value))})
	ns.tn.clk.RunFor(10 * time.Second)
	if len(ns.events) != 1 || !bytes.Equal(ns.events[0].Record.Data, value) || ns.events[0].Kind != EventPut {
		t.Fatalf("events %d, want one put of the %d-byte value", len(ns.events), len(value))
	}
	if ns.fetch != 21 {
		t.Errorf("%d FETCHes for 21 parts", ns.fetch)
	}
	// One FETCH first; the window opens after its PART.
	if len(instants) < 2 || at[instants[0]] != 1 || at[instants[1]] != putWindow {
		t.Errorf("FETCHes per round trip: first %d, then %d; want 1, then %d", at[instants[0]], at[instants[1]], putWindow)
	}
}

// A callback that falls behind: once its queue is full, the queue keeps the
// newest event of each publisher, in order, and a publisher first reported
// in what was coalesced is still reported as a put. Past what coalescing can
// free (more publishers than room), the oldest events are dropped, and the
// queue stays within its byte bound.
func TestEventQueueCoalescesPerPublisherWhenFull(t *testing.T) {
	pubs := []id.ID{id.Key("a"), id.Key("b"), id.Key("c")}
	var q eventQueue
	coalesced, lost := 0, 0
	latest := map[id.ID]uint64{}
	for v := 1; v <= 3*maxQueuedEvents; v++ {
		p := pubs[v%len(pubs)]
		kind := EventReplace
		if _, ok := latest[p]; !ok {
			kind = EventPut
		}
		latest[p] = uint64(v)
		start, c, l := q.push(Event{Kind: kind, Record: Record{Publisher: p, Version: uint64(v), Data: []byte("x")}})
		if start != (v == 1) {
			t.Fatalf("push %d asked for a runner: %v (one runner, started by the first)", v, start)
		}
		coalesced += c
		lost += l
		if len(q.q) > maxQueuedEvents {
			t.Fatalf("%d events queued", len(q.q))
		}
	}
	if coalesced == 0 || lost != 0 {
		t.Errorf("%d events of 3 publishers: %d coalesced, %d lost; want some coalesced and none lost", 3*maxQueuedEvents, coalesced, lost)
	}
	seen := map[id.ID]uint64{}
	first := map[id.ID]EventKind{}
	for {
		e, ok := q.pop()
		if !ok {
			break
		}
		p := e.Record.Publisher
		if _, ok := first[p]; !ok {
			first[p] = e.Kind
		}
		if e.Record.Version <= seen[p] {
			t.Fatalf("publisher %v: version %d after %d", p, e.Record.Version, seen[p])
		}
		seen[p] = e.Record.Version
	}
	for _, p := range pubs {
		if seen[p] != latest[p] || first[p] != EventPut {
			t.Errorf("publisher %v: last delivered version %d (want %d), first kind %v (want put)", p, seen[p], latest[p], first[p])
		}
	}

	// Large events of as many publishers as events: the byte bound holds.
	var big eventQueue
	lost = 0
	for i := range 200 {
		_, _, l := big.push(Event{Kind: EventPut, Record: Record{Publisher: id.Key(fmt.Sprint(i)), Version: 1, Data: make([]byte, 64<<10)}})
		lost += l
		if big.bytes > maxQueuedEventBytes {
			t.Fatalf("%d bytes of events queued, over %d", big.bytes, maxQueuedEventBytes)
		}
	}
	if want := 200 - maxQueuedEventBytes/(64<<10); lost != want {
		t.Errorf("200 events of 64 KiB from 200 publishers: %d lost, want %d (the oldest past 4 MiB)", lost, want)
	}
}

// Honest nodes end to end: a read-only listener of a key hears of a 20 KiB value put
// two hops away through NOTIFYs its notifiers pad, fetches it once (the
// NOTIFYs of the same version from its other notifiers join that fetch as
// holders, they do not start their own), and reports it, then its
// replacement.
func TestListenerFetchesALargeNotifiedValueOnce(t *testing.T) {
	tn := storageNet(t, 813, 20, 6, memnet.Config{})
	key := id.Key("large listened value")
	publisher := tn.nodes[13]
	// A read-only client: it holds no values, so every event comes through
	// NOTIFYs (and fetches), none from a copy of its own.
	listener := tn.add(func(c *Config) { c.K = 6; c.ReadOnly = true })
	pending := 1
	listener.Bootstrap([]netip.AddrPort{tn.nodes[0].Addr()}, func(*BootstrapResult, error) { pending-- })
	tn.await(&pending, time.Minute)
	var events []Event
	cancel := listener.Listen(key, func(e Event) { events = append(events, e) })
	defer cancel()
	tn.clk.RunFor(5 * time.Second)
	value := func(b byte) []byte { return bytes.Repeat([]byte{b}, 20<<10) }
	parts := (20<<10 + wire.MaxPart - 1) / wire.MaxPart
	for i, b := range []byte{'a', 'b'} {
		before := listener.Stats().Sent["FETCH"].Sent
		if _, err := putRec(t, tn, publisher, PutRequest{Key: key, Value: value(b), TTL: time.Hour, Publisher: id.Key("pub"), Version: uint64(i + 1)}); err != nil {
			t.Fatal(err)
		}
		tn.clk.RunFor(10 * time.Second)
		want := []EventKind{EventPut, EventReplace}[i]
		if len(events) != i+1 || events[i].Kind != want || !bytes.Equal(events[i].Record.Data, value(b)) {
			t.Fatalf("after put %d: %d events; want a %v of the 20 KiB value", i+1, len(events), want)
		}
		if fetched := listener.Stats().Sent["FETCH"].Sent - before; fetched > uint64(parts)+maxSources {
			t.Errorf("the listener sent %d FETCHes for a value of %d parts", fetched, parts)
		}
	}
	if st := listener.Stats(); st.Listen.NotifiesShort != 0 || st.Listen.FetchesDropped != 0 {
		t.Errorf("honest NOTIFYs: %d too short, %d not fetched", st.Listen.NotifiesShort, st.Listen.FetchesDropped)
	}
}
