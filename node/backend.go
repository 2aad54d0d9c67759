package node

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/dhtkit/dht"
	"github.com/dhtkit/dht/api"
	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/record"
)

// Backend is the HTTP API's view of a dht.Node (api.Backend): the daemon's
// node, with its join status, or a command's short-lived one.
type Backend struct {
	n       *dht.Node
	status  *Status // nil for a short-lived node
	started time.Time
	network api.Network
	version string
	// ttl turns the TTL a put asks for (zero: the default) into the one
	// sent, or refuses it; nil keeps dht.DefaultTTL for zero.
	ttl func(time.Duration) (time.Duration, error)
	// every is the period of the event stream's samples.
	every time.Duration

	mu   sync.Mutex
	hubs map[id.ID]*hub // one node subscription per listened-to key
}

// BackendOptions are the optional parts of a Backend.
type BackendOptions struct {
	Status  *Status     // the daemon's join status; nil for a short-lived node
	Network api.Network // the network's name and ID
	Version string      // the program's version
	// PutTTL maps a put's asked TTL (zero: none given) to the one used,
	// or refuses it (DaemonConfig.PutTTL); nil: dht.DefaultTTL for zero.
	PutTTL func(time.Duration) (time.Duration, error)
}

// NewBackend adapts n to the HTTP API.
func NewBackend(n *dht.Node, o BackendOptions) *Backend {
	return &Backend{n: n, status: o.Status, started: time.Now(), network: o.Network, version: o.Version, ttl: o.PutTTL, every: time.Second}
}

var _ api.Backend = (*Backend)(nil)

func apiErr(err error) error { return APIError(err) }

// APIError maps the library's errors to the HTTP API's sentinels, keeping
// the library's text.
func APIError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, dht.ErrConflict):
		return fmt.Errorf("%w (%w)", err, api.ErrConflict)
	case errors.Is(err, dht.ErrInvalid):
		return fmt.Errorf("%w (%w)", err, api.ErrInvalid)
	case errors.Is(err, dht.ErrQuorum):
		return fmt.Errorf("%w (%w)", err, api.ErrQuorum)
	case errors.Is(err, dht.ErrNoPeers):
		return fmt.Errorf("%w (%w)", err, api.ErrNoPeers)
	case errors.Is(err, dht.ErrNotFound):
		return fmt.Errorf("%w (%w)", err, api.ErrNotFound)
	case errors.Is(err, dht.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w (%w)", err, api.ErrTimeout)
	case errors.Is(err, dht.ErrClosed):
		return fmt.Errorf("%w (%w)", err, api.ErrUnavailable)
	}
	return err
}

func apiContact(c dht.Contact) api.Contact { return api.Contact{ID: c.ID, Addr: c.Addr} }

func apiContacts(cs []dht.Contact) []api.Contact {
	out := make([]api.Contact, len(cs))
	for i, c := range cs {
		out[i] = apiContact(c)
	}
	return out
}

func apiValue(v dht.Value) api.Value {
	out := api.Value{Data: v.Data, Publisher: v.Publisher, Version: v.Version, TTL: v.TTL, Envelope: v.Envelope}
	if v.Envelope {
		// The library verified it before returning it; the kind is its
		// first byte.
		if e, err := record.Parse(v.Data); err == nil {
			out.Kind = e.Kind.String()
		}
	}
	return out
}

func receipts(rs []dht.Receipt) []api.Receipt {
	out := make([]api.Receipt, len(rs))
	for i, r := range rs {
		o := api.NoAnswer
		switch r.Outcome {
		case dht.Accepted:
			o = api.Accepted
		case dht.Refused:
			o = api.Refused
		}
		out[i] = api.Receipt{Node: apiContact(r.Node), Outcome: o, TTL: r.TTL, Reason: r.Reason, Found: r.Found}
	}
	return out
}

