package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"
)

// MaxEvent bounds one event's data, so that a stream cannot make the
// reader grow without end (the largest value's base64 fits well within).
const MaxEvent = 16 << 20

// Event is one Server-Sent Event.
type Event struct {
	Name string // the "event:" field; "message" when the event has none
	Data string // the "data:" lines, joined with line breaks
}

// SSEReader reads a text/event-stream: events, with comments skipped and
// fields other than event and data ignored.
type SSEReader struct {
	r   *bufio.Reader
	max int
}

// NewSSEReader reads events from r, each at most max bytes (0: MaxEvent).
func NewSSEReader(r io.Reader, max int) *SSEReader {
	if max <= 0 {
		max = MaxEvent
	}
	return &SSEReader{bufio.NewReaderSize(r, 64<<10), max}
}

// Next returns the next event; io.EOF at the end of the stream (an event
// cut short by the end is dropped, as the format says).
func (s *SSEReader) Next() (Event, error) {
	var (
		ev      Event
		data    strings.Builder
		hasData bool
		size    int
	)
	for {
		line, err := s.line(s.max - size)
		if err != nil {
			return Event{}, err
		}
		size += len(line)
		if len(line) == 0 {
			if !hasData {
				ev, size = Event{}, 0 // a block of comments or fields only: no event
				continue
			}
			ev.Data = data.String()
			if ev.Name == "" {
				ev.Name = "message"
			}
			return ev, nil
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "event":
			ev.Name = string(value)
		case "data":
			if hasData {
				data.WriteByte('\n')
			}
			data.Write(value)
			hasData = true
		}
	}
}

// line reads one line without its ending (LF, CRLF or CR), of at most max
// bytes.
func (s *SSEReader) line(max int) ([]byte, error) {
	var out []byte
	for {
		b, err := s.r.ReadByte()
		if err != nil {
			if err == io.EOF && len(out) > 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		switch b {
		case '\n':
			return out, nil
		case '\r':
			if next, err := s.r.Peek(1); err == nil && next[0] == '\n' {
				s.r.ReadByte()
			}
			return out, nil
		}
		if len(out) >= max {
			return nil, fmt.Errorf("client: an event is over %d bytes", s.max)
		}
		out = append(out, b)
	}
}

// Stream is an open event stream of T (api.ValueEvent or api.NodeEvent).
type Stream[T any] struct {
	body    io.Closer
	r       *SSEReader
	cancel  context.CancelFunc
	ctx     context.Context
	mu      sync.Mutex
	dropped uint64
}

func openStream[T any](ctx context.Context, c *Client, path string, q url.Values) (*Stream[T], error) {
	ctx, cancel := context.WithCancel(ctx)
	resp, err := c.request(ctx, "GET", path, q, nil, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("client: GET %s answered %q, not an event stream", path, ct)
	}
	return &Stream[T]{body: resp.Body, r: NewSSEReader(resp.Body, 0), cancel: cancel, ctx: ctx}, nil
}

// Next returns the next event. It returns io.EOF when the node ended the
// stream, ErrBroken when the connection ended without that, and the
// context's error when it ended.
func (s *Stream[T]) Next() (T, error) {
	var zero T
	for {
		ev, err := s.r.Next()
		if err != nil {
			if cerr := s.ctx.Err(); cerr != nil {
				return zero, cerr
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return zero, ErrBroken
			}
			return zero, fmt.Errorf("%w: %v", ErrBroken, err)
		}
		switch ev.Name {
		case "end":
			return zero, io.EOF
		case "dropped":
			var d struct {
				Dropped uint64 `json:"dropped"`
			}
			if json.Unmarshal([]byte(ev.Data), &d) == nil {
				s.mu.Lock()
				s.dropped += d.Dropped
				s.mu.Unlock()
			}
			continue
		}
		var v T
		if err := json.Unmarshal([]byte(ev.Data), &v); err != nil {
			return zero, fmt.Errorf("client: decoding a %q event: %w", ev.Name, err)
		}
		return v, nil
	}
}

// Dropped returns how many events the node dropped for this stream because
// it was read too slowly (as far as Next has read).
func (s *Stream[T]) Dropped() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// Close ends the stream.
func (s *Stream[T]) Close() error {
	s.cancel()
	return s.body.Close()
}
