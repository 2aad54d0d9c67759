package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// Event streams (text/event-stream). Each subscriber has its own bounded
// buffer between the Backend's channel and the connection: a subscriber too
// slow to keep up loses the newest events, counted and reported to it in a
// "dropped" event, and one whose connection takes no write for
// Options.WriteTimeout is disconnected, so that neither memory nor the
// Backend's senders wait on it. The stream ends when the client goes away
// (the Backend's context is canceled then) or when the Backend closes its
// channel ("end" event).

func (s *Server) listen(w http.ResponseWriter, r *http.Request, q url.Values) {
	key, err := ParseKey(q)
	if err != nil {
		writeError(w, err, nil)
		return
	}
	serveSSE(s, w, r, func(ctx context.Context) (<-chan ValueEvent, error) { return s.b.Listen(ctx, key) },
		func(e ValueEvent) string { return string(e.Kind) })
}

func (s *Server) events(w http.ResponseWriter, r *http.Request, _ url.Values) {
	serveSSE(s, w, r, s.b.Events, func(e NodeEvent) string { return e.Kind })
}

// droppedEvent is the data of a "dropped" event.
type droppedEvent struct {
	Dropped uint64 `json:"dropped"`
}

func serveSSE[T any](s *Server, w http.ResponseWriter, r *http.Request, open func(context.Context) (<-chan T, error), name func(T) string) {
	if n := s.subscribers.Add(1); n > int64(s.opts.MaxSubscribers) {
		s.subscribers.Add(-1)
		writeError(w, &Error{Code: CodeUnavailable, Message: fmt.Sprintf("%d event streams are open already; try later", s.opts.MaxSubscribers)}, nil)
		return
	}
	defer s.subscribers.Add(-1)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	src, err := open(ctx)
	if err != nil {
		s.fail(w, r, err, nil)
		return
	}

	// The pump moves events from the Backend into this subscriber's
	// buffer without ever waiting for the subscriber. Each buffered event
	// carries the count of events dropped just before it; drops after the
	// last buffered one wait in pending.
	type item struct {
		ev      T
		dropped uint64
	}
	buf := make(chan item, s.opts.SubscriberBuffer)
	var pending atomic.Uint64
	pumped := make(chan struct{})
	go func() {
		defer close(pumped)
		for {
			select {
			case ev, ok := <-src:
				if !ok {
					close(buf)
					return
				}
				n := pending.Swap(0)
				select {
				case buf <- item{ev, n}:
				default:
					pending.Add(n + 1)
					s.dropped.Add(1)
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	defer func() { cancel(); <-pumped }()

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: pass events through at once
	w.WriteHeader(http.StatusOK)

	var out bytes.Buffer
	send := func() bool {
		rc.SetWriteDeadline(time.Now().Add(s.opts.WriteTimeout))
		_, err := w.Write(out.Bytes())
		out.Reset()
		if err == nil {
			err = rc.Flush()
		}
		if err != nil {
			if ctx.Err() == nil {
				s.disconnected.Add(1)
			}
			return false
		}
		return true
	}
	drops := func(n uint64) {
		if n > 0 {
			b, _ := json.Marshal(droppedEvent{n})
			writeEvent(&out, "dropped", b)
		}
	}
	// add appends it to out; false when the stream is over.
	add := func(it item, ok bool) bool {
		if !ok {
			drops(pending.Swap(0))
			writeEvent(&out, "end", []byte("{}"))
			return false
		}
		drops(it.dropped)
		b, err := json.Marshal(it.ev)
		if err != nil {
			s.opts.Logger.Error("api: encoding an event", "err", err)
			return true
		}
		writeEvent(&out, name(it.ev), b)
		return true
	}
	// A comment at once, so that the client knows the stream is open
	// before the first event.
	out.WriteString(": stream open\n\n")
	if !send() {
		return
	}
	tick := time.NewTicker(s.opts.KeepAlive)
	defer tick.Stop()
	for {
		select {
		case it, ok := <-buf:
			more := add(it, ok)
			// What else is buffered goes out in the same write.
			for batch := true; more && batch && out.Len() < 64<<10; {
				select {
				case it, ok := <-buf:
					more = add(it, ok)
				default:
					batch = false
				}
			}
			if !send() || !more {
				return
			}
		case <-tick.C:
			if len(buf) == 0 {
				drops(pending.Swap(0))
			}
			out.WriteString(": keep-alive\n\n")
			if !send() {
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

// writeEvent appends one event in the text/event-stream format: an event
// name on one line (line breaks removed) and the data, one "data:" line per
// line of it.
func writeEvent(out *bytes.Buffer, event string, data []byte) {
	event = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, event)
	if event != "" {
		out.WriteString("event: ")
		out.WriteString(event)
		out.WriteByte('\n')
	}
	for _, line := range bytes.Split(data, []byte("\n")) {
		out.WriteString("data: ")
		out.Write(bytes.TrimSuffix(line, []byte("\r")))
		out.WriteByte('\n')
	}
	out.WriteByte('\n')
}
