package sim

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/ident"
	"github.com/dhtkit/dht/internal/core"
	"github.com/dhtkit/dht/lookup"
	"github.com/dhtkit/dht/record"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/wire"
)

// Limits on the malicious-node options.
const (
	// MaxMalicious bounds the malicious share of a setting, all kinds
	// together: some honest nodes must be left to put and get from.
	MaxMalicious = 0.9
	// MaxSettings bounds the settings of one adversarial run, each a
	// network of its own.
	MaxSettings = 32
	// DefaultDisjointPaths is the paths of a disjoint get when the
	// scenario does not say. S/Kademlia pairs d with Alpha (3); measured
	// on 1,000 nodes with 20% eclipse nodes, 3 paths still left 1.3% of
	// the gets eclipsed, 4 paths 0.3% (51 requests per get at the median
	// against 37), and 6 paths no fewer at 30% more requests.
	DefaultDisjointPaths = 4
)

// PhaseAdversary is the phase of an adversarial run in which gets with
// plain and with disjoint lookups alternate.
const PhaseAdversary = "adversary"

// Mix is one adversarial setting: the share of the nodes of each malicious
// kind. The kinds:
//
//   - Drop: drops every request it gets and answers nothing.
//   - Forge: answers FIND_VALUE and GET with lies about the asked key's
//     records, as ForgeAs says. With plain values (the default, and the
//     only lie plain values allow): other bytes under the real publisher,
//     one version higher (so that the ordering rule picks them over the
//     real one). With Scenario.Signed: a forged higher sequence (bad
//     signature), the stale sequence 1 (validly signed; forgers captured
//     it), or no record at all. Forgers share what any of them has seen,
//     so one that holds nothing still lies about a record it knows of.
//   - Eclipse: answers every FIND_NODE, FIND_VALUE and GET with K contacts
//     and never a value, as EclipseAs says. Made-up (the default): contacts
//     closer to the target than any real node (they share its first 96
//     bits), three in four at the addresses of eclipse nodes, who answer
//     under those IDs in the same way, the rest at addresses where nobody
//     answers. Colluders: the K real eclipse nodes closest to the target,
//     under their own IDs (the attackers know each other), which is all
//     an eclipse has left once node IDs are bound to keys.
//
// Malicious nodes are real nodes running the same code as the others: they
// join honestly, and once the puts are done their behaviour is swapped at
// the datagram level (a wrapper around their transport's handler). Requests
// their kind does not lie about (PING, STORE, ...) still reach the node,
// so that they stay in routing tables; a drop node answers nothing at all.
// Which nodes turn is drawn from the seed among the non-seed nodes.
//
// With Scenario.Identity every malicious node owns its node's key and
// proves its own ID whenever a request asks (see adversary.prove); an
// answer under a made-up ID carries no proof, so made-up contacts never
// verify and a made-up eclipse costs requests, not routing-table places.
type Mix struct {
	Drop    float64 `json:"drop,omitempty"`
	Forge   float64 `json:"forge,omitempty"`
	Eclipse float64 `json:"eclipse,omitempty"`
	// ForgeAs is the forgers' lie: ForgeForged, ForgeStale, ForgeEmpty or
	// ForgeMixed; empty for the default (ForgeMixed with signed records,
	// ForgeForged with plain values).
	ForgeAs string `json:"forge_as,omitempty"`
	// EclipseAs is the eclipse nodes' lie: EclipseMadeUp (the default,
	// empty) or EclipseColluders.
	EclipseAs string `json:"eclipse_as,omitempty"`
}

// The lies of Mix.ForgeAs and Mix.EclipseAs.
const (
	// ForgeForged: a record one sequence above the current one, other
	// bytes, the signature of another version (readers refuse it).
	ForgeForged = "forged"
	// ForgeStale: the validly signed sequence 1 (signed records only).
	ForgeStale = "stale"
	// ForgeEmpty: an answer without records, as from a node that holds
	// none.
	ForgeEmpty = "empty"
	// ForgeMixed: each forger tells one of the three lies about each key,
	// drawn from the seed (signed records only).
	ForgeMixed = "mixed"
	// EclipseMadeUp: made-up IDs closer to the target than any real node.
	EclipseMadeUp = "made-up"
	// EclipseColluders: the real eclipse nodes closest to the target.
	EclipseColluders = "colluders"
)

// Total is the malicious share of all kinds.
func (m Mix) Total() float64 { return m.Drop + m.Forge + m.Eclipse }

