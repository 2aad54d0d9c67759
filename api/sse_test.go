package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dhtkit/dht/api"
	"github.com/dhtkit/dht/api/apitest"
	"github.com/dhtkit/dht/id"
)

// gatedWriter is a ResponseWriter whose writes wait for the gate to open,
// as a subscriber that does not read; a write deadline makes a waiting
// write fail when it passes.
type gatedWriter struct {
	header   http.Header
	gate     chan struct{}
	mu       sync.Mutex
	out      bytes.Buffer
	deadline time.Time
	writes   chan struct{} // gets a value when a write starts
}

func newGatedWriter() *gatedWriter {
	return &gatedWriter{header: http.Header{}, gate: make(chan struct{}), writes: make(chan struct{}, 100)}
}

func (w *gatedWriter) Header() http.Header { return w.header }
func (w *gatedWriter) WriteHeader(int)     {}
func (w *gatedWriter) Flush()              {}

func (w *gatedWriter) SetWriteDeadline(t time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.deadline = t
	return nil
}

func (w *gatedWriter) Write(b []byte) (int, error) {
	w.writes <- struct{}{}
	w.mu.Lock()
	d := w.deadline
	w.mu.Unlock()
	var timeout <-chan time.Time
	if !d.IsZero() {
		t := time.NewTimer(time.Until(d))
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-w.gate:
	case <-timeout:
		return 0, errors.New("write deadline exceeded")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.out.Write(b)
}

// A subscriber that does not read loses the events past its buffer, and
// is told how many, in order, once it reads again; nothing waits for it:
// not the node's sender, not memory.
func TestSlowSubscriberDropsEventsAndIsToldHowMany(t *testing.T) {
	f := apitest.New()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := make(chan api.ValueEvent)
	b := &listenBackend{Fake: f, ch: src}
	s := api.New(b, api.Options{Token: token, SubscriberBuffer: 2, WriteTimeout: time.Hour})
	w := newGatedWriter()
	r := httptest.NewRequest("GET", "http://127.0.0.1/api/v1/values/events?key=k", nil).WithContext(ctx)
	served := make(chan struct{})
	go func() { defer close(served); s.ServeHTTP(w, r) }()
	<-w.writes // the opening comment, blocked
	key := id.Key("k")
	// Each send returns once the handler's pump took the event: it never
	// waits for the subscriber. When the 11th send returns, the first ten
	// have been handled: two buffered, eight dropped.
	send := func(i int) {
		src <- api.ValueEvent{Kind: api.EventPut, Key: key, Value: api.Value{Data: []byte{byte('a' + i)}}}
	}
	for i := range 11 {
		send(i)
	}
	if d := s.Dropped(); d < 8 {
		t.Errorf("Dropped() = %d with the subscriber stuck, want at least 8", d)
	}
	close(w.gate) // the subscriber reads again
	send(11)
	close(src)
	<-served
	// Whether the last events got a place depends on how fast the
	// subscriber drained: what is certain is the order, and that every
	// event was either delivered or counted to it as dropped.
	var delivered []string
	var dropped uint64
	blocks := strings.Split(strings.TrimSpace(w.out.String()), "\n\n")
	for _, block := range blocks[1 : len(blocks)-1] {
		lines := strings.Split(block, "\n")
		data := strings.TrimPrefix(lines[1], "data: ")
		switch lines[0] {
		case "event: put":
			var ev api.ValueEvent
			if err := json.Unmarshal([]byte(data), &ev); err != nil {
				t.Fatal(err)
			}
			delivered = append(delivered, string(ev.Value.Data))
		case "event: dropped":
			var d struct{ Dropped uint64 }
			json.Unmarshal([]byte(data), &d)
			dropped += d.Dropped
		default:
			t.Errorf("unexpected block %q", block)
		}
	}
	if blocks[0] != ": stream open" || blocks[len(blocks)-1] != "event: end\ndata: {}" {
		t.Errorf("stream %q: want the opening comment first and end last", w.out.String())
	}
	if len(delivered) < 2 || delivered[0] != "a" || delivered[1] != "b" || !sort.StringsAreSorted(delivered) {
		t.Errorf("delivered %q: want a, b first and the order kept", delivered)
	}
	if dropped < 8 || dropped != s.Dropped() || int(dropped)+len(delivered) != 12 {
		t.Errorf("%d delivered, %d dropped reported, Dropped() = %d: want at least 8 dropped and every event accounted for", len(delivered), dropped, s.Dropped())
	}
}

type listenBackend struct {
	*apitest.Fake
	ch chan api.ValueEvent
}

func (b *listenBackend) Listen(context.Context, id.ID) (<-chan api.ValueEvent, error) {
	return b.ch, nil
}

// A subscriber whose connection takes no write within WriteTimeout is
// disconnected, and its subscription at the node ends.
func TestStuckSubscriberIsDisconnected(t *testing.T) {
	f := apitest.New()
	s := api.New(f, api.Options{Token: token, WriteTimeout: time.Millisecond})
	w := newGatedWriter()
	r := httptest.NewRequest("GET", "http://127.0.0.1/api/v1/values/events?key=k", nil)
	served := make(chan struct{})
	go func() { defer close(served); s.ServeHTTP(w, r) }()
	select {
	case <-served:
	case <-time.After(wait):
		t.Fatal("a stuck subscriber was not disconnected")
	}
	if s.Disconnected() != 1 {
		t.Errorf("Disconnected() = %d", s.Disconnected())
	}
	if !f.WaitSubscribed(0, wait) {
		t.Error("the node's subscription outlived the disconnected subscriber")
	}
}
