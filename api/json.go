package api

// The JSON form of the API's types, what docs/openapi.json describes: IDs
// as 40 lowercase hex digits, durations as seconds (a number, fractional),
// addresses as "host:port", values as base64 "data" with "text" beside it
// when the bytes are printable UTF-8. Each type marshals itself, so that the
// server and the client (which decodes into the same types) cannot drift.

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/dhtkit/dht/id"
)

// hexID is an ID in its JSON form.
type hexID id.ID

func (h hexID) MarshalText() ([]byte, error) {
	b := make([]byte, 2*id.Len)
	hex.Encode(b, h[:])
	return b, nil
}

func (h *hexID) UnmarshalText(b []byte) error {
	x, err := ParseID(string(b))
	*h = hexID(x)
	return err
}

// ParseID parses an ID's 40 hex digits (either case), with an error that
// does not repeat a long input.
func ParseID(s string) (id.ID, error) {
	var x id.ID
	if len(s) != 2*id.Len {
		return x, fmt.Errorf("an ID is %d hex digits, not %d characters", 2*id.Len, len(s))
	}
	if _, err := hex.Decode(x[:], []byte(s)); err != nil {
		return x, fmt.Errorf("an ID is %d hex digits: %q is not hexadecimal", 2*id.Len, s)
	}
	return x, nil
}

// seconds is a duration in its JSON form.
type seconds time.Duration

func (s seconds) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(s).Seconds())
}

func (s *seconds) UnmarshalJSON(b []byte) error {
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	if math.IsNaN(f) || math.Abs(f) > math.MaxInt64/1e9 {
		return fmt.Errorf("%v seconds is out of range", f)
	}
	*s = seconds(math.Round(f * 1e9))
	return nil
}

// IsText reports whether b is valid UTF-8 made of printable characters,
// tabs and line breaks: what the API also sends as a value's "text".
func IsText(b []byte) bool {
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n <= 1 {
			return false
		}
		if !unicode.IsPrint(r) && r != '\t' && r != '\n' && r != '\r' {
			return false
		}
		b = b[n:]
	}
	return true
}

type contactJSON struct {
	ID   hexID          `json:"id"`
	Addr netip.AddrPort `json:"addr"`
}

// MarshalJSON encodes c as {"id","addr"}.
func (c Contact) MarshalJSON() ([]byte, error) {
	return json.Marshal(contactJSON{hexID(c.ID), c.Addr})
}

// UnmarshalJSON decodes what MarshalJSON encodes.
func (c *Contact) UnmarshalJSON(b []byte) error {
	var w contactJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*c = Contact{id.ID(w.ID), w.Addr}
	return nil
}

type infoJSON struct {
	ID        hexID            `json:"id"`
	Publisher hexID            `json:"publisher"`
	Version   string           `json:"version"`
	Addrs     []netip.AddrPort `json:"addrs"`
	Network   networkJSON      `json:"network"`
	Uptime    seconds          `json:"uptime_seconds"`
	Joined    bool             `json:"joined"`
	ReadOnly  bool             `json:"read_only"`
	Seeds     []Seed           `json:"seeds"`
	Contacts  int              `json:"contacts"`
	Records   int              `json:"records"`
	Bytes     int64            `json:"bytes"`
}

type networkJSON struct {
	Name string `json:"name"`
	ID   uint32 `json:"id"`
}

// MarshalJSON encodes i in the API's form.
func (i Info) MarshalJSON() ([]byte, error) {
	return json.Marshal(infoJSON{hexID(i.ID), hexID(i.Publisher), i.Version, nonNil(i.Addrs),
		networkJSON(i.Network), seconds(i.Uptime), i.Joined, i.ReadOnly, nonNil(i.Seeds),
		i.Contacts, i.Records, i.Bytes})
}

// UnmarshalJSON decodes what MarshalJSON encodes.
func (i *Info) UnmarshalJSON(b []byte) error {
	var w infoJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*i = Info{id.ID(w.ID), id.ID(w.Publisher), w.Version, w.Addrs, Network(w.Network),
		time.Duration(w.Uptime), w.Joined, w.ReadOnly, w.Seeds, w.Contacts, w.Records, w.Bytes}
	return nil
}