// String is the text form ParseMalicious reads: "drop=0.1,forge=0.2",
// "none" for no malicious node.
func (m Mix) String() string {
	var parts []string
	for _, k := range []struct {
		name string
		v    float64
	}{{"drop", m.Drop}, {"forge", m.Forge}, {"eclipse", m.Eclipse}} {
		if k.v != 0 {
			parts = append(parts, k.name+"="+strconv.FormatFloat(k.v, 'g', -1, 64))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	if m.ForgeAs != "" {
		parts = append(parts, "forge_as="+m.ForgeAs)
	}
	if m.EclipseAs != "" {
		parts = append(parts, "eclipse_as="+m.EclipseAs)
	}
	return strings.Join(parts, ",")
}

// Malicious is the adversarial settings of a run. Each runs on a network
// of its own, built from the same seed, so that settings differ only in
// their malicious nodes. Its JSON form is one object of shares by kind
// ({"drop": 0.1, "eclipse": 0.1}), or a list of them for several settings;
// a missing field, null, or the number 0 that older scenario files wrote
// means no malicious nodes (an ordinary run).
type Malicious []Mix

// UnmarshalJSON reads an object, a list of objects, null or 0.
func (m *Malicious) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case string(b) == "null" || string(b) == "0":
		*m = nil
		return nil
	case len(b) > 0 && b[0] == '{':
		var x Mix
		if err := decodeStrict(b, &x); err != nil {
			return err
		}
		*m = Malicious{x}
		return nil
	case len(b) > 0 && b[0] == '[':
		var raw []json.RawMessage
		if err := json.Unmarshal(b, &raw); err != nil {
			return err
		}
		out := make(Malicious, len(raw))
		for i, r := range raw {
			if err := decodeStrict(r, &out[i]); err != nil {
				return fmt.Errorf("setting %d: %w", i, err)
			}
		}
		*m = out
		return nil
	}
	return fmt.Errorf(`want shares by kind such as {"drop": 0.1, "forge": 0.1, "eclipse": 0.1}, or a list of them, got %s`, b)
}

// MarshalJSON writes one setting as an object, several as a list.
func (m Malicious) MarshalJSON() ([]byte, error) {
	if len(m) == 1 {
		return json.Marshal(m[0])
	}
	return json.Marshal([]Mix(m))
}

func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w (the kinds are drop, forge and eclipse; the lies forge_as and eclipse_as)", err)
	}
	return nil
}

// MaliciousForms describes the text form ParseMalicious accepts.
const MaliciousForms = "KIND=SHARE[,KIND=SHARE...] with kinds drop, forge and eclipse, and optionally forge_as=forged|stale|empty|mixed and eclipse_as=made-up|colluders, settings separated by ';' (e.g. eclipse=0.2,eclipse_as=colluders or drop=0.1;drop=0.2), or none"

// ParseMalicious reads the text form of Malicious (see MaliciousForms) and
// checks each setting's shares.
func ParseMalicious(s string) (Malicious, error) {
	bad := func(why string) (Malicious, error) {
		return nil, fmt.Errorf("malicious %q: %s; want %s", s, why, MaliciousForms)
	}
	if s == "" || s == "0" {
		return nil, nil
	}
	var out Malicious
	for _, set := range strings.Split(s, ";") {
		var m Mix
		if set != "none" {
			for _, kv := range strings.Split(set, ",") {
				k, v, ok := strings.Cut(kv, "=")
				switch k {
				case "forge_as":
					m.ForgeAs = v
					continue
				case "eclipse_as":
					m.EclipseAs = v
					continue
				}
				f, err := strconv.ParseFloat(v, 64)
				if !ok || err != nil {
					return bad(fmt.Sprintf("%q is not KIND=SHARE", kv))
				}
				switch k {
				case "drop":
					m.Drop = f
				case "forge":
					m.Forge = f
				case "eclipse":
					m.Eclipse = f
				default:
					return bad(fmt.Sprintf("unknown kind %q", k))
				}
			}
		}
		out = append(out, m)
	}
	if err := out.validate(); err != nil {
		return nil, err
	}
	return out, nil
}

// validate checks every setting's shares.
func (m Malicious) validate() error {
	if len(m) > MaxSettings {
		return fmt.Errorf("malicious: %d settings: at most %d", len(m), MaxSettings)
	}
	for i, x := range m {
		for _, k := range []struct {
			name string
			v    float64
		}{{"drop", x.Drop}, {"forge", x.Forge}, {"eclipse", x.Eclipse}} {
			if !(k.v >= 0 && k.v <= MaxMalicious) {
				return fmt.Errorf("malicious setting %d: %s = %v: must be a share of the nodes from 0 to %v", i, k.name, k.v, MaxMalicious)
			}
		}
		if t := x.Total(); !(t <= MaxMalicious) {
			return fmt.Errorf("malicious setting %d (%v): the shares add up to %v: they must add up to at most %v, so that honest nodes remain", i, x, t, MaxMalicious)
		}
		switch x.ForgeAs {
		case "", ForgeForged, ForgeStale, ForgeEmpty, ForgeMixed:
		default:
			return fmt.Errorf("malicious setting %d: forge_as = %q: must be %s, %s, %s or %s", i, x.ForgeAs, ForgeForged, ForgeStale, ForgeEmpty, ForgeMixed)
		}
		switch x.EclipseAs {
		case "", EclipseMadeUp, EclipseColluders:
		default:
			return fmt.Errorf("malicious setting %d: eclipse_as = %q: must be %s or %s", i, x.EclipseAs, EclipseMadeUp, EclipseColluders)
		}
	}
	return nil
}

