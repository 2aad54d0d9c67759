package sim

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/internal/core"
	"github.com/dhtkit/dht/store"
	"github.com/dhtkit/dht/transport"
)

// Waves describes a network replaced a share at a time: Count times, Every
// apart, Share of Nodes leave at once (vanishing, as in churn) and as many
// new nodes join. A probe of the first ProbeKeys keys runs 40s before each
// next wave (and as long after the last). With Count 9 and Share 0.1, 90% of
// the nodes are new by the end; with Every 6m that is within one default
// replication interval.
type Waves struct {
	Count int      `json:"count"` // waves, 1 to 100
	Share float64  `json:"share"` // of Nodes replaced per wave, above 0 and at most 1
	Every Duration `json:"every"` // between waves (default 6m)
}

// WavesReport describes the waves phase: one probe per wave.
type WavesReport struct {
	Replaced int         `json:"replaced"` // nodes replaced per wave
	Probes   []WaveProbe `json:"probes"`
}

// WaveProbe is the probe after one wave. For the keys not found it says
// why: no live node held a replica any more (every holder left before a
// copy reached a newer node), or some did and the lookups missed them.
type WaveProbe struct {
	Wave     int      `json:"wave"`
	At       Duration `json:"at"` // since the phase started
	Live     int      `json:"live"`
	Original int      `json:"original"` // live nodes that were there before the first wave
	Keys     int      `json:"keys"`
	Found    int      `json:"found"`
	Share    float64  `json:"share"`
	// LostNoReplica counts the keys not found that no live node holds;
	// LostHeld those some live node holds.
	LostNoReplica int `json:"lost_no_replica"`
	LostHeld      int `json:"lost_held"`
	// LostOffClosest counts, of LostHeld, the keys none of whose K
	// closest live nodes holds a replica: they are held only farther
	// away, where lookups, which converge on the K closest, do not look.
	LostOffClosest int `json:"lost_off_closest"`
	// How the lookups of keys not found ended: not found, no answer (every
	// node asked timed out), another error, or values none of them the one
	// stored.
	NotFound int `json:"not_found"`
	Timeouts int `json:"timeouts"`
	Errors   int `json:"errors"`
	Wrong    int `json:"wrong"`
	// Unanswered counts the lookups not found in which no node asked
	// answered: the asking node knew only departed nodes near the key
	// (a stale routing table, not a lost key).
	Unanswered int `json:"unanswered"`
	// Replicas is how many live nodes hold each probed key.
	Replicas     Dist    `json:"replicas"`
	LatencyP50MS float64 `json:"latency_p50_ms"`
	LatencyP99MS float64 `json:"latency_p99_ms"`
}

// MaintenanceReport is the idle phase's traffic: every datagram of it is
// maintenance, since nothing else runs.
type MaintenanceReport struct {
	Virtual   Duration `json:"virtual"`
	Values    int      `json:"values"`   // records held by all live nodes at the start
	PerNode   float64  `json:"per_node"` // Values / live nodes
	Datagrams uint64   `json:"datagrams"`
	Bytes     uint64   `json:"bytes"`
	// Per stored value (record held by a node) and hour of virtual time.
	DatagramsPerValueHour float64 `json:"datagrams_per_value_hour"`
	BytesPerValueHour     float64 `json:"bytes_per_value_hour"`
	// Replication is the part of it replication's counters explain.
	Replication core.ReplicationStats `json:"replication"`
}

func (s *Scenario) validateMaintenance() error {
	if w := s.Waves; w != nil {
		if w.Every == 0 {
			w.Every = Duration(6 * time.Minute)
		}
		switch {
		case w.Count < 1 || w.Count > 100:
			return fmt.Errorf("waves.count = %d: must be from 1 to 100", w.Count)
		case !(w.Share > 0 && w.Share <= 1):
			return fmt.Errorf("waves.share = %v: must be a share of the nodes above 0 and at most 1", w.Share)
		case w.Every.D() < time.Minute || w.Every.D() > MaxPhase:
			return fmt.Errorf("waves.every = %v: must be a duration from 1m to 24h", w.Every)
		}
	}
	switch {
	case s.Idle < 0 || s.Idle.D() > MaxPhase:
		return fmt.Errorf("idle = %v: must be a duration from 0 to 24h", s.Idle)
	case s.ReplicateInterval > 0 && s.ReplicateInterval.D() < time.Second:
		return fmt.Errorf("replicate_interval = %v: must be at least 1s, 0 for the default or negative for none", s.ReplicateInterval)
	}
	return nil
}

