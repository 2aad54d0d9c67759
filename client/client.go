// Package client is a typed Go client of a dht node's HTTP API (package
// api). Client implements api.Backend, so a program can use a running node
// through it as the node's own handlers use the node.
//
// Errors from the API are *api.Error, with its stable code: test them with
// errors.Is against api's sentinels (api.ErrNotFound, api.ErrNoPeers,
// api.ErrQuorum...). Any other error means the node could not be reached or
// its answer could not be read.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/dhtkit/dht/api"
	"github.com/dhtkit/dht/id"
)

// maxAnswer bounds the body of an answer the client reads (a get of many
// large values is the biggest).
const maxAnswer = 256 << 20

// Options configure a Client.
type Options struct {
	// Token is the node's bearer token (DATA/api.token); writes need it,
	// and every request does when the API is not on loopback.
	Token string
	// HTTPClient makes the requests; nil means a client without a
	// timeout (bound calls with their contexts: event streams last).
	HTTPClient *http.Client
}

// Client talks to one node's API. Safe for concurrent use.
type Client struct {
	base  string // scheme://host:port, no trailing slash
	token string
	hc    *http.Client
}

// New returns a client of the API at addr: "host:port" or a URL
// ("http://host:port").
func New(addr string, opts Options) (*Client, error) {
	base := addr
	if !strings.Contains(addr, "://") {
		base = "http://" + addr
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: %q is not host:port or an http(s) URL", addr)
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	return &Client{base: strings.TrimSuffix(u.Scheme+"://"+u.Host+u.Path, "/"), token: opts.Token, hc: hc}, nil
}

// Addr returns the base URL the client talks to.
func (c *Client) Addr() string { return c.base }

// request sends one request and returns the response of a 2xx answer; any
// other answer becomes an *api.Error (its "result", if any, decoded into
// result when that is not nil).
func (c *Client) request(ctx context.Context, method, path string, q url.Values, body io.Reader, result any) (*http.Response, error) {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // it repeats the method and the whole URL
		}
		return nil, fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, decodeError(resp, result)
}

// decodeError reads an error answer.
func decodeError(resp *http.Response, result any) error {
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("client: reading the error answer (%s): %w", resp.Status, err)
	}
	var body struct {
		Error struct {
			Code    api.Code `json:"code"`
			Message string   `json:"message"`
		} `json:"error"`
		Result json.RawMessage `json:"result"`
	}
	if json.Unmarshal(b, &body) != nil || body.Error.Code == "" {
		// Not the API's (a proxy, another server on that port).
		msg := strings.TrimSpace(string(b))
		if len(msg) > 200 {
			msg = msg[:200] + "..."
		}
		return &api.Error{Status: resp.StatusCode, Code: codeFor(resp.StatusCode), Message: fmt.Sprintf("%s: %s", resp.Status, msg)}
	}
	if result != nil && len(body.Result) > 0 {
		json.Unmarshal(body.Result, result)
	}
	return &api.Error{Status: resp.StatusCode, Code: body.Error.Code, Message: body.Error.Message}
}

// codeFor guesses the code of an answer that is not the API's.
func codeFor(status int) api.Code {
	switch status {
	case http.StatusBadRequest:
		return api.CodeBadRequest
	case http.StatusUnauthorized, http.StatusForbidden:
		return api.CodeUnauthorized
	case http.StatusNotFound:
		return api.CodeNotFound
	case http.StatusRequestEntityTooLarge, http.StatusRequestURITooLong:
		return api.CodeTooLarge
	case http.StatusGatewayTimeout:
		return api.CodeTimeout
	case http.StatusServiceUnavailable, http.StatusBadGateway:
		return api.CodeUnavailable
	}
	return api.CodeInternal
}