// validateAdversary checks the adversarial options of s and fills their
// defaults.
func (s *Scenario) validateAdversary() error {
	if err := s.Malicious.validate(); err != nil {
		return err
	}
	if s.DisjointPaths == 0 {
		s.DisjointPaths = DefaultDisjointPaths
	}
	if s.DisjointPaths < 1 || s.DisjointPaths > lookup.MaxPaths {
		return fmt.Errorf("disjoint_paths = %d: must be from 1 to %d", s.DisjointPaths, lookup.MaxPaths)
	}
	if len(s.Malicious) > 0 && (s.Churn != nil || s.Partition != nil || s.Waves != nil || s.Idle > 0 || s.Preload) {
		return errors.New("malicious: an adversarial run must run its own phases (join, put, adversary) alone; it cannot be combined with churn, partition, waves, idle or preload")
	}
	if s.Signed && len(s.Malicious) == 0 {
		return errors.New("signed: signed records are an option of adversarial runs; set malicious too")
	}
	for i, x := range s.Malicious {
		if !s.Signed && (x.ForgeAs == ForgeStale || x.ForgeAs == ForgeMixed) {
			return fmt.Errorf("malicious setting %d: forge_as = %q needs signed records (\"signed\": true): plain values have one version only", i, x.ForgeAs)
		}
	}
	return nil
}

// AdversaryReport is what an adversarial run measured, one entry per
// setting.
type AdversaryReport struct {
	// Paths is the paths of each disjoint get.
	Paths int `json:"paths"`
	// Signed is set when the values were signed records (Scenario.Signed).
	Signed   bool               `json:"signed,omitempty"`
	Settings []AdversarySetting `json:"settings"`
}

// AdversarySetting is one setting's network and its gets.
type AdversarySetting struct {
	Malicious Mix `json:"malicious"`
	// Drop, Forge and Eclipse count the nodes of each kind.
	Drop    int `json:"drop"`
	Forge   int `json:"forge"`
	Eclipse int `json:"eclipse"`
	// Replicas is how many nodes accepted each key's put (before any node
	// turned).
	Replicas Dist `json:"replicas"`
	// Plain and Disjoint are the gets with one lookup and with disjoint
	// paths, alternating, each from a random honest node for a random key.
	Plain    GetOutcome `json:"plain"`
	Disjoint GetOutcome `json:"disjoint"`
	// Lies counts the requests malicious nodes dropped, forged or
	// eclipsed.
	Dropped  uint64 `json:"dropped"`
	Forged   uint64 `json:"forged"`
	Eclipsed uint64 `json:"eclipsed"`
	// Refused counts the records honest readers dropped during the gets
	// as failing verification (their Stats.ForgedRecords): forgeries
	// caught.
	Refused uint64 `json:"refused"`
}

// GetOutcome sums up a set of gets under attack.
type GetOutcome struct {
	Gets int `json:"gets"`
	// Right counts gets that returned the value that was put (with
	// signed records: the current sequence, 2); Value those that returned
	// some value (right, forged or stale). They differ only for forgers:
	// without signed records a forged value cannot be told from the real
	// one, and the newer version wins; with them, a get that returned
	// only the stale sequence counts in Stale.
	Right int `json:"right"`
	Value int `json:"value"`
	Stale int `json:"stale,omitempty"`
	// Forged counts gets that returned a record above the current
	// sequence (signed records only): a forgery a reader took. It
	// should stay 0, since readers verify signatures.
	Forged    int     `json:"forged,omitempty"`
	NotFound  int     `json:"not_found"`
	Errors    int     `json:"errors"`
	Success   float64 `json:"success"`    // Right / Gets
	ValueRate float64 `json:"value_rate"` // Value / Gets
	// Messages is the requests each get sent, LatencyMS its virtual time,
	// over every get (found or not).
	Messages  Dist `json:"messages"`
	LatencyMS Dist `json:"latency_ms"`
}

// getAcc gathers one kind of get's outcomes, independent of their order.
type getAcc struct {
	o           GetOutcome
	msgs, latUS []int32
}

// add counts one get, whose right answer is want at version cur (0 for
// plain values, whose gets are never counted stale).
func (a *getAcc) add(r *core.LookupResult, err error, want []byte, cur uint64) {
	a.o.Gets++
	switch {
	case errors.Is(err, core.ErrNotFound):
		a.o.NotFound++
	case err != nil:
		a.o.Errors++
	default:
		a.o.Value++
		switch {
		case slices.ContainsFunc(r.Values, func(v []byte) bool { return bytes.Equal(v, want) }):
			a.o.Right++
		case slices.ContainsFunc(r.Records, func(x core.Record) bool { return x.Version < cur }):
			a.o.Stale++
		}
		if cur > 0 && slices.ContainsFunc(r.Records, func(x core.Record) bool { return x.Version > cur }) {
			a.o.Forged++
		}
	}
	if r != nil {
		a.msgs = append(a.msgs, int32(r.Messages))
		a.latUS = append(a.latUS, int32(min(r.Duration/time.Microsecond, math.MaxInt32)))
	}
}

func (a *getAcc) outcome() GetOutcome {
	o := a.o
	if o.Gets > 0 {
		o.Success = float64(o.Right) / float64(o.Gets)
		o.ValueRate = float64(o.Value) / float64(o.Gets)
	}
	o.Messages = intDist(a.msgs, false)
	o.LatencyMS = latencyDist(a.latUS)
	return o
}

// kind is what a node does with the requests it gets.
type kind uint8

const (
	honest kind = iota
	dropKind
	forgeKind
	eclipseKind
)