type seedJSON struct {
	Addr      string `json:"addr"`
	State     string `json:"state"`
	LastError string `json:"last_error,omitempty"`
}

// MarshalJSON encodes s in the API's form.
func (s Seed) MarshalJSON() ([]byte, error) { return json.Marshal(seedJSON(s)) }

// UnmarshalJSON decodes what MarshalJSON encodes.
func (s *Seed) UnmarshalJSON(b []byte) error {
	var w seedJSON
	err := json.Unmarshal(b, &w)
	*s = Seed(w)
	return err
}

type tableJSON struct {
	Self    hexID    `json:"self"`
	K       int      `json:"k"`
	Buckets []Bucket `json:"buckets"`
}

// MarshalJSON encodes t in the API's form.
func (t Table) MarshalJSON() ([]byte, error) {
	return json.Marshal(tableJSON{hexID(t.Self), t.K, nonNil(t.Buckets)})
}

// UnmarshalJSON decodes what MarshalJSON encodes.
func (t *Table) UnmarshalJSON(b []byte) error {
	var w tableJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*t = Table{id.ID(w.Self), w.K, w.Buckets}
	return nil
}

type bucketJSON struct {
	Index        int            `json:"index"`
	Count        int            `json:"count"`
	K            int            `json:"k"`
	Replacements int            `json:"replacements"`
	LastLookup   *seconds       `json:"last_lookup_seconds"` // null: never
	Contacts     []TableContact `json:"contacts"`
}

// MarshalJSON encodes b in the API's form; "count" is len(Contacts).
func (b Bucket) MarshalJSON() ([]byte, error) {
	w := bucketJSON{Index: b.Index, Count: len(b.Contacts), K: b.K, Replacements: b.Replacements, Contacts: nonNil(b.Contacts)}
	if b.LookedUp {
		s := seconds(b.LookupAge)
		w.LastLookup = &s
	}
	return json.Marshal(w)
}

// UnmarshalJSON decodes what MarshalJSON encodes.
func (b *Bucket) UnmarshalJSON(data []byte) error {
	var w bucketJSON
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	*b = Bucket{Index: w.Index, K: w.K, Contacts: w.Contacts, Replacements: w.Replacements}
	if w.LastLookup != nil {
		b.LookedUp, b.LookupAge = true, time.Duration(*w.LastLookup)
	}
	return nil
}

type tableContactJSON struct {
	ID       hexID          `json:"id"`
	Addr     netip.AddrPort `json:"addr"`
	LastSeen seconds        `json:"last_seen_seconds"`
	Verified bool           `json:"verified"`
	Failures int            `json:"failures"`
}

// MarshalJSON encodes c in the API's form.
func (c TableContact) MarshalJSON() ([]byte, error) {
	return json.Marshal(tableContactJSON{hexID(c.ID), c.Addr, seconds(c.LastSeen), c.Verified, c.Failures})
}

// UnmarshalJSON decodes what MarshalJSON encodes.
func (c *TableContact) UnmarshalJSON(b []byte) error {
	var w tableContactJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*c = TableContact{Contact{id.ID(w.ID), w.Addr}, time.Duration(w.LastSeen), w.Verified, w.Failures}
	return nil
}

type keysPageJSON struct {
	Keys []KeyInfo `json:"keys"`
	More bool      `json:"more"`
	Next *hexID    `json:"next,omitempty"` // the cursor of the next page, when More
}

// MarshalJSON encodes p in the API's form, with "next", the after= of the
// next page, when there is one.
func (p KeysPage) MarshalJSON() ([]byte, error) {
	w := keysPageJSON{Keys: nonNil(p.Keys), More: p.More}
	if p.More && len(p.Keys) > 0 {
		n := hexID(p.Keys[len(p.Keys)-1].Key)
		w.Next = &n
	}
	return json.Marshal(w)
}

