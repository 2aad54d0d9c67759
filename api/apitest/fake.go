// Package apitest is a fake api.Backend: a small in-memory node, for the
// tests of the API, the client and the command line.
package apitest

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/dhtkit/dht/api"
	"github.com/dhtkit/dht/id"
)

// Fake is an api.Backend holding values in memory. It pretends to store
// each value on Nodes nodes, NoAnswer of which do not answer, and grants
// at most MaxTTL. Fail makes a method fail. Safe for concurrent use.
type Fake struct {
	mu        sync.Mutex
	Self      api.Contact
	Publisher id.ID
	Nodes     int           // nodes a put is sent to (default 20)
	NoAnswer  int           // of which do not answer
	Refuse    int           // of which refuse
	MaxTTL    time.Duration // the longest TTL granted (default 24h)
	Closest   []api.Contact // what FindNode and Lookup answer
	TableV    api.Table
	InfoV     api.Info
	StatsV    api.Stats

	values    map[id.ID][]api.Value
	version   uint64
	fail      map[string]error
	block     map[string]bool
	listeners map[*listener]struct{}
	events    map[chan api.NodeEvent]struct{}
	changed   chan struct{}
}

type listener struct {
	key id.ID
	ch  chan api.ValueEvent
	ctx context.Context
}

// New returns a Fake with a few contacts and a routing table.
func New() *Fake {
	f := &Fake{
		Self:      api.Contact{ID: id.Key("self"), Addr: netip.MustParseAddrPort("127.0.0.1:4000")},
		Publisher: id.Key("publisher"),
		Nodes:     20,
		MaxTTL:    24 * time.Hour,
		values:    map[id.ID][]api.Value{},
		fail:      map[string]error{},
		block:     map[string]bool{},
		listeners: map[*listener]struct{}{},
		events:    map[chan api.NodeEvent]struct{}{},
		changed:   make(chan struct{}),
	}
	for i := range 3 {
		f.Closest = append(f.Closest, api.Contact{ID: id.Key(fmt.Sprint("node", i)), Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(4001+i))})
	}
	f.TableV = api.Table{Self: f.Self.ID, K: 20, Buckets: []api.Bucket{
		{Index: 157, K: 20, Contacts: []api.TableContact{{Contact: f.Closest[0], LastSeen: 3 * time.Second, Verified: true}}},
		{Index: 158, K: 20, Contacts: []api.TableContact{{Contact: f.Closest[1], LastSeen: time.Minute, Verified: true}, {Contact: f.Closest[2], LastSeen: 20 * time.Minute, Failures: 2}}, LookedUp: true, LookupAge: 2 * time.Minute},
		{Index: 159, K: 20, Replacements: 1, LookedUp: true, LookupAge: 5 * time.Second},
	}}
	f.InfoV = api.Info{ID: f.Self.ID, Publisher: f.Publisher, Version: "test", Addrs: []netip.AddrPort{f.Self.Addr},
		Network: api.Network{Name: "test", ID: 7}, Uptime: time.Hour, Joined: true,
		Seeds:    []api.Seed{{Addr: "127.0.0.1:4001", State: "up"}, {Addr: "seed.invalid:4000", State: "unresolved", LastError: "no such host"}},
		Contacts: 3}
	f.StatsV = api.Stats{"packets_in": 10, "packets_out": 12, "timeouts": 1}
	return f
}

// Fail makes method (such as "Get") return err; nil clears it.
func (f *Fake) Fail(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.fail, method)
	} else {
		f.fail[method] = err
	}
}

// Block makes method wait for its context to end, then return its error.
func (f *Fake) Block(method string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.block[method] = true
}

func (f *Fake) err(ctx context.Context, method string) error {
	f.mu.Lock()
	err, block := f.fail[method], f.block[method]
	f.mu.Unlock()
	if block {
		<-ctx.Done()
		return ctx.Err()
	}
	return err
}