// adversary is one network's malicious nodes and what they share: the
// addresses eclipse contacts point at, which made-up IDs were handed to
// whom, and what forgers know of each key. Everything runs on the
// simulator's goroutine.
type adversary struct {
	e   *engine
	mix Mix
	ts  map[*simNode]*advTransport

	eclipse []netip.AddrPort
	// handed records, per requester and target, the eclipse addresses it
	// was given under made-up IDs, so that the node there answers under
	// the ID the requester expects (and under its own otherwise). Bounded:
	// cleared when full, which only makes some lies fail.
	handed map[handKey]struct{}
	// known is what forgers have seen of each key's records: enough to
	// forge one from a node that holds nothing.
	known map[id.ID]wire.Record
	// sk is the signed records of the keys, with Scenario.Signed.
	sk *signedKeys
	// colluders is the eclipse nodes by ID, with EclipseColluders.
	colluders []id.Contact
	collude   bool
	near      []id.Contact // scratch for closestOf

	msg, out wire.Message
	buf      []byte
	proof    [wire.ProofLen]byte // scratch for prove
	forged   []byte
	capture  captureWriter
	contacts []id.Contact
	salt     uint64

	res AdversarySetting
}

type handKey struct {
	from, to netip.AddrPort
	target   id.ID
}

// maxHanded bounds adversary.handed (about 64 MiB at its fullest).
const maxHanded = 1 << 20

func newAdversary(e *engine, mix Mix) *adversary {
	a := &adversary{
		e: e, mix: mix,
		ts:      map[*simNode]*advTransport{},
		handed:  map[handKey]struct{}{},
		known:   map[id.ID]wire.Record{},
		buf:     make([]byte, 0, wire.MaxPacket),
		salt:    e.sc.Seed*0x9e3779b97f4a7c15 ^ 0x6164766572736172,
		res:     AdversarySetting{Malicious: mix},
		collude: mix.EclipseAs == EclipseColluders,
	}
	if e.sc.Signed {
		a.sk = newSignedKeys(e)
		copy(e.keys, a.sk.keys)
	}
	return a
}

// advTransport wraps a node's transport: an honest node's datagrams pass
// straight through; a malicious node's requests go to its kind's lie.
type advTransport struct {
	transport.Transport
	a    *adversary
	h    transport.Handler
	kind kind
	self id.ID
	addr netip.AddrPort
	key  ed25519.PrivateKey // with Scenario.Identity: the node's own key
}

// wrap puts tr behind the adversary, for a node not created yet.
func (a *adversary) wrap(tr transport.Transport) transport.Transport {
	return &advTransport{Transport: tr, a: a}
}

// bind notes which node sits behind tr, once it exists.
func (a *adversary) bind(sn *simNode, tr transport.Transport) {
	if t, ok := tr.(*advTransport); ok {
		t.self, t.addr, t.key = sn.n.ID(), sn.n.Addr(), sn.key
		a.ts[sn] = t
	}
}

func (t *advTransport) Start(h transport.Handler) error {
	t.h = h
	return t.Transport.Start(t)
}

func (t *advTransport) HandlePacket(data []byte, from netip.AddrPort, w transport.Writer) {
	if t.kind == honest {
		t.h.HandlePacket(data, from, w)
		return
	}
	t.a.handle(t, data, from, w)
}

func (t *advTransport) HandleBatch(pkts []transport.Packet, w transport.Writer) {
	if bh, ok := t.h.(transport.BatchHandler); ok && t.kind == honest {
		bh.HandleBatch(pkts, w)
		return
	}
	for _, p := range pkts {
		t.HandlePacket(p.Data, p.Addr, w)
	}
}

// honestNode reports whether sn runs unaltered.
func (a *adversary) honestNode(sn *simNode) bool {
	t := a.ts[sn]
	return t == nil || t.kind == honest
}

// turn draws the malicious nodes from the seed among the live non-seed
// nodes and swaps their behaviour; forgers pool what they hold.
func (a *adversary) turn() {
	e := a.e
	var cands []*simNode
	for _, sn := range e.live {
		if !sn.seed {
			cands = append(cands, sn)
		}
	}
	// Live order depends only on the seed, and so does this shuffle.
	r := rand.New(rand.NewPCG(e.sc.Seed, 0x6d616c6963696f75))
	r.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
	count := func(share float64) int { return min(int(math.Round(share*float64(e.sc.Nodes))), len(cands)) }
	next := 0
	take := func(n int, k kind) int {
		n = min(n, len(cands)-next)
		for _, sn := range cands[next : next+n] {
			a.ts[sn].kind = k
			if k == eclipseKind {
				a.eclipse = append(a.eclipse, sn.addr)
			}
		}
		next += n
		return n
	}
	a.res.Drop = take(count(a.mix.Drop), dropKind)
	a.res.Forge = take(count(a.mix.Forge), forgeKind)
	a.res.Eclipse = take(count(a.mix.Eclipse), eclipseKind)
	if a.collude {
		for _, sn := range cands[a.res.Drop+a.res.Forge : next] {
			a.colluders = append(a.colluders, id.Contact{ID: a.ts[sn].self, Addr: sn.addr})
		}
		slices.SortFunc(a.colluders, func(x, y id.Contact) int { return x.ID.Compare(y.ID) })
	}
	if a.res.Forge == 0 || a.sk != nil {
		return // signed: forgers captured what they need at put time
	}
	now := e.clk.Now()
	for _, key := range e.keys {
		for _, sn := range cands[a.res.Drop : a.res.Drop+a.res.Forge] {
			if vs := sn.n.Store().Records(key, now, nil); len(vs) > 0 && !vs[0].Deleted {
				v := vs[0]
				a.known[key] = wire.Record{Publisher: v.Publisher, Version: v.Version, Size: uint32(len(v.Data))}
				break
			}
		}
	}
}