// Info describes the node.
func (b *Backend) Info(context.Context) (api.Info, error) {
	st := b.n.Stats()
	info := api.Info{
		ID: b.n.ID(), Publisher: b.n.ID(), Version: b.version, Addrs: b.n.Addrs(), Network: b.network,
		Uptime: time.Since(b.started), Joined: st.TableSize > 0, ReadOnly: b.status == nil,
		Contacts: st.TableSize, Records: st.StoredValues, Bytes: int64(b.n.StoredBytes()),
	}
	if b.status != nil {
		s := b.status.Snapshot()
		info.Uptime, info.Joined = time.Since(s.Started), s.Joined
		for _, sd := range s.Seeds {
			info.Seeds = append(info.Seeds, api.Seed{Addr: sd.Seed, State: string(sd.State), LastError: sd.LastError})
		}
	}
	return info, nil
}

// Stats flattens dht.Stats into snake_case names.
func (b *Backend) Stats(context.Context) (api.Stats, error) {
	return flatten(b.n.Stats()), nil
}

func flatten(s dht.Stats) api.Stats {
	out := api.Stats{}
	v := reflect.ValueOf(s)
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
				} else if e.CanInt() {
					out[name+"_"+snake(k.String())] = uint64(max(e.Int(), 0))
				}
			}
		}
	}
	return out
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

// Table returns the routing table, one bucket per distance range.
func (b *Backend) Table(context.Context) (api.Table, error) {
	bs, k := b.n.Table()
	now := time.Now()
	t := api.Table{Self: b.n.ID(), K: k}
	for _, bk := range bs {
		ab := api.Bucket{Index: id.Bits - 1 - bk.Index, K: k, Replacements: bk.Replacements}
		if !bk.LookedUp.IsZero() {
			ab.LookedUp, ab.LookupAge = true, now.Sub(bk.LookedUp)
		}
		for _, c := range bk.Contacts {
			ab.Contacts = append(ab.Contacts, api.TableContact{Contact: apiContact(c.Contact), LastSeen: now.Sub(c.LastSeen), Verified: c.Verified, Failures: c.Failures})
		}
		t.Buckets = append(t.Buckets, ab)
	}
	// The API lists ranges by ascending distance exponent.
	sort.Slice(t.Buckets, func(i, j int) bool { return t.Buckets[i].Index < t.Buckets[j].Index })
	return t, nil
}

// Keys returns a page of the keys this node stores.
func (b *Backend) Keys(_ context.Context, q api.KeysQuery) (api.KeysPage, error) {
	var after dht.ID
	if q.After != nil {
		after = *q.After
	}
	keys, more := b.n.StoredKeys(after, q.Limit)
	now := time.Now()
	page := api.KeysPage{More: more}
	for _, k := range keys {
		ki := api.KeyInfo{Key: k.Key, Records: len(k.Records), Bytes: k.Bytes}
		pubs := map[dht.ID]bool{}
		for i, r := range k.Records {
			pubs[r.Publisher] = true
			left := r.Expires.Sub(now)
			if i == 0 || left < ki.EarliestExpiry {
				ki.EarliestExpiry = left
			}
			ki.LatestExpiry = max(ki.LatestExpiry, left)
		}
		ki.Publishers = len(pubs)
		page.Keys = append(page.Keys, ki)
	}
	return page, nil
}

func (b *Backend) putTTL(asked time.Duration) (time.Duration, error) {
	if b.ttl != nil {
		return b.ttl(asked)
	}
	if asked == 0 {
		return dht.DefaultTTL, nil
	}
	return asked, nil
}

// Put stores value under key.
func (b *Backend) Put(ctx context.Context, key id.ID, value []byte, o api.PutOptions) (api.PutResult, error) {
	ttl, err := b.putTTL(o.TTL)
	if err != nil {
		return api.PutResult{}, fmt.Errorf("%w (%w)", err, api.ErrBadRequest)
	}
	opts := []dht.PutOption{dht.WithTTL(ttl), dht.WithQuorum(o.Quorum)}
	if o.Envelope {
		return b.putEnvelope(ctx, key, value, o, ttl, opts)
	}
	if !o.Publisher.IsZero() {
		opts = append(opts, dht.WithPublisher(o.Publisher))
	}
	if o.Version != 0 {
		opts = append(opts, dht.WithVersion(o.Version))
	}
	if o.Keep {
		if b.status == nil {
			return api.PutResult{}, fmt.Errorf("a keep-alive needs a running node (dht node) to republish the value; this one exits after the put (%w)", api.ErrBadRequest)
		}
		opts = append(opts, dht.KeepAlive())
	}
	r, err := b.n.Put(ctx, key, value, opts...)
	return putResult(key, ttl, o.Quorum, r, err)
}