// Info implements api.Backend.
func (f *Fake) Info(ctx context.Context) (api.Info, error) {
	if err := f.err(ctx, "Info"); err != nil {
		return api.Info{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	i := f.InfoV
	for _, vs := range f.values {
		i.Records += len(vs)
		for _, v := range vs {
			i.Bytes += int64(len(v.Data))
		}
	}
	return i, nil
}

// Stats implements api.Backend.
func (f *Fake) Stats(ctx context.Context) (api.Stats, error) {
	if err := f.err(ctx, "Stats"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s := api.Stats{}
	for k, v := range f.StatsV {
		s[k] = v
	}
	return s, nil
}

// Table implements api.Backend.
func (f *Fake) Table(ctx context.Context) (api.Table, error) {
	if err := f.err(ctx, "Table"); err != nil {
		return api.Table{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.TableV, nil
}

// Keys implements api.Backend.
func (f *Fake) Keys(ctx context.Context, q api.KeysQuery) (api.KeysPage, error) {
	if err := f.err(ctx, "Keys"); err != nil {
		return api.KeysPage{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var keys []id.ID
	for k := range f.values {
		if q.After == nil || k.Compare(*q.After) > 0 {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].Compare(keys[j]) < 0 })
	var p api.KeysPage
	for i, k := range keys {
		if i == q.Limit {
			p.More = true
			break
		}
		vs := f.values[k]
		ki := api.KeyInfo{Key: k, Records: len(vs), Publishers: len(vs), EarliestExpiry: vs[0].TTL, LatestExpiry: vs[0].TTL}
		for _, v := range vs {
			ki.Bytes += len(v.Data)
			ki.EarliestExpiry = min(ki.EarliestExpiry, v.TTL)
			ki.LatestExpiry = max(ki.LatestExpiry, v.TTL)
		}
		p.Keys = append(p.Keys, ki)
	}
	return p, nil
}

// receipts pretends to send to f.Nodes nodes.
func (f *Fake) receipts(ttl time.Duration) ([]api.Receipt, int) {
	var rs []api.Receipt
	stored := 0
	for i := range f.Nodes {
		c := api.Contact{ID: id.Key(fmt.Sprint("replica", i)), Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 2}), uint16(5000+i))}
		switch {
		case i < f.NoAnswer:
			rs = append(rs, api.Receipt{Node: c, Outcome: api.NoAnswer})
		case i < f.NoAnswer+f.Refuse:
			rs = append(rs, api.Receipt{Node: c, Outcome: api.Refused, Reason: "store: key full (64 of 64 records)"})
		default:
			rs = append(rs, api.Receipt{Node: c, Outcome: api.Accepted, TTL: ttl, Found: true})
			stored++
		}
	}
	return rs, stored
}

// Put implements api.Backend.
func (f *Fake) Put(ctx context.Context, key id.ID, value []byte, o api.PutOptions) (api.PutResult, error) {
	if err := f.err(ctx, "Put"); err != nil {
		return api.PutResult{}, err
	}
	f.mu.Lock()
	if o.TTL == 0 {
		o.TTL = time.Hour
	}
	if o.Publisher.IsZero() {
		o.Publisher = f.Publisher
	}
	f.version++
	if o.Version == 0 {
		o.Version = f.version
	}
	granted := min(o.TTL, f.MaxTTL)
	rs, stored := f.receipts(granted)
	res := api.PutResult{Key: key, Publisher: o.Publisher, Version: o.Version, Asked: o.TTL, Receipts: rs, Stored: stored, Quorum: o.Quorum}
	if stored < o.Quorum {
		f.mu.Unlock()
		return res, fmt.Errorf("put: %d of %d accepted: %w", stored, o.Quorum, api.ErrQuorum)
	}
	v := api.Value{Data: bytes.Clone(value), Publisher: o.Publisher, Version: o.Version, TTL: granted}
	if o.Envelope && len(value) > 0 {
		// The fake checks nothing: it keeps the flag and names the kind
		// by the envelope's first byte, as a node reports it.
		v.Envelope = true
		v.Kind = map[byte]string{1: "immutable", 2: "signed", 3: "typed"}[value[0]]
	}
	kind := api.EventPut
	vs := f.values[key]
	for i := range vs {
		if vs[i].Publisher == o.Publisher {
			vs = append(vs[:i], vs[i+1:]...)
			kind = api.EventReplace
			break
		}
	}
	vs = append([]api.Value{v}, vs...)
	f.values[key] = vs
	ls := f.listenersOf(key)
	f.mu.Unlock()
	f.notify(ls, api.ValueEvent{Kind: kind, Key: key, Value: v})
	return res, nil
}

func (f *Fake) listenersOf(key id.ID) []*listener {
	var ls []*listener
	for l := range f.listeners {
		if l.key == key {
			ls = append(ls, l)
		}
	}
	return ls
}

// notify sends ev to each listener, waiting for it to take the event
// unless its context ends.
func (f *Fake) notify(ls []*listener, ev api.ValueEvent) {
	for _, l := range ls {
		select {
		case l.ch <- ev:
		case <-l.ctx.Done():
		}
	}
}

// Get implements api.Backend.
func (f *Fake) Get(ctx context.Context, key id.ID) (api.GetResult, error) {
	if err := f.err(ctx, "Get"); err != nil {
		return api.GetResult{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	vs := f.values[key]
	if len(vs) == 0 {
		return api.GetResult{}, fmt.Errorf("get %s: %w", key.Short(), api.ErrNotFound)
	}
	out := make([]api.Value, len(vs))
	copy(out, vs)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Version > out[j].Version })
	return api.GetResult{Key: key, Values: out, Holders: f.Nodes - f.NoAnswer}, nil
}

// Delete implements api.Backend.
func (f *Fake) Delete(ctx context.Context, key id.ID, o api.PutOptions) (api.DeleteResult, error) {
	if err := f.err(ctx, "Delete"); err != nil {
		return api.DeleteResult{}, err
	}
	f.mu.Lock()
	if o.Publisher.IsZero() {
		o.Publisher = f.Publisher
	}
	f.version++
	res := api.DeleteResult{Key: key, Publisher: o.Publisher, Version: f.version}
	vs := f.values[key]
	found := -1
	for i := range vs {
		if vs[i].Publisher == o.Publisher {
			found = i
		}
	}
	rs, n := f.receipts(time.Hour)
	if found < 0 {
		for i := range rs {
			rs[i].Found = false
		}
		res.Receipts = rs
		f.mu.Unlock()
		return res, fmt.Errorf("delete: no node held a value of publisher %s: %w", o.Publisher.Short(), api.ErrNotFound)
	}
	res.Receipts, res.Found = rs, n
	v := vs[found]
	f.values[key] = append(vs[:found], vs[found+1:]...)
	if len(f.values[key]) == 0 {
		delete(f.values, key)
	}
	ls := f.listenersOf(key)
	f.mu.Unlock()
	f.notify(ls, api.ValueEvent{Kind: api.EventDelete, Key: key, Value: api.Value{Publisher: v.Publisher, Version: res.Version, TTL: time.Hour}})
	return res, nil
}

// Listen implements api.Backend. The channel is unbuffered: a Put returns
// once every listener took its event.
func (f *Fake) Listen(ctx context.Context, key id.ID) (<-chan api.ValueEvent, error) {
	if err := f.err(ctx, "Listen"); err != nil {
		return nil, err
	}
	l := &listener{key: key, ch: make(chan api.ValueEvent), ctx: ctx}
	f.mu.Lock()
	f.listeners[l] = struct{}{}
	f.changedLocked()
	f.mu.Unlock()
	go func() {
		<-ctx.Done()
		f.mu.Lock()
		delete(f.listeners, l)
		f.changedLocked()
		f.mu.Unlock()
	}()
	return l.ch, nil
}

// Events implements api.Backend: Emit sends to the streams it opened.
func (f *Fake) Events(ctx context.Context) (<-chan api.NodeEvent, error) {
	if err := f.err(ctx, "Events"); err != nil {
		return nil, err
	}
	ch := make(chan api.NodeEvent)
	f.mu.Lock()
	f.events[ch] = struct{}{}
	f.changedLocked()
	f.mu.Unlock()
	go func() {
		<-ctx.Done()
		f.mu.Lock()
		delete(f.events, ch)
		f.changedLocked()
		f.mu.Unlock()
	}()
	return ch, nil
}

// Emit sends ev to every event stream open, waiting for each to take it.
func (f *Fake) Emit(ev api.NodeEvent) {
	f.mu.Lock()
	var chs []chan api.NodeEvent
	for ch := range f.events {
		chs = append(chs, ch)
	}
	f.mu.Unlock()
	for _, ch := range chs {
		ch <- ev
	}
}

// EmitTo sends ev to the listeners of key (as a Put would).
func (f *Fake) EmitTo(key id.ID, ev api.ValueEvent) {
	f.mu.Lock()
	ls := f.listenersOf(key)
	f.mu.Unlock()
	f.notify(ls, ev)
}

func (f *Fake) changedLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// Subscribed returns the number of Listen and Events subscriptions open.
func (f *Fake) Subscribed() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.listeners) + len(f.events)
}

// WaitSubscribed waits until n Listen and Events subscriptions are open,
// for at most d; it reports whether they were.
func (f *Fake) WaitSubscribed(n int, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		f.mu.Lock()
		have, ch := len(f.listeners)+len(f.events), f.changed
		f.mu.Unlock()
		if have == n {
			return true
		}
		select {
		case <-ch:
		case <-t.C:
			return false
		}
	}
}