// handle answers request data to a malicious node as its kind lies.
func (a *adversary) handle(t *advTransport, data []byte, from netip.AddrPort, w transport.Writer) {
	m := &a.msg
	if err := wire.Decode(data, m); err != nil || !m.Type.IsRequest() {
		t.h.HandlePacket(data, from, w) // its own answers, and junk, as usual
		return
	}
	switch t.kind {
	case dropKind:
		a.res.Dropped++
	case forgeKind:
		if m.Type != wire.FindValue && m.Type != wire.Get {
			t.h.HandlePacket(data, from, w)
			return
		}
		a.res.Forged++
		a.forge(t, m.Target, data, from, w)
	case eclipseKind:
		if m.Type != wire.FindNode && m.Type != wire.FindValue && m.Type != wire.Get {
			t.h.HandlePacket(data, from, w)
			return
		}
		a.res.Eclipsed++
		a.lie(t, m, from, w)
	}
}

// captureWriter keeps the datagrams a node writes while it handles one
// request.
type captureWriter struct{ b transport.Batch }

func (c *captureWriter) WriteTo(b []byte, to netip.AddrPort) { c.b.WriteTo(b, to) }

// forge lets the node answer, then rewrites the answer's values or
// records as the forger's lie says (forgePlain, forgeSigned, withhold).
func (a *adversary) forge(t *advTransport, key id.ID, data []byte, from netip.AddrPort, w transport.Writer) {
	a.capture.b.Reset()
	t.h.HandlePacket(data, from, &a.capture)
	for _, p := range a.capture.b.Packets() {
		out := &a.out
		if p.Addr != from || wire.Decode(p.Data, out) != nil || (out.Type != wire.Records && out.Type != wire.Values) {
			w.WriteTo(p.Data, p.Addr)
			continue
		}
		a.forged = a.forged[:0]
		switch {
		case a.sk != nil && out.Type == wire.Records:
			a.forgeSigned(t, key, out)
		case a.mix.ForgeAs == ForgeEmpty:
			withhold(out)
		default:
			a.forgePlain(key, out)
		}
		if out.Flags&wire.FlagProof != 0 {
			// The node proved its answer; withhold may have changed the
			// answer's type, which the proof covers.
			out.Flags &^= wire.FlagProof
			a.prove(t, wire.FlagProve, out)
		}
		b, err := out.Append(a.buf[:0])
		if err != nil {
			b = p.Data // the forgery does not fit: the true answer goes
		}
		w.WriteTo(b, from)
	}
}

// forgePlain rewrites a plain answer: each value becomes other bytes of
// its size one version higher; an answer with none gets a forged record of
// what the forgers know of the key.
func (a *adversary) forgePlain(key id.ID, out *wire.Message) {
	for i := range out.Values {
		out.Values[i].Data = a.fake(len(out.Values[i].Data))
	}
	for i := range out.Records {
		r := &out.Records[i]
		if r.Deleted {
			continue
		}
		if _, ok := a.known[key]; !ok {
			a.known[key] = wire.Record{Publisher: r.Publisher, Version: r.Version, Size: r.Size}
		}
		r.Version++
		if len(r.Data) > 0 {
			r.Data = a.fake(len(r.Data))
		}
	}
	if k, ok := a.known[key]; ok && out.Type == wire.Records && len(out.Records) == 0 && k.Size <= wire.MaxPart {
		out.Records = append(out.Records, wire.Record{Publisher: k.Publisher, Version: k.Version + 1, TTL: uint32(valueTTL / time.Second), Size: k.Size, Data: a.fake(int(k.Size))})
	}
}

// withhold turns an answer into one from a node that holds nothing: the
// contacts only (a FIND_VALUE's VALUES becomes NODES).
func withhold(out *wire.Message) {
	if out.Type == wire.Values {
		out.Type, out.Values = wire.Nodes, nil
	}
	out.Records, out.More = out.Records[:0], false
}

// forgeSigned replaces a RECORDS answer's records about a key of the
// scenario with the forger's lie (see ForgeAs); it never serves the
// current sequence.
func (a *adversary) forgeSigned(t *advTransport, key id.ID, out *wire.Message) {
	k, ok := a.sk.index[key]
	if !ok {
		return // not a key of the scenario: the true answer
	}
	withhold(out) // the true records go, whatever the lie
	rec := wire.Record{Publisher: a.sk.publisher, TTL: uint32(valueTTL / time.Second), Envelope: true}
	switch a.lieOf(t, key) {
	case ForgeForged:
		rec.Version, rec.Data = currentSeq+1, a.sk.forgery[k]
	case ForgeStale:
		rec.Version, rec.Data = staleSeq, a.sk.stale[k]
	default:
		return // ForgeEmpty: as from a node that holds nothing
	}
	rec.Size = uint32(len(rec.Data))
	out.Records = append(out.Records, rec)
}

