package api_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
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
	// waits for the subscriber.
	for i := range 11 {
		src <- api.ValueEvent{Kind: api.EventPut, Key: key, Value: api.Value{Data: []byte{byte('a' + i)}}}
	}
	close(src)
	close(w.gate)
	<-served
	if s.Dropped() != 9 {
		t.Errorf("Dropped() = %d, want 9", s.Dropped())
	}
	out := w.out.String()
	var names []string
	for _, block := range strings.Split(strings.TrimSpace(out), "\n\n") {
		names = append(names, strings.SplitN(block, "\n", 2)[0])
	}
	want := []string{": stream open", "event: put", "event: put", "event: dropped", "event: end"}
	if strings.Join(names, "|") != strings.Join(want, "|") {
		t.Errorf("stream %q, want blocks %q", out, want)
	}
	if !strings.Contains(out, `data: {"dropped":9}`) {
		t.Errorf("the dropped event does not count 9: %q", out)
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
