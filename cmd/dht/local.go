package main

// The short-lived node a command runs when no node is running: an
// api.Backend over the library, so that the commands print its results as
// they print a running node's.
//
// TODO(lead): this adapts today's dht API (def6e77). When the storage API
// lands, switch it (or replace it with the node's own dht.Node -> api.Backend
// adapter): Put with WithTTL/WithQuorum/WithPublisher and its receipts, Get's
// publishers and versions, Delete, Listen, and the lookup trace. Everything
// marked "today" below is what the old API cannot say.

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"
	"unicode"

	"github.com/dhtkit/dht"
	"github.com/dhtkit/dht/api"
	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/node"
)

// local is a short-lived client node.
type local struct {
	n       *dht.Node
	k       int
	started time.Time
}

func startLocal(ctx context.Context, f *cliFlags) (*local, error) {
	cfg := node.ClientConfig(f.seeds, f.network.v)
	f.apply(&cfg)
	n, err := node.Client(ctx, cfg, f.seeds)
	if err != nil {
		return nil, localErr(err)
	}
	return &local{n: n, k: cfg.K, started: time.Now()}, nil
}

func (l *local) Close() { l.n.Close() }

// needsNode is the error of what a short-lived node cannot do today.
func needsNode(what string) error {
	return &api.Error{Code: api.CodeUnavailable, Message: what + " needs a running node (dht node), not a short-lived one: give -api ADDR, or run dht node"}
}

// localErr maps the library's errors to the API's.
func localErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, dht.ErrNoPeers):
		return fmt.Errorf("%w (%w)", err, api.ErrNoPeers)
	case errors.Is(err, dht.ErrNotFound):
		return fmt.Errorf("%w (%w)", err, api.ErrNotFound)
	case errors.Is(err, dht.ErrTimeout):
		return fmt.Errorf("%w (%w)", err, api.ErrTimeout)
	case errors.Is(err, dht.ErrClosed):
		return fmt.Errorf("%w (%w)", err, api.ErrUnavailable)
	}
	return err
}

func contact(c dht.Contact) api.Contact { return api.Contact{ID: c.ID, Addr: c.Addr} }

func contacts(cs []dht.Contact) []api.Contact {
	out := make([]api.Contact, len(cs))
	for i, c := range cs {
		out[i] = contact(c)
	}
	return out
}

func (l *local) Info(context.Context) (api.Info, error) {
	return api.Info{ID: l.n.ID(), Publisher: l.n.ID(), Version: version(), Addrs: l.n.Addrs(),
		Uptime: time.Since(l.started), Joined: true, ReadOnly: true, Contacts: len(l.n.Contacts())}, nil
}

// Stats flattens dht.Stats into snake_case names, whatever its fields.
func (l *local) Stats(context.Context) (api.Stats, error) {
	out := api.Stats{}
	v := reflect.ValueOf(l.n.Stats())
	for i := range v.NumField() {
		name, f := snake(v.Type().Field(i).Name), v.Field(i)
		switch f.Kind() {
		case reflect.Int, reflect.Int64, reflect.Int32:
			out[name] = uint64(max(f.Int(), 0))
		case reflect.Uint, reflect.Uint64, reflect.Uint32:
			out[name] = f.Uint()
		case reflect.Map:
			for _, k := range f.MapKeys() {
				if e := f.MapIndex(k); e.CanUint() {
					out[name+"_"+snake(k.String())] = e.Uint()
				}
			}
		}
	}
	return out, nil
}