// lieOf is the lie forger t tells about key: the setting's, or with
// ForgeMixed one of the three drawn from the seed, the same every time.
func (a *adversary) lieOf(t *advTransport, key id.ID) string {
	switch a.mix.ForgeAs {
	case "", ForgeMixed:
		a4 := t.addr.Addr().As4()
		h := mix64(a.salt ^ binary.BigEndian.Uint64(key[:8]) ^ uint64(binary.BigEndian.Uint32(a4[:]))<<16 ^ uint64(t.addr.Port()))
		return [...]string{ForgeForged, ForgeStale, ForgeEmpty}[h%3]
	}
	return a.mix.ForgeAs
}

// fake returns n forged bytes: never a value the simulator puts, which all
// start with "value-".
func (a *adversary) fake(n int) []byte {
	start := len(a.forged)
	for i := range n {
		a.forged = append(a.forged, "forged-"[i%7])
	}
	return a.forged[start : start+n : start+n]
}

// lie answers a lookup request with made-up contacts close to the target.
func (a *adversary) lie(t *advTransport, m *wire.Message, from netip.AddrPort, w transport.Writer) {
	target := m.Target
	out := &a.out
	out.Reset()
	switch m.Type {
	case wire.FindNode:
		out.Type = wire.Nodes
	case wire.FindValue:
		out.Type = wire.Values
	default:
		out.Type = wire.Records
	}
	out.Network, out.TxID, out.Sender = m.Network, m.TxID, t.self
	if a.collude {
		a.contacts = closestOf(a.colluders, target, a.e.sc.K, t.self, a.contacts[:0], &a.near)
		out.Contacts = a.contacts
		a.prove(t, m.Flags, out)
		if b, err := out.Append(a.buf[:0]); err == nil {
			w.WriteTo(b, from)
		}
		return
	}
	if _, ok := a.handed[handKey{from: from, to: t.addr, target: target}]; ok {
		out.Sender = fakeID(target, t.addr, a.salt)
	}
	if len(a.handed) >= maxHanded {
		clear(a.handed)
	}
	cs := a.contacts[:0]
	for j := range a.e.sc.K {
		h := mix64(a.salt ^ binary.BigEndian.Uint64(target[:8]) ^ uint64(t.addr.Addr().As4()[3])<<32 ^ uint64(t.addr.Addr().As4()[2])<<40 ^ uint64(j)*0xbf58476d1ce4e5b9)
		var to netip.AddrPort
		if j%4 != 3 && len(a.eclipse) > 0 {
			to = a.eclipse[h%uint64(len(a.eclipse))]
		}
		if !to.IsValid() || to == from {
			// Nobody is there: no memnet node gets an address in
			// 127.254.0.0/16 below 16 million nodes.
			to = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 254, byte(h >> 8), byte(h)}), t.addr.Port())
		} else {
			a.handed[handKey{from: from, to: to, target: target}] = struct{}{}
		}
		c := id.Contact{ID: fakeID(target, to, a.salt), Addr: to}
		if !slices.ContainsFunc(cs, func(x id.Contact) bool { return x.ID == c.ID }) {
			cs = append(cs, c)
		}
	}
	a.contacts = cs
	out.Contacts = cs
	a.prove(t, m.Flags, out)
	b, err := out.Append(a.buf[:0])
	if err != nil {
		return // cannot happen with K contacts; answering nothing is a drop
	}
	w.WriteTo(b, from)
}

// prove attaches to answer out the identity proof of t's node, when the
// request's flags asked for one and the node has a key (Scenario.Identity),
// as an honest node does. It signs for the node's own ID only: an answer
// under a made-up ID goes without a proof, since no key owns that ID, and
// the requester counts it as a failed request.
func (a *adversary) prove(t *advTransport, flags wire.Flags, out *wire.Message) {
	if flags&wire.FlagProve == 0 || t.key == nil || out.Sender != t.self {
		return
	}
	ident.Prove(&a.proof, t.key, out.Network, out.TxID, t.self, uint8(out.Type))
	out.Flags |= wire.FlagProof
	out.Proof = a.proof[:]
}

// fakeID is the ID eclipse nodes make up for target at address to: it
// shares the target's first 12 bytes, closer than any real node of a
// network below 2^90 nodes, and is the same whoever hands it out, so that
// the node at to can answer under it.
func fakeID(target id.ID, to netip.AddrPort, salt uint64) id.ID {
	a4 := to.Addr().As4()
	h := mix64(salt ^ binary.BigEndian.Uint64(target[12:20]) ^ uint64(binary.BigEndian.Uint32(a4[:]))<<16 ^ uint64(to.Port()))
	x := target
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], h|1)
	for i := range b {
		x[id.Len-8+i] ^= b[i]
	}
	return x
}