// waves replaces the network a share at a time and probes after each wave.
func (e *engine) waves() error {
	wv := e.sc.Waves
	span := time.Duration(wv.Count) * wv.Every.D()
	e.beginPhase(PhaseWaves, int(span/time.Second))
	wr := &WavesReport{Replaced: int(math.Round(wv.Share * float64(e.sc.Nodes)))}
	e.r.Waves = wr
	start := e.clk.Now()
	original := map[*simNode]bool{}
	var olds []*simNode // original nodes still live, seeds left out
	for _, sn := range e.live {
		original[sn] = true
		if !sn.seed {
			olds = append(olds, sn)
		}
	}
	pending := 0 // probes and joins running
	for w := 1; w <= wv.Count; w++ {
		e.clk.AfterFunc(time.Duration(w-1)*wv.Every.D(), func() {
			// The leavers are drawn from the nodes that were there before
			// the first wave (seeds aside), so that Count x Share of the
			// network is new at the end.
			for range wr.Replaced {
				if i := e.pickOriginal(olds); i >= 0 {
					sn := olds[i]
					olds[i] = olds[len(olds)-1]
					olds = olds[:len(olds)-1]
					e.leave(sn)
				}
				sn, err := e.newNode()
				if err != nil {
					continue
				}
				pending++
				sn.n.Bootstrap(e.seeds, func(_ *core.BootstrapResult, err error) {
					if e.closing {
						return
					}
					pending--
					if err == nil {
						e.addLive(sn)
					}
				})
			}
		})
		// The probe runs late in the gap, what replication made of this
		// wave, and early enough that its lookups (30s at most) end
		// before the next wave closes the nodes they ask from.
		e.clk.AfterFunc(time.Duration(w)*wv.Every.D()-probeLead, func() {
			pending++
			e.waveProbe(w, start, original, func(p WaveProbe) {
				pending--
				wr.Probes = append(wr.Probes, p)
			})
		})
	}
	end := start.Add(span)
	ok, err := e.advance(end.Add(10*time.Minute), func() bool {
		e.done = int(e.clk.Now().Sub(start) / time.Second)
		return e.clk.Now().Before(end) || pending > 0
	})
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("waves: %d probes and joins still running 10m after the last wave", pending)
	}
	return nil
}

// pickOriginal returns the index of a random node of olds that is still
// live, or -1 when none is.
func (e *engine) pickOriginal(olds []*simNode) int {
	if len(olds) == 0 {
		return -1
	}
	return e.rng.IntN(len(olds))
}

// probeLead is how long before the next wave a wave's probe starts.
const probeLead = 40 * time.Second

// waveProbe looks up each of the first ProbeKeys keys from a random live
// node, and for those not found counts the live nodes holding a replica.
func (e *engine) waveProbe(wave int, start time.Time, original map[*simNode]bool, then func(WaveProbe)) {
	p := WaveProbe{Wave: wave, At: Duration(e.clk.Now().Sub(start)), Live: len(e.live)}
	for _, sn := range e.live {
		if original[sn] {
			p.Original++
		}
	}
	acc := newLookupAcc(e.sc.ProbeKeys)
	left := e.sc.ProbeKeys
	lost := make([]bool, e.sc.ProbeKeys)
	for k := range e.sc.ProbeKeys {
		e.randomLive().n.Get(e.keys[k], func(r *core.LookupResult, err error) {
			if e.closing {
				return
			}
			lost[k] = !acc.add(r, err, e.value(k))
			if lost[k] && r != nil && r.Queried > 0 && r.Responded == 0 {
				p.Unanswered++
			}
			if left--; left > 0 {
				return
			}
			p.Keys, p.Found = acc.n, acc.found
			p.NotFound, p.Timeouts, p.Errors, p.Wrong = acc.notFound, acc.timeouts, acc.errs, acc.wrong
			p.Share = float64(acc.found) / float64(acc.n)
			lat := latencyDist(acc.latencyUS)
			p.LatencyP50MS, p.LatencyP99MS = lat.P50, lat.P99
			var replicas []int32
			p.LostNoReplica, p.LostHeld, p.LostOffClosest, replicas = e.lostReasons(lost)
			p.Replicas = intDist(replicas, true)
			then(p)
		})
	}
}

// preload puts every key's record straight into its K closest live nodes.
func (e *engine) preload() error {
	sc := e.sc
	e.beginPhase(PhasePut, sc.Keys)
	pr := &e.r.Put
	pr.Keys = sc.Keys
	now := e.clk.Now()
	live := slices.Clone(e.live)
	replicas := make([]int32, 0, sc.Keys)
	for k, key := range e.keys {
		slices.SortFunc(live, func(a, b *simNode) int { return id.CompareDistance(key, a.n.ID(), b.n.ID()) })
		v := store.Value{Publisher: key, Version: 1, Expires: now.Add(valueTTL), Data: e.value(k)}
		stored := int32(0)
		for _, sn := range live[:min(sc.K, len(live))] {
			if err := sn.n.Store().Put(key, v, netip.Addr{}, now); err != nil {
				return fmt.Errorf("preload: key %d: %w", k, err)
			}
			stored++
		}
		replicas = append(replicas, stored)
		pr.Stored++
		e.done++
	}
	pr.Replicas = intDist(replicas, true)
	return nil
}