// UnmarshalJSON decodes what MarshalJSON encodes.
func (p *KeysPage) UnmarshalJSON(b []byte) error {
	var w keysPageJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*p = KeysPage{w.Keys, w.More}
	return nil
}

type keyInfoJSON struct {
	Key            hexID   `json:"key"`
	Records        int     `json:"records"`
	Bytes          int     `json:"bytes"`
	Publishers     int     `json:"publishers"`
	EarliestExpiry seconds `json:"earliest_expiry_seconds"`
	LatestExpiry   seconds `json:"latest_expiry_seconds"`
}

// MarshalJSON encodes k in the API's form.
func (k KeyInfo) MarshalJSON() ([]byte, error) {
	return json.Marshal(keyInfoJSON{hexID(k.Key), k.Records, k.Bytes, k.Publishers, seconds(k.EarliestExpiry), seconds(k.LatestExpiry)})
}

// UnmarshalJSON decodes what MarshalJSON encodes.
func (k *KeyInfo) UnmarshalJSON(b []byte) error {
	var w keyInfoJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*k = KeyInfo{id.ID(w.Key), w.Records, w.Bytes, w.Publishers, time.Duration(w.EarliestExpiry), time.Duration(w.LatestExpiry)}
	return nil
}

type receiptJSON struct {
	Node    Contact `json:"node"`
	Outcome Outcome `json:"outcome"`
	TTL     seconds `json:"ttl_seconds"`
	Reason  string  `json:"reason,omitempty"`
	Found   bool    `json:"found,omitempty"`
}

// MarshalJSON encodes r in the API's form.
func (r Receipt) MarshalJSON() ([]byte, error) {
	return json.Marshal(receiptJSON{r.Node, r.Outcome, seconds(r.TTL), r.Reason, r.Found})
}

// UnmarshalJSON decodes what MarshalJSON encodes.
func (r *Receipt) UnmarshalJSON(b []byte) error {
	var w receiptJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*r = Receipt{w.Node, w.Outcome, time.Duration(w.TTL), w.Reason, w.Found}
	return nil
}

type putResultJSON struct {
	Key       hexID     `json:"key"`
	Publisher hexID     `json:"publisher"`
	Version   uint64    `json:"version"`
	Asked     seconds   `json:"ttl_seconds"`
	Quorum    int       `json:"quorum"`
	Stored    int       `json:"stored"`
	Local     bool      `json:"local"`
	Receipts  []Receipt `json:"receipts"`
}

// MarshalJSON encodes r in the API's form.
func (r PutResult) MarshalJSON() ([]byte, error) {
	return json.Marshal(putResultJSON{hexID(r.Key), hexID(r.Publisher), r.Version, seconds(r.Asked), r.Quorum, r.Stored, r.Local, nonNil(r.Receipts)})
}

// UnmarshalJSON decodes what MarshalJSON encodes.
func (r *PutResult) UnmarshalJSON(b []byte) error {
	var w putResultJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*r = PutResult{id.ID(w.Key), id.ID(w.Publisher), w.Version, time.Duration(w.Asked), w.Receipts, w.Stored, w.Local, w.Quorum}
	return nil
}

type deleteResultJSON struct {
	Key       hexID     `json:"key"`
	Publisher hexID     `json:"publisher"`
	Version   uint64    `json:"version"`
	Found     int       `json:"found"`
	Receipts  []Receipt `json:"receipts"`
}

// MarshalJSON encodes r in the API's form.
func (r DeleteResult) MarshalJSON() ([]byte, error) {
	return json.Marshal(deleteResultJSON{hexID(r.Key), hexID(r.Publisher), r.Version, r.Found, nonNil(r.Receipts)})
}

// UnmarshalJSON decodes what MarshalJSON encodes.
func (r *DeleteResult) UnmarshalJSON(b []byte) error {
	var w deleteResultJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*r = DeleteResult{id.ID(w.Key), id.ID(w.Publisher), w.Version, w.Receipts, w.Found}
	return nil
}