// mix64 is splitmix64's finalizer: a cheap, seedable hash.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// runAdversary runs every setting of sc.Malicious on a network of its own
// and reports them together. The report's other sections are the last
// network's; its phases are all of them, in order.
func runAdversary(ctx context.Context, sc Scenario, progress func(Progress)) (*Report, error) {
	ar := &AdversaryReport{Paths: sc.DisjointPaths, Signed: sc.Signed}
	var final *Report
	var phases []PhaseReport
	var perf Perf
	for _, mix := range sc.Malicious {
		sub := sc
		sub.Malicious = Malicious{mix}
		e := newEngine(ctx, sub, progress)
		e.adv = newAdversary(e, mix)
		err := e.runAdversarial()
		r := e.finish()
		ar.Settings = append(ar.Settings, e.adv.res)
		for _, ph := range r.Phases {
			ph.Name = mix.String() + " " + ph.Name
			phases = append(phases, ph)
		}
		perf.Wall += r.Perf.Wall
		perf.CPU += r.Perf.CPU
		perf.Events += r.Perf.Events
		perf.PeakHeapObjects = max(perf.PeakHeapObjects, r.Perf.PeakHeapObjects)
		final = r
		if err != nil {
			final.Scenario, final.Adversary, final.Phases, final.Perf = sc, ar, phases, perf
			if errors.Is(err, errInterrupted) {
				return final, ctx.Err()
			}
			return final, err
		}
	}
	final.Scenario, final.Adversary, final.Phases = sc, ar, phases
	perf.HeapLiveAfterJoin, perf.HeapPerNode = final.Perf.HeapLiveAfterJoin, final.Perf.HeapPerNode
	final.Perf = perf
	return final, nil
}

// runAdversarial is one setting's phases: join, put, then the malicious
// nodes turn and the gets run.
func (e *engine) runAdversarial() error {
	if err := e.prepareAdversary(); err != nil {
		return err
	}
	return e.adversaryGets()
}

// prepareAdversary joins the network, puts the keys and turns the
// malicious nodes.
func (e *engine) prepareAdversary() error {
	put := e.put
	if e.adv.sk != nil {
		put = e.putSigned
	}
	for _, p := range []func() error{e.join, put} {
		if err := p(); err != nil {
			return err
		}
	}
	e.adv.res.Replicas = e.r.Put.Replicas
	e.adv.turn()
	return nil
}

// adversaryGets alternates gets with one lookup and with disjoint paths,
// Lookups of each, from random honest nodes for random keys, Concurrency
// at a time: both kinds meet the network in the same state, which the
// gets themselves change (tables learn made-up contacts, path caching
// spreads values, right or forged).
func (e *engine) adversaryGets() error {
	sc := e.sc
	total := 2 * sc.Lookups
	e.beginPhase(PhaseAdversary, total)
	var plain, disjoint getAcc
	refused := e.adv.refused()
	started, inFlight := 0, 0
	more := func() bool {
		for inFlight < sc.Concurrency && started < total {
			i := started
			started++
			inFlight++
			k := e.rng.IntN(sc.Keys)
			from := e.randomLive()
			for tries := 0; !e.adv.honestNode(from) && tries < 1000; tries++ {
				from = e.randomLive()
			}
			cb := func(acc *getAcc) func(*core.LookupResult, error) {
				return func(r *core.LookupResult, err error) {
					if e.closing {
						return
					}
					inFlight--
					e.done++
					want, cur := e.adv.want(k)
					acc.add(r, err, want, cur)
				}
			}
			if i%2 == 0 {
				from.n.Get(e.keys[k], cb(&plain))
			} else {
				from.n.GetPaths(e.keys[k], sc.DisjointPaths, cb(&disjoint))
			}
		}
		return inFlight > 0
	}
	limit := e.clk.Now().Add(time.Duration(total/sc.Concurrency+1)*time.Minute + 10*time.Minute)
	ok, err := e.advance(limit, more)
	e.adv.res.Plain, e.adv.res.Disjoint = plain.outcome(), disjoint.outcome()
	e.adv.res.Refused = e.adv.refused() - refused
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("adversary: %d gets still in flight after %v of virtual time", inFlight, e.clk.Now().Sub(e.phaseVStart))
	}
	return nil
}

// writeAdversary adds the adversarial table to the text report.
func (r *Report) writeAdversary(p func(format string, a ...any)) {
	ar := r.Adversary
	if ar == nil {
		return
	}
	what := "plain values"
	if ar.Signed {
		what = "signed records (success = the current sequence)"
	}
	p("adversary\tgets from honest nodes of %s, plain lookup vs %d disjoint paths; success = the stored value returned, value = any value returned, stale = only an older sequence returned", what, ar.Paths)
	p("  malicious\tnodes (drop/forge/eclipse)\tplain success\tplain value\tplain stale\tdisjoint success\tdisjoint value\tdisjoint stale\trefused records\tmessages p50 plain/disjoint\tlatency p50 plain/disjoint")
	for _, s := range ar.Settings {
		p("  %v\t%d/%d/%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%.0f/%.0f\t%.0fms/%.0fms", s.Malicious, s.Drop, s.Forge, s.Eclipse,
			pct(s.Plain.Success), pct(s.Plain.ValueRate), pct(rate(s.Plain.Stale, s.Plain.Gets)),
			pct(s.Disjoint.Success), pct(s.Disjoint.ValueRate), pct(rate(s.Disjoint.Stale, s.Disjoint.Gets)), s.Refused,
			s.Plain.Messages.P50, s.Disjoint.Messages.P50, s.Plain.LatencyMS.P50, s.Disjoint.LatencyMS.P50)
	}
}

func rate(n, of int) float64 {
	if of == 0 {
		return 0
	}
	return float64(n) / float64(of)
}