// storeLimits are the nodes' store limits: the defaults, with room for a
// preloaded share of the keys.
func (e *engine) storeLimits() store.Limits {
	if !e.sc.Preload {
		return store.Limits{}
	}
	share := 2 * e.sc.Keys * e.sc.K / max(e.sc.Nodes, 1)
	return store.Limits{MaxValues: max(store.DefaultMaxValues, share), MaxPerPublisher: store.DefaultMaxPerPublisher}
}

// lostReasons counts, of the probed keys lost (by index), those no live
// node holds, those some do, and of those the keys none of their K closest
// holds; and it returns how many live nodes hold each probed key.
func (e *engine) lostReasons(lost []bool) (noReplica, held, offClosest int, replicas []int32) {
	now := e.clk.Now()
	replicas = make([]int32, len(lost))
	for i := range lost {
		for _, sn := range e.live {
			if len(sn.n.Store().Get(e.keys[i], now, nil)) > 0 {
				replicas[i]++
			}
		}
		switch {
		case !lost[i]:
		case replicas[i] == 0:
			noReplica++
		default:
			held++
			if !e.heldByClosest(e.keys[i], now) {
				offClosest++
			}
		}
	}
	return noReplica, held, offClosest, replicas
}

// heldByClosest reports whether one of key's K closest live nodes holds it.
func (e *engine) heldByClosest(key id.ID, now time.Time) bool {
	live := slices.Clone(e.live)
	slices.SortFunc(live, func(a, b *simNode) int { return id.CompareDistance(key, a.n.ID(), b.n.ID()) })
	for _, sn := range live[:min(e.sc.K, len(live))] {
		if len(sn.n.Store().Get(key, now, nil)) > 0 {
			return true
		}
	}
	return false
}

// idle runs the network with nothing to do but maintenance.
func (e *engine) idle() error {
	d := e.sc.Idle.D()
	e.beginPhase(PhaseIdle, int(d/time.Second))
	mr := &MaintenanceReport{Virtual: e.sc.Idle}
	e.r.Maintenance = mr
	for _, sn := range e.live {
		mr.Values += sn.n.Store().Len()
	}
	mr.PerNode = float64(mr.Values) / float64(max(len(e.live), 1))
	before := e.replTotals()
	sent, bytes := e.net.Stats().Sent, *e.bytes
	start := e.clk.Now()
	end := start.Add(d)
	if _, err := e.advance(end, func() bool {
		e.done = int(e.clk.Now().Sub(start) / time.Second)
		return e.clk.Now().Before(end)
	}); err != nil {
		return err
	}
	mr.Datagrams = e.net.Stats().Sent - sent
	mr.Bytes = *e.bytes - bytes
	after := e.replTotals()
	mr.Replication = subRepl(after, before)
	if hours := d.Hours(); mr.Values > 0 && hours > 0 {
		mr.DatagramsPerValueHour = float64(mr.Datagrams) / float64(mr.Values) / hours
		mr.BytesPerValueHour = float64(mr.Bytes) / float64(mr.Values) / hours
	}
	return nil
}

// endpoint makes a node's transport: memnet's, wrapped to count the bytes
// sent when the run has an idle phase to measure.
func (e *engine) endpoint() transport.Transport {
	ep := e.net.NewEndpoint()
	if e.sc.Idle <= 0 {
		return ep
	}
	if e.bytes == nil {
		e.bytes = new(uint64)
	}
	return &counting{Transport: ep, n: e.bytes}
}

// counting is a Transport that adds the size of every datagram sent,
// requests and answers, to n. The simulator runs on one goroutine.
type counting struct {
	transport.Transport
	n *uint64
}

func (c *counting) Send(pkts []transport.Packet) error {
	for i := range pkts {
		*c.n += uint64(len(pkts[i].Data))
	}
	return c.Transport.Send(pkts)
}

func (c *counting) Start(h transport.Handler) error {
	return c.Transport.Start(&countingHandler{h: h, w: countingWriter{n: c.n}})
}

type countingHandler struct {
	h transport.Handler
	w countingWriter
}

type countingWriter struct {
	w transport.Writer
	n *uint64
}

func (w *countingWriter) WriteTo(b []byte, to netip.AddrPort) {
	*w.n += uint64(len(b))
	w.w.WriteTo(b, to)
}

func (c *countingHandler) HandlePacket(data []byte, from netip.AddrPort, w transport.Writer) {
	cw := c.w // a copy per call: a handler call may run inside another's
	cw.w = w
	c.h.HandlePacket(data, from, &cw)
}