// putResult is a put's API result, the receipts of one below its quorum
// included.
func putResult(key id.ID, ttl time.Duration, quorum int, r dht.PutResult, err error) (api.PutResult, error) {
	var qe *dht.QuorumError
	if errors.As(err, &qe) {
		r = qe.Result
	}
	res := api.PutResult{Key: key, Publisher: r.Publisher, Version: r.Version, Asked: ttl, Receipts: receipts(r.Receipts), Stored: r.Stored, Local: r.Local, Quorum: quorum}
	return res, apiErr(err)
}

// putEnvelope stores a record envelope its publisher signed (api
// PutOptions.Envelope): the node never holds the private key.
func (b *Backend) putEnvelope(ctx context.Context, key id.ID, data []byte, o api.PutOptions, ttl time.Duration, opts []dht.PutOption) (api.PutResult, error) {
	if !o.Publisher.IsZero() || o.Keep {
		return api.PutResult{}, fmt.Errorf("an enveloped record names its own publisher, and only its signer can renew it: publisher and keep do not apply (%w)", api.ErrBadRequest)
	}
	r, err := b.n.PutEnvelope(ctx, key, o.Version, data, opts...)
	return putResult(key, ttl, o.Quorum, r, err)
}

// Get returns key's values.
func (b *Backend) Get(ctx context.Context, key id.ID) (api.GetResult, error) {
	r, err := b.n.Get(ctx, key)
	if err != nil {
		return api.GetResult{Key: key}, apiErr(err)
	}
	res := api.GetResult{Key: key, Holders: r.Holders, Incomplete: r.Incomplete}
	for _, v := range r.Values {
		res.Values = append(res.Values, apiValue(v))
	}
	return res, nil
}

// Delete withdraws the publisher's value of key.
func (b *Backend) Delete(ctx context.Context, key id.ID, o api.PutOptions) (api.DeleteResult, error) {
	var opts []dht.PutOption
	if !o.Publisher.IsZero() {
		opts = append(opts, dht.WithPublisher(o.Publisher))
	}
	if o.Version != 0 {
		opts = append(opts, dht.WithVersion(o.Version))
	}
	r, err := b.n.Delete(ctx, key, opts...)
	res := api.DeleteResult{Key: key, Publisher: r.Publisher, Version: r.Version, Receipts: receipts(r.Receipts), Found: r.Found}
	return res, apiErr(err)
}

// Listen reports every change of key's values until ctx ends. All the
// API's subscribers to one key share one subscription of the node: a
// thousand browsers watching a key cost the network one subscription, not a
// thousand. A subscriber that joins late is first told the latest value of
// each publisher seen so far.
func (b *Backend) Listen(ctx context.Context, key id.ID) (<-chan api.ValueEvent, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	h := b.hubs[key]
	if h == nil {
		hctx, cancel := context.WithCancel(context.Background())
		ch, err := b.n.Listen(hctx, key)
		if err != nil {
			cancel()
			return nil, apiErr(err)
		}
		h = &hub{cancel: cancel, subs: map[chan api.ValueEvent]struct{}{}, latest: map[dht.ID]api.ValueEvent{}, done: make(chan struct{})}
		if b.hubs == nil {
			b.hubs = map[id.ID]*hub{}
		}
		b.hubs[key] = h
		go b.pump(key, h, ch)
	}
	out := make(chan api.ValueEvent, hubBuffer)
	for _, e := range h.latest {
		if e.Kind != api.EventDelete {
			e.Kind = api.EventPut
			select {
			case out <- e:
			default:
			}
		}
	}
	h.subs[out] = struct{}{}
	go func() {
		<-ctx.Done()
		b.mu.Lock()
		defer b.mu.Unlock()
		if _, ok := h.subs[out]; ok {
			delete(h.subs, out)
			close(out)
		}
		if len(h.subs) == 0 && b.hubs[key] == h {
			delete(b.hubs, key)
			h.cancel()
		}
	}()
	return out, nil
}