// snake turns "PacketsIn" or "FIND_NODE" into "packets_in", "find_node".
func snake(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i, r := range rs {
		if unicode.IsUpper(r) && i > 0 && (unicode.IsLower(rs[i-1]) || (i+1 < len(rs) && unicode.IsLower(rs[i+1]))) && rs[i-1] != '_' {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// Table groups the contacts by distance range; today the library says
// nothing of their freshness.
func (l *local) Table(context.Context) (api.Table, error) {
	self := l.n.ID()
	t := api.Table{Self: self, K: l.k}
	byIndex := map[int]int{}
	for _, c := range l.n.Contacts() {
		i := id.Bits - 1 - self.CommonPrefixLen(c.ID)
		j, ok := byIndex[i]
		if !ok {
			j = len(t.Buckets)
			byIndex[i] = j
			t.Buckets = append(t.Buckets, api.Bucket{Index: i, K: t.K})
		}
		t.Buckets[j].Contacts = append(t.Buckets[j].Contacts, api.TableContact{Contact: contact(c)})
	}
	for i := 1; i < len(t.Buckets); i++ { // few buckets: insertion sort by index
		for j := i; j > 0 && t.Buckets[j].Index < t.Buckets[j-1].Index; j-- {
			t.Buckets[j], t.Buckets[j-1] = t.Buckets[j-1], t.Buckets[j]
		}
	}
	return t, nil
}

// Keys: a short-lived node is read-only and stores nothing.
func (l *local) Keys(context.Context, api.KeysQuery) (api.KeysPage, error) {
	return api.KeysPage{}, nil
}

func (l *local) Put(ctx context.Context, key id.ID, value []byte, o api.PutOptions) (api.PutResult, error) {
	if !o.Publisher.IsZero() || o.Version != 0 {
		return api.PutResult{}, needsNode("a put with -publisher") // today: no publishers
	}
	if o.TTL == 0 {
		o.TTL = time.Hour
	}
	r, err := l.n.Put(ctx, key, value, o.TTL)
	res := api.PutResult{Key: key, Asked: o.TTL, Stored: r.Stored, Local: r.Local, Quorum: o.Quorum}
	// Today the result names only the nodes that refused.
	for range r.Stored {
		res.Receipts = append(res.Receipts, api.Receipt{Outcome: api.Accepted, TTL: o.TTL})
	}
	for _, ref := range r.Refused {
		res.Receipts = append(res.Receipts, api.Receipt{Node: contact(ref.Node), Outcome: api.Refused, Reason: ref.Text})
	}
	for range r.Failed {
		res.Receipts = append(res.Receipts, api.Receipt{Outcome: api.NoAnswer})
	}
	if err != nil {
		return res, localErr(err)
	}
	if res.Stored < o.Quorum {
		return res, fmt.Errorf("stored on %d nodes, fewer than the quorum of %d: %w", res.Stored, o.Quorum, api.ErrQuorum)
	}
	return res, nil
}

func (l *local) Get(ctx context.Context, key id.ID) (api.GetResult, error) {
	r, err := l.n.Get(ctx, key)
	if err != nil {
		return api.GetResult{}, localErr(err)
	}
	res := api.GetResult{Key: key, Holders: r.Holders, Incomplete: r.Incomplete}
	for i, v := range r.Values {
		// Today: no publisher or version.
		res.Values = append(res.Values, api.Value{Data: v, TTL: r.TTLs[i]})
	}
	return res, nil
}

func (l *local) Delete(context.Context, id.ID, api.PutOptions) (api.DeleteResult, error) {
	return api.DeleteResult{}, needsNode("dht del") // today: no delete
}

func (l *local) Listen(context.Context, id.ID) (<-chan api.ValueEvent, error) {
	return nil, needsNode("dht listen") // today: no listen
}

func (l *local) Events(context.Context) (<-chan api.NodeEvent, error) {
	return nil, needsNode("the event stream")
}

func (l *local) Ping(ctx context.Context, addr string) (api.PingResult, error) {
	start := time.Now()
	c, err := l.n.Ping(ctx, addr)
	if err != nil {
		return api.PingResult{}, localErr(err)
	}
	return api.PingResult{Contact: contact(c), RTT: time.Since(start)}, nil
}

func (l *local) FindNode(ctx context.Context, target id.ID) ([]api.Contact, error) {
	cs, err := l.n.FindNode(ctx, target)
	return contacts(cs), localErr(err)
}

// Lookup runs the lookup; today the library keeps no trace of it.
func (l *local) Lookup(ctx context.Context, target id.ID, kind api.LookupKind) (api.LookupResult, error) {
	start := time.Now()
	res := api.LookupResult{Target: target, Kind: kind}
	var err error
	if kind == api.LookupValue {
		var g api.GetResult
		g, err = l.Get(ctx, target)
		res.Values = g.Values
	} else {
		res.Closest, err = l.FindNode(ctx, target)
	}
	res.Duration = time.Since(start)
	return res, err
}

var _ api.Backend = (*local)(nil)