func (c *countingHandler) HandleBatch(pkts []transport.Packet, w transport.Writer) {
	cw := c.w
	cw.w = w
	if bh, ok := c.h.(transport.BatchHandler); ok {
		bh.HandleBatch(pkts, &cw)
		return
	}
	for i := range pkts {
		c.h.HandlePacket(pkts[i].Data, pkts[i].Addr, &cw)
	}
}

// replTotals adds up the replication counters of every node.
func (e *engine) replTotals() core.ReplicationStats {
	t := e.leftRepl
	for _, sn := range e.nodes {
		if sn.n != nil {
			addRepl(&t, sn.n.ReplicationStats())
		}
	}
	return t
}

func addRepl(t *core.ReplicationStats, s core.ReplicationStats) {
	*t = combineRepl(*t, s, 1)
}

func subRepl(a, b core.ReplicationStats) core.ReplicationStats { return combineRepl(a, b, -1) }

// combineRepl returns a + sign*b, field by field.
func combineRepl(a, b core.ReplicationStats, sign int) core.ReplicationStats {
	f := func(x, y uint64) uint64 {
		if sign < 0 {
			return x - y
		}
		return x + y
	}
	return core.ReplicationStats{
		Passes: f(a.Passes, b.Passes), EventPasses: f(a.EventPasses, b.EventPasses),
		Lookups: f(a.Lookups, b.Lookups), RegionsCapped: f(a.RegionsCapped, b.RegionsCapped),
		LookupMessages: f(a.LookupMessages, b.LookupMessages),
		Offers:         f(a.Offers, b.Offers), OfferedDigests: f(a.OfferedDigests, b.OfferedDigests),
		OfferBytes: f(a.OfferBytes, b.OfferBytes), Wanted: f(a.Wanted, b.Wanted), BadWants: f(a.BadWants, b.BadWants),
		Transfers: f(a.Transfers, b.Transfers), TransferDatagrams: f(a.TransferDatagrams, b.TransferDatagrams),
		TransferBytes: f(a.TransferBytes, b.TransferBytes), Accepted: f(a.Accepted, b.Accepted),
		Refused: f(a.Refused, b.Refused), Skipped: f(a.Skipped, b.Skipped),
		OffersServed: f(a.OffersServed, b.OffersServed), DigestsServed: f(a.DigestsServed, b.DigestsServed),
		DigestsWanted: f(a.DigestsWanted, b.DigestsWanted), Newcomers: f(a.Newcomers, b.Newcomers),
		Departures: f(a.Departures, b.Departures), EventsDropped: f(a.EventsDropped, b.EventsDropped),
		NeighbourPings: f(a.NeighbourPings, b.NeighbourPings),
	}
}

// writeMaintenance writes the waves, maintenance and replication lines of
// the text report.
func (r *Report) writeMaintenance(p func(format string, a ...any)) {
	if w := r.Waves; w != nil {
		s := r.Scenario.Waves
		p("waves\t%d waves of %d nodes replaced, %v apart", s.Count, w.Replaced, s.Every)
		for _, q := range w.Probes {
			p("  after wave %d\t%d live (%d original): %d/%d keys found (%s); lost: %d with no live replica, %d held (%d by none of their %d closest; lookups: %d not found, %d no answer, %d errors, %d wrong, %d asked only departed nodes); replicas %s",
				q.Wave, q.Live, q.Original, q.Found, q.Keys, pct(q.Share), q.LostNoReplica, q.LostHeld, q.LostOffClosest, r.Scenario.K,
				q.NotFound, q.Timeouts, q.Errors, q.Wrong, q.Unanswered, q.Replicas.summary(""))
		}
	}
	if m := r.Maintenance; m != nil {
		p("maintenance\t%v idle, %d values held (%.0f per node): %d datagrams, %s; per value and hour %.3f datagrams, %.1f bytes",
			m.Virtual, m.Values, m.PerNode, m.Datagrams, bytesIEC(m.Bytes), m.DatagramsPerValueHour, m.BytesPerValueHour)
		x := &m.Replication
		p("  of which replication\t%d region lookups (%d requests), %d OFFERs (%d digests), %d records sent",
			x.Lookups, x.LookupMessages, x.Offers, x.OfferedDigests, x.Transfers)
	}
	x := &r.Replication
	p("replication\t%d periodic and %d event passes, %d region lookups (%d requests), %d OFFERs (%d digests, %d wanted), %d records sent (%d accepted, %d refused), %d skipped as received; %d newcomers, %d departures, %d events dropped, %d neighbour pings",
		x.Passes, x.EventPasses, x.Lookups, x.LookupMessages, x.Offers, x.OfferedDigests, x.Wanted, x.Transfers, x.Accepted, x.Refused, x.Skipped, x.Newcomers, x.Departures, x.EventsDropped, x.NeighbourPings)
}