// hubBuffer is the events one API subscriber may fall behind by; the API
// server has its own bounded buffer behind it, and past both the
// subscriber misses events (the server tells it how many).
const hubBuffer = 64

// maxLatest bounds the publishers a hub remembers for late subscribers.
const maxLatest = 1024

// hub is the node's one subscription to a key and the API's subscribers
// to it.
type hub struct {
	cancel func()
	subs   map[chan api.ValueEvent]struct{}
	latest map[dht.ID]api.ValueEvent
	done   chan struct{} // closed when the node's subscription has ended
}

// pump hands the node's events for key to every subscriber of h, never
// waiting for a slow one, until the node's subscription ends.
func (b *Backend) pump(key id.ID, h *hub, ch <-chan dht.Event) {
	defer close(h.done)
	for e := range ch {
		k := api.EventPut
		switch e.Kind {
		case dht.EventReplace:
			k = api.EventReplace
		case dht.EventDelete:
			k = api.EventDelete
		}
		ev := api.ValueEvent{Kind: k, Key: e.Key, Value: apiValue(e.Value)}
		b.mu.Lock()
		if _, ok := h.latest[e.Value.Publisher]; ok || len(h.latest) < maxLatest {
			h.latest[e.Value.Publisher] = ev
		}
		for sub := range h.subs {
			select {
			case sub <- ev:
			default: // a slow subscriber misses this one
			}
		}
		b.mu.Unlock()
	}
	// The node closed: end every subscriber's stream.
	b.mu.Lock()
	defer b.mu.Unlock()
	for sub := range h.subs {
		delete(h.subs, sub)
		close(sub)
	}
	if b.hubs[key] == h {
		delete(b.hubs, key)
	}
}

// Ping asks the node at addr whether it is alive.
func (b *Backend) Ping(ctx context.Context, addr string) (api.PingResult, error) {
	start := time.Now()
	c, err := b.n.Ping(ctx, addr)
	if err != nil {
		return api.PingResult{}, apiErr(err)
	}
	return api.PingResult{Contact: apiContact(c), RTT: time.Since(start)}, nil
}

// FindNode returns the K closest nodes to target that answered.
func (b *Backend) FindNode(ctx context.Context, target id.ID) ([]api.Contact, error) {
	cs, err := b.n.FindNode(ctx, target)
	return apiContacts(cs), apiErr(err)
}

// Lookup runs a traced lookup and groups its requests by round.
func (b *Backend) Lookup(ctx context.Context, target id.ID, kind api.LookupKind) (api.LookupResult, error) {
	tr, err := b.n.Lookup(ctx, target, kind == api.LookupValue)
	if err != nil {
		return api.LookupResult{Target: target, Kind: kind}, apiErr(err)
	}
	res := api.LookupResult{Target: target, Kind: kind, Duration: tr.Duration, Closest: apiContacts(tr.Closest)}
	for _, v := range tr.Values {
		res.Values = append(res.Values, apiValue(v))
	}
	// Round 0 holds the requests that never answered: they go with the
	// round that was running when they were sent.
	round := 1
	for _, q := range tr.Queries {
		r := q.Round
		if r == 0 {
			r = round
		} else {
			round = max(round, r)
		}
		for len(res.Rounds) < r {
			res.Rounds = append(res.Rounds, api.Round{})
		}
		aq := api.Query{Node: apiContact(q.To), Start: q.Sent, Duration: q.Took, Contacts: apiContacts(q.Found), Values: q.Records}
		switch q.Outcome {
		case "answered":
			aq.Answer = api.AnswerContacts
			if q.Records > 0 {
				aq.Answer = api.AnswerValues
			}
		case "refused":
			aq.Answer, aq.Error = api.AnswerError, "refused"
		default:
			aq.Answer = api.AnswerTimeout
		}
		res.Rounds[r-1].Queries = append(res.Rounds[r-1].Queries, aq)
	}
	if kind == api.LookupValue && len(res.Values) == 0 {
		return res, api.ErrNotFound
	}
	return res, nil
}