type valueJSON struct {
	Data      []byte  `json:"data"`
	Text      *string `json:"text,omitempty"`
	Publisher hexID   `json:"publisher"`
	Version   uint64  `json:"version"`
	TTL       seconds `json:"ttl_seconds"`
	Envelope  bool    `json:"envelope,omitempty"`
	Kind      string  `json:"kind,omitempty"`
}

// MarshalJSON encodes v in the API's form: "data" in base64, and "text"
// too when IsText(v.Data); "envelope" and "kind" only for an enveloped
// record, so that a plain value reads as it always did.
func (v Value) MarshalJSON() ([]byte, error) {
	w := valueJSON{Data: nonNil(v.Data), Publisher: hexID(v.Publisher), Version: v.Version, TTL: seconds(v.TTL), Envelope: v.Envelope, Kind: v.Kind}
	if IsText(v.Data) {
		s := string(v.Data)
		w.Text = &s
	}
	return json.Marshal(w)
}

// UnmarshalJSON decodes what MarshalJSON encodes; "data" is the value,
// "text" is ignored.
func (v *Value) UnmarshalJSON(b []byte) error {
	var w valueJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*v = Value{w.Data, id.ID(w.Publisher), w.Version, time.Duration(w.TTL), w.Envelope, w.Kind}
	return nil
}

type getResultJSON struct {
	Key        hexID   `json:"key"`
	Values     []Value `json:"values"`
	Holders    int     `json:"holders"`
	Incomplete string  `json:"incomplete,omitempty"`
}

// MarshalJSON encodes r in the API's form.
func (r GetResult) MarshalJSON() ([]byte, error) {
	return json.Marshal(getResultJSON{hexID(r.Key), nonNil(r.Values), r.Holders, r.Incomplete})
}

// UnmarshalJSON decodes what MarshalJSON encodes.
func (r *GetResult) UnmarshalJSON(b []byte) error {
	var w getResultJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*r = GetResult{id.ID(w.Key), w.Values, w.Holders, w.Incomplete}
	return nil
}

type valueEventJSON struct {
	Kind  EventKind `json:"kind"`
	Key   hexID     `json:"key"`
	Value Value     `json:"value"`
}

// MarshalJSON encodes e in the API's form.
func (e ValueEvent) MarshalJSON() ([]byte, error) {
	return json.Marshal(valueEventJSON{e.Kind, hexID(e.Key), e.Value})
}

// UnmarshalJSON decodes what MarshalJSON encodes.
func (e *ValueEvent) UnmarshalJSON(b []byte) error {
	var w valueEventJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*e = ValueEvent{w.Kind, id.ID(w.Key), w.Value}
	return nil
}

type pingResultJSON struct {
	Contact Contact `json:"contact"`
	RTT     seconds `json:"rtt_seconds"`
}

// MarshalJSON encodes r in the API's form.
func (r PingResult) MarshalJSON() ([]byte, error) {
	return json.Marshal(pingResultJSON{r.Contact, seconds(r.RTT)})
}

// UnmarshalJSON decodes what MarshalJSON encodes.
func (r *PingResult) UnmarshalJSON(b []byte) error {
	var w pingResultJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*r = PingResult{w.Contact, time.Duration(w.RTT)}
	return nil
}

// nodesJSON is the answer of GET /nodes.
type nodesJSON struct {
	Target hexID     `json:"target"`
	Nodes  []Contact `json:"nodes"`
}

type lookupResultJSON struct {
	Target   hexID      `json:"target"`
	Kind     LookupKind `json:"type"`
	Duration seconds    `json:"duration_seconds"`
	Closest  []Contact  `json:"closest"`
	Values   []Value    `json:"values"`
	Rounds   []Round    `json:"rounds"`
}

// MarshalJSON encodes r in the API's form.
func (r LookupResult) MarshalJSON() ([]byte, error) {
	return json.Marshal(lookupResultJSON{hexID(r.Target), r.Kind, seconds(r.Duration), nonNil(r.Closest), nonNil(r.Values), nonNil(r.Rounds)})
}