// Ping implements api.Backend: it answers for Self's and Closest's
// addresses, and times out for any other.
func (f *Fake) Ping(ctx context.Context, addr string) (api.PingResult, error) {
	if err := f.err(ctx, "Ping"); err != nil {
		return api.PingResult{}, err
	}
	for _, c := range append([]api.Contact{f.Self}, f.Closest...) {
		if c.Addr.String() == addr {
			return api.PingResult{Contact: c, RTT: 1500 * time.Microsecond}, nil
		}
	}
	return api.PingResult{}, fmt.Errorf("ping %s: %w", addr, api.ErrTimeout)
}

// FindNode implements api.Backend.
func (f *Fake) FindNode(ctx context.Context, target id.ID) ([]api.Contact, error) {
	if err := f.err(ctx, "FindNode"); err != nil {
		return nil, err
	}
	return f.closest(target), nil
}

func (f *Fake) closest(target id.ID) []api.Contact {
	cs := append([]api.Contact(nil), f.Closest...)
	sort.Slice(cs, func(i, j int) bool { return id.CompareDistance(target, cs[i].ID, cs[j].ID) < 0 })
	return cs
}

// Lookup implements api.Backend: two rounds, the second with one timeout.
// A value lookup of a key with no value fails with ErrNotFound and the trace.
func (f *Fake) Lookup(ctx context.Context, target id.ID, kind api.LookupKind) (api.LookupResult, error) {
	if err := f.err(ctx, "Lookup"); err != nil {
		return api.LookupResult{}, err
	}
	cs := f.closest(target)
	res := api.LookupResult{Target: target, Kind: kind, Duration: 40 * time.Millisecond, Closest: cs, Rounds: []api.Round{
		{Queries: []api.Query{{Node: cs[0], Duration: 2 * time.Millisecond, Answer: api.AnswerContacts, Contacts: cs[1:]}}},
		{Queries: []api.Query{
			{Node: cs[1], Start: 2 * time.Millisecond, Duration: 3 * time.Millisecond, Answer: api.AnswerContacts, Contacts: cs[:1]},
			{Node: cs[2], Start: 2 * time.Millisecond, Duration: 38 * time.Millisecond, Answer: api.AnswerTimeout, Contacts: []api.Contact{}},
		}},
	}}
	if kind == api.LookupValue {
		f.mu.Lock()
		res.Values = append([]api.Value(nil), f.values[target]...)
		f.mu.Unlock()
		if len(res.Values) == 0 {
			return res, api.ErrNotFound
		}
		res.Rounds[1].Queries[0].Answer, res.Rounds[1].Queries[0].Values = api.AnswerValues, len(res.Values)
	}
	return res, nil
}

var _ api.Backend = (*Fake)(nil)