// call sends a request and decodes its JSON answer into out; on an error
// answer, its result goes into errResult.
func (c *Client) call(ctx context.Context, method, path string, q url.Values, body io.Reader, out, errResult any) error {
	resp, err := c.request(ctx, method, path, q, body, errResult)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAnswer)).Decode(out); err != nil {
		return fmt.Errorf("client: %s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}

func keyQuery(key id.ID) url.Values { return url.Values{"id": {key.String()}} }

// Info describes the node.
func (c *Client) Info(ctx context.Context) (api.Info, error) {
	var v api.Info
	err := c.call(ctx, "GET", api.Base+"/info", nil, nil, &v, nil)
	return v, err
}

// Stats returns the node's counters.
func (c *Client) Stats(ctx context.Context) (api.Stats, error) {
	var v api.Stats
	err := c.call(ctx, "GET", api.Base+"/stats", nil, nil, &v, nil)
	return v, err
}

// Table returns the node's routing table.
func (c *Client) Table(ctx context.Context) (api.Table, error) {
	var v api.Table
	err := c.call(ctx, "GET", api.Base+"/table", nil, nil, &v, nil)
	return v, err
}

// Keys returns a page of the keys the node stores; q.Limit 0 means the
// API's default page size.
func (c *Client) Keys(ctx context.Context, q api.KeysQuery) (api.KeysPage, error) {
	v := url.Values{}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.After != nil {
		v.Set("after", q.After.String())
	}
	var p api.KeysPage
	err := c.call(ctx, "GET", api.Base+"/keys", v, nil, &p, nil)
	return p, err
}

func putQuery(key id.ID, o api.PutOptions) url.Values {
	q := keyQuery(key)
	if o.TTL > 0 {
		// Whole seconds when it is some, else a Go duration.
		if o.TTL%time.Second == 0 {
			q.Set("ttl", strconv.FormatInt(int64(o.TTL/time.Second), 10))
		} else {
			q.Set("ttl", o.TTL.String())
		}
	}
	if o.Quorum > 0 {
		q.Set("quorum", strconv.Itoa(o.Quorum))
	}
	if !o.Publisher.IsZero() {
		q.Set("publisher", o.Publisher.String())
	}
	if o.Version != 0 {
		q.Set("version", strconv.FormatUint(o.Version, 10))
	}
	if o.Keep {
		q.Set("keep", "1")
	}
	if o.Envelope {
		q.Set("envelope", "1")
	}
	return q
}

// Put stores value under key. Below opts.Quorum the error Is api.ErrQuorum
// and the result holds the receipts.
func (c *Client) Put(ctx context.Context, key id.ID, value []byte, opts api.PutOptions) (api.PutResult, error) {
	var r api.PutResult
	err := c.call(ctx, "PUT", api.Base+"/values", putQuery(key, opts), bytes.NewReader(value), &r, &r)
	return r, err
}

// Get returns key's values, newest first.
func (c *Client) Get(ctx context.Context, key id.ID) (api.GetResult, error) {
	var r api.GetResult
	err := c.call(ctx, "GET", api.Base+"/values", keyQuery(key), nil, &r, nil)
	return r, err
}

// Delete withdraws opts.Publisher's value of key (the node's own by
// default). When no node held one, the error Is api.ErrNotFound and the
// result holds the receipts.
func (c *Client) Delete(ctx context.Context, key id.ID, opts api.PutOptions) (api.DeleteResult, error) {
	var r api.DeleteResult
	q := putQuery(key, api.PutOptions{TTL: opts.TTL, Quorum: opts.Quorum, Publisher: opts.Publisher})
	err := c.call(ctx, "DELETE", api.Base+"/values", q, nil, &r, &r)
	return r, err
}

// Ping asks the node at addr whether it is alive.
func (c *Client) Ping(ctx context.Context, addr string) (api.PingResult, error) {
	b, _ := json.Marshal(map[string]string{"addr": addr})
	var r api.PingResult
	err := c.call(ctx, "POST", api.Base+"/ping", nil, bytes.NewReader(b), &r, nil)
	return r, err
}

// FindNode returns the closest nodes to target that answered.
func (c *Client) FindNode(ctx context.Context, target id.ID) ([]api.Contact, error) {
	var r struct {
		Nodes []api.Contact `json:"nodes"`
	}
	err := c.call(ctx, "GET", api.Base+"/nodes", keyQuery(target), nil, &r, nil)
	return r.Nodes, err
}

// Lookup runs a lookup of target with its trace. When it fails the result
// holds the trace as far as it went, if the node sent it.
func (c *Client) Lookup(ctx context.Context, target id.ID, kind api.LookupKind) (api.LookupResult, error) {
	q := keyQuery(target)
	if kind != "" {
		q.Set("type", string(kind))
	}
	var r api.LookupResult
	err := c.call(ctx, "GET", api.Base+"/lookup", q, nil, &r, &r)
	return r, err
}

// OpenAPI returns the node's OpenAPI document.
func (c *Client) OpenAPI(ctx context.Context) ([]byte, error) {
	resp, err := c.request(ctx, "GET", "/openapi.json", nil, nil, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
}

// ListenStream opens the event stream of key's changes. Close it, or end
// ctx, to stop.
func (c *Client) ListenStream(ctx context.Context, key id.ID) (*Stream[api.ValueEvent], error) {
	return openStream[api.ValueEvent](ctx, c, api.Base+"/values/events", keyQuery(key))
}

// EventStream opens the node's own event stream.
func (c *Client) EventStream(ctx context.Context) (*Stream[api.NodeEvent], error) {
	return openStream[api.NodeEvent](ctx, c, api.Base+"/events", nil)
}

// Listen implements api.Backend over ListenStream: the channel is closed
// when ctx ends or the stream does (see ListenStream for why it ended).
func (c *Client) Listen(ctx context.Context, key id.ID) (<-chan api.ValueEvent, error) {
	s, err := c.ListenStream(ctx, key)
	if err != nil {
		return nil, err
	}
	return pipe(ctx, s), nil
}

// Events implements api.Backend over EventStream.
func (c *Client) Events(ctx context.Context) (<-chan api.NodeEvent, error) {
	s, err := c.EventStream(ctx)
	if err != nil {
		return nil, err
	}
	return pipe(ctx, s), nil
}

func pipe[T any](ctx context.Context, s *Stream[T]) <-chan T {
	ch := make(chan T)
	go func() {
		defer close(ch)
		defer s.Close()
		for {
			ev, err := s.Next()
			if err != nil {
				return
			}
			select {
			case ch <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}

var _ api.Backend = (*Client)(nil)

// ErrBroken is returned by Stream.Next when the connection ended without
// the node ending the stream.
var ErrBroken = errors.New("client: the event stream broke off")