// UnmarshalJSON decodes what MarshalJSON encodes.
func (r *LookupResult) UnmarshalJSON(b []byte) error {
	var w lookupResultJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*r = LookupResult{id.ID(w.Target), w.Kind, time.Duration(w.Duration), w.Closest, w.Values, w.Rounds}
	return nil
}

type roundJSON struct {
	Queries []Query `json:"queries"`
}

// MarshalJSON encodes r in the API's form.
func (r Round) MarshalJSON() ([]byte, error) { return json.Marshal(roundJSON{nonNil(r.Queries)}) }

// UnmarshalJSON decodes what MarshalJSON encodes.
func (r *Round) UnmarshalJSON(b []byte) error {
	var w roundJSON
	err := json.Unmarshal(b, &w)
	*r = Round{w.Queries}
	return err
}

type queryJSON struct {
	Node     Contact   `json:"node"`
	Start    seconds   `json:"start_seconds"`
	Duration seconds   `json:"duration_seconds"`
	Answer   Answer    `json:"answer"`
	Contacts []Contact `json:"contacts"`
	Values   int       `json:"values"`
	Error    string    `json:"error,omitempty"`
}

// MarshalJSON encodes q in the API's form.
func (q Query) MarshalJSON() ([]byte, error) {
	return json.Marshal(queryJSON{q.Node, seconds(q.Start), seconds(q.Duration), q.Answer, nonNil(q.Contacts), q.Values, q.Error})
}

// UnmarshalJSON decodes what MarshalJSON encodes.
func (q *Query) UnmarshalJSON(b []byte) error {
	var w queryJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*q = Query{w.Node, time.Duration(w.Start), time.Duration(w.Duration), w.Answer, w.Contacts, w.Values, w.Error}
	return nil
}

type nodeEventJSON struct {
	Kind    string    `json:"kind"`
	Time    time.Time `json:"time"`
	Message string    `json:"message,omitempty"`
	Sample  *Sample   `json:"sample,omitempty"`
}

// MarshalJSON encodes e in the API's form.
func (e NodeEvent) MarshalJSON() ([]byte, error) {
	return json.Marshal(nodeEventJSON(e))
}

// UnmarshalJSON decodes what MarshalJSON encodes.
func (e *NodeEvent) UnmarshalJSON(b []byte) error {
	var w nodeEventJSON
	err := json.Unmarshal(b, &w)
	*e = NodeEvent(w)
	return err
}

type sampleJSON struct {
	Interval seconds            `json:"interval_seconds"`
	Rates    map[string]float64 `json:"rates"`
	Latency  latencyJSON        `json:"latency"`
	Drops    map[string]uint64  `json:"drops"`
}

type latencyJSON struct {
	P50 seconds `json:"p50_seconds"`
	P90 seconds `json:"p90_seconds"`
	P99 seconds `json:"p99_seconds"`
	Max seconds `json:"max_seconds"`
}

// MarshalJSON encodes s in the API's form.
func (s Sample) MarshalJSON() ([]byte, error) {
	l := s.Latency
	return json.Marshal(sampleJSON{seconds(s.Interval), nonNilMap(s.Rates),
		latencyJSON{seconds(l.P50), seconds(l.P90), seconds(l.P99), seconds(l.Max)}, nonNilMap(s.Drops)})
}

// UnmarshalJSON decodes what MarshalJSON encodes.
func (s *Sample) UnmarshalJSON(b []byte) error {
	var w sampleJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	l := w.Latency
	*s = Sample{time.Duration(w.Interval), w.Rates,
		Latency{time.Duration(l.P50), time.Duration(l.P90), time.Duration(l.P99), time.Duration(l.Max)}, w.Drops}
	return nil
}

type errorJSON struct {
	Error  errorBody       `json:"error"`
	Result json.RawMessage `json:"result,omitempty"`
}

type errorBody struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

// nonNil makes a nil slice encode as [] rather than null: one shape per
// field for clients in any language.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func nonNilMap[K comparable, V any](m map[K]V) map[K]V {
	if m == nil {
		return map[K]V{}
	}
	return m
}