// The sequences of a signed run: every key's record is put at staleSeq,
// then at currentSeq, which a right get returns.
const (
	staleSeq   = 1
	currentSeq = 2
)

// signedKeys is a signed run's records: one key pair (drawn from the
// seed) owns every key, under the salt "sim-key-I".
type signedKeys struct {
	priv      ed25519.PrivateKey
	publisher id.ID
	keys      []id.ID
	index     map[id.ID]int
	// stale and current are each key's envelopes at staleSeq and
	// currentSeq; forgery is what ForgeForged serves at currentSeq+1:
	// the current envelope with other bytes, its signature kept.
	stale, current, forgery [][]byte
}

func newSignedKeys(e *engine) *signedKeys {
	var seed [ed25519.SeedSize]byte
	binary.BigEndian.PutUint64(seed[:], e.sc.Seed)
	copy(seed[8:], "sim-signed-owner")
	sk := &signedKeys{priv: ed25519.NewKeyFromSeed(seed[:]), index: make(map[id.ID]int, e.sc.Keys)}
	sk.publisher = record.PublisherOf(sk.priv.Public().(ed25519.PublicKey))
	for i := range e.sc.Keys {
		salt := []byte("sim-key-" + strconv.Itoa(i))
		cur := e.value(i)
		old := append([]byte("first-"), cur[len("value-"):]...)
		key, _, stale, err := record.NewSigned(sk.priv, salt, staleSeq, old)
		if err != nil {
			panic(err) // a salt under 64 bytes and a value the scenario bounds
		}
		_, _, current, err := record.NewSigned(sk.priv, salt, currentSeq, cur)
		if err != nil {
			panic(err)
		}
		env, _ := record.Parse(current)
		env.Value = bytes.Repeat([]byte("F"), len(cur))
		sk.keys = append(sk.keys, key)
		sk.index[key] = i
		sk.stale = append(sk.stale, stale)
		sk.current = append(sk.current, current)
		sk.forgery = append(sk.forgery, env.Append(nil))
	}
	return sk
}

// want is the right answer to a get of key i and its version (0 for plain
// values).
func (a *adversary) want(i int) ([]byte, uint64) {
	if a.sk != nil {
		return a.sk.current[i], currentSeq
	}
	return a.e.value(i), 0
}

// refused sums the honest nodes' refused (forged) records.
func (a *adversary) refused() uint64 {
	var n uint64
	for _, sn := range a.e.live {
		if a.honestNode(sn) {
			n += sn.n.Stats().ForgedRecords
		}
	}
	return n
}

// putSigned is the put phase of a signed run: every key at staleSeq,
// then every key at currentSeq, each from a random live node (a key's two
// puts may overlap; the stores keep the higher sequence whatever the
// order). The forgers captured sequence 1 (they turn after this phase);
// the report's replicas are those of sequence 2.
func (e *engine) putSigned() error {
	sk, keys := e.adv.sk, e.sc.Keys
	return e.putEach(2*keys, func(i int, cb func(*core.PutResult, error)) {
		k, seq, data := i, uint64(staleSeq), sk.stale
		if i >= keys {
			k, seq, data = i-keys, currentSeq, sk.current
		}
		req := core.PutRequest{Key: sk.keys[k], Value: data[k], TTL: valueTTL, Publisher: sk.publisher, Version: seq, Envelope: true}
		e.randomLive().n.PutRecord(req, cb)
	}, func(i int) bool { return i >= keys })
}

// closestOf appends to dst the k contacts of sorted (ascending by ID)
// closest to target, skip left out, nearest first. The contacts sharing
// the longest prefix with target that still number more than k are a
// range of sorted, and every one of them is closer than any outside it,
// so only that range (a few k) is sorted by distance. scratch is reused.
func closestOf(sorted []id.Contact, target id.ID, k int, skip id.ID, dst []id.Contact, scratch *[]id.Contact) []id.Contact {
	span := func(b int) (lo, hi int) {
		low, high := target, target
		if b < id.Len*8 {
			j := b / 8
			mask := byte(0xff >> (b % 8))
			low[j] &^= mask
			high[j] |= mask
			for i := j + 1; i < id.Len; i++ {
				low[i], high[i] = 0, 0xff
			}
		}
		lo, _ = slices.BinarySearchFunc(sorted, low, func(c id.Contact, x id.ID) int { return c.ID.Compare(x) })
		hi, _ = slices.BinarySearchFunc(sorted, high, func(c id.Contact, x id.ID) int {
			if c.ID.Compare(x) <= 0 {
				return -1
			}
			return 1
		})
		return lo, hi
	}
	// The longest prefix b whose range holds more than k (one may be
	// skip); the range shrinks as b grows.
	b0, b1 := 0, id.Len*8
	for b0 < b1 {
		mid := (b0 + b1 + 1) / 2
		if lo, hi := span(mid); hi-lo > k {
			b0 = mid
		} else {
			b1 = mid - 1
		}
	}
	lo, hi := span(b0)
	near := append((*scratch)[:0], sorted[lo:hi]...)
	slices.SortFunc(near, func(x, y id.Contact) int { return id.CompareDistance(target, x.ID, y.ID) })
	*scratch = near
	n := 0
	for _, c := range near {
		if n == k {
			break
		}
		if c.ID != skip {
			dst = append(dst, c)
			n++
		}
	}
	return dst
}