// Events streams a stats sample every second, and the daemon's notable
// events as they happen, until ctx ends.
func (b *Backend) Events(ctx context.Context) (<-chan api.NodeEvent, error) {
	out := make(chan api.NodeEvent, 16)
	go func() {
		defer close(out)
		t := time.NewTicker(b.every)
		defer t.Stop()
		prevStats := b.n.Stats()
		prev, prevAt := flatten(prevStats), time.Now()
		var changed <-chan struct{}
		seen := time.Now()
		if b.status != nil {
			changed = b.status.Changed()
		}
		send := func(e api.NodeEvent) bool {
			select {
			case out <- e:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				curStats := b.n.Stats()
				cur := flatten(curStats)
				smp := sample(prev, cur, now.Sub(prevAt))
				smp.Latency = latency(prevStats.Latency, curStats.Latency)
				if !send(api.NodeEvent{Kind: "stats", Time: now, Sample: smp}) {
					return
				}
				prev, prevStats, prevAt = cur, curStats, now
			case <-changed:
				changed = b.status.Changed()
				for _, e := range b.status.Snapshot().Events {
					if e.Time.After(seen) {
						seen = e.Time
						if !send(api.NodeEvent{Kind: e.Kind, Time: e.Time, Message: e.Text}) {
							return
						}
					}
				}
			}
		}
	}()
	return out, nil
}

// sample is the rates of the counters that moved between two snapshots,
// and the drops among them.
func sample(prev, cur api.Stats, d time.Duration) *api.Sample {
	s := &api.Sample{Interval: d, Rates: map[string]float64{}, Drops: map[string]uint64{}}
	secs := d.Seconds()
	for k, v := range cur {
		if v < prev[k] || secs <= 0 {
			continue // a gauge that fell
		}
		delta := v - prev[k]
		switch k {
		case "packets_in", "packets_out", "requests", "responses", "retries", "timeouts", "stores_accepted", "stores_refused":
			s.Rates[k] = float64(delta) / secs
		case "malformed", "wrong_network", "unmatched", "rpc_full":
			s.Drops[k] = delta
		default:
			if strings.HasPrefix(k, "served_") {
				s.Rates[k] = float64(delta) / secs
			}
		}
	}
	return s
}

// latency estimates the distribution of the round trips answered between
// two snapshots of the node's latency histograms (all request groups
// together), from the difference of their bucket counts. A quantile is
// placed by linear interpolation inside the bucket it falls in, as
// Prometheus's histogram_quantile does, so it is only as fine as the
// buckets (1 ms, 2.5 ms, 5 ms...); Max is the upper bound of the highest
// bucket that gained a count, and past the last bound (30 s) every figure
// is that bound. No answer in the interval gives zeros.
func latency(prev, cur map[string]dht.Histogram) api.Latency {
	var bounds []float64
	var counts []uint64
	for g, h := range cur {
		if len(h.Counts) != len(h.Bounds)+1 {
			continue
		}
		if bounds == nil {
			bounds, counts = h.Bounds, make([]uint64, len(h.Counts))
		} else if !slices.Equal(bounds, h.Bounds) {
			continue // groups share their bounds; one that does not is left out
		}
		p := prev[g]
		for i, c := range h.Counts {
			if i < len(p.Counts) && len(p.Counts) == len(h.Counts) {
				c -= min(c, p.Counts[i]) // a counter never falls; if it did, count none
			}
			counts[i] += c
		}
	}
	var total uint64
	top := -1
	for i, c := range counts {
		total += c
		if c > 0 {
			top = i
		}
	}
	if total == 0 {
		return api.Latency{}
	}
	secs := func(v float64) time.Duration { return time.Duration(v * float64(time.Second)) }
	upper := func(i int) float64 { return bounds[min(i, len(bounds)-1)] }
	quantile := func(q float64) time.Duration {
		rank := q * float64(total)
		var below uint64
		for i, c := range counts {
			if c == 0 || float64(below+c) < rank {
				below += c
				continue
			}
			if i >= len(bounds) {
				return secs(upper(i))
			}
			lo := 0.0
			if i > 0 {
				lo = bounds[i-1]
			}
			return secs(lo + (bounds[i]-lo)*(rank-float64(below))/float64(c))
		}
		return secs(upper(top))
	}
	return api.Latency{P50: quantile(0.5), P90: quantile(0.9), P99: quantile(0.99), Max: secs(upper(top))}
}
