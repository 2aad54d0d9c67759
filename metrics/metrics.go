// Package metrics exposes a DHT node's counters (dht.Stats) as Prometheus
// metrics, with the official client library.
//
// A Collector reads one Stats snapshot per scrape, so the node keeps no
// Prometheus state of its own and pays nothing between scrapes. Handler
// serves a Collector, with the Go runtime's and the process's metrics, from
// a registry of its own:
//
//	http.Handle("/metrics", metrics.Handler(metrics.NewCollector(node.Stats)))
//
// Every metric name starts with "dht_". Counters count since the node
// started; the gauges say how things are now.
package metrics

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/dhtkit/dht"
	"github.com/dhtkit/dht/internal/core"
)

// Collector is a prometheus.Collector of one node's Stats. It is safe for
// concurrent use (as the stats function must be). Make it with NewCollector;
// the zero value is not usable.
type Collector struct {
	stats func() dht.Stats
}

// NewCollector returns a Collector that calls stats (typically a node's
// Stats method) once per scrape.
func NewCollector(stats func() dht.Stats) *Collector { return &Collector{stats: stats} }

// Handler serves the Prometheus text format of c, the Go runtime's metrics
// and the process's (CPU, memory, open files) from a registry of its own, at
// whatever path it is mounted on. It panics if c's metrics clash with the
// Go or process collectors'.
func Handler(c prometheus.Collector) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, ErrorHandling: promhttp.ContinueOnError})
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("dht_"+name, help, labels, nil)
}

// The metrics, one Desc each.
var (
	datagramsReceived = desc("datagrams_received_total", "Datagrams the node received.")
	datagramsSent     = desc("datagrams_sent_total", "Datagrams the node sent: requests (retries included) and answers.")
	datagramsDropped  = desc("datagrams_dropped_total",
		"Datagrams dropped, by reason: malformed (did not decode), wrong_network (another network's ID), "+
			"unmatched (an answer to no request in flight: late, duplicate or forged), read_only (a request to a read-only node), "+
			"rpc_full (a request not sent: too many in flight and the queue full), send_buffer_full (an answer the socket's send buffer had no room for), "+
			"send_error (refused by the kernel), no_route (no socket of the destination's address family).", "reason")

	sealedDropped = desc("sealed_dropped_total",
		"On a private network, datagrams dropped before they were parsed, by reason: malformed (too short, or a bad prefix), "+
			"plain (an unsealed message: a node without the secret), wrong_network (another network ID), bad_tag (another secret, or altered), "+
			"stale (a counter outside the freshness window), replay (seen before), too_large (an outgoing datagram too large to seal).", "reason")

	requestsSent = desc("requests_sent_total",
		"Requests the node sent, by request type and how they ended: answered, refused (an ERROR answer), "+
			"timeout (no answer after every attempt), abandoned (forgotten unanswered because their operation ended or moved on).",
		"type", "outcome")
	requestAttempts = desc("request_attempts_total", "Request datagrams the node sent, retries included, by request type.", "type")
	requestRetries  = desc("request_retries_total", "Requests sent again after a timeout.")
	requestErrors   = desc("request_errors_total", "ERROR answers to the node's requests, by error code.", "code")
	requestsQueued  = desc("requests_queued_total", "Requests that waited for a free slot before going out.")
	requestsFlight  = desc("requests_in_flight", "Requests waiting for an answer now.")
	requestDuration = desc("request_duration_seconds",
		"Round-trip times of the node's answered requests (from the attempt last sent), by group: "+
			"lookup (FIND_NODE, FIND_VALUE, GET), store (STORE, PUT, DELETE), other (PING, FETCH, LISTEN, NOTIFY).", "group")
	lookupStalls = desc("lookup_stalls_total", "Lookup requests slow enough that the lookup moved on without them.")

	requestsServed = desc("requests_served_total", "Requests the node served, by request type.", "type")
	errorsSent     = desc("errors_sent_total", "ERROR answers the node sent, by error code.", "code")

	lookupsStarted = desc("lookups_started_total", "Lookups started, by kind: node (FIND_NODE) or value (GET).", "kind")
	lookupsEnded   = desc("lookups_total",
		"Lookups that ended, by kind and outcome: complete, incomplete (stopped at a bound, or a holder had more values than it sent), "+
			"no_answer (no node answered), abandoned (canceled first).", "kind", "outcome")
	lookupRequests = desc("lookup_requests_total", "Requests sent by the lookups that ended, retries included, by kind.", "kind")
	lookupRounds   = desc("lookup_rounds", "Hop counts of the lookups that ended, by kind.", "kind")
	lookupQueried  = desc("lookup_queried_contacts", "Distinct contacts each lookup that ended asked, by kind.", "kind")
	lookupDuration = desc("lookup_duration_seconds", "How long the lookups that ended took, by kind.", "kind")
	refreshes      = desc("bucket_refreshes_total", "Bucket refreshes due (those skipped included).")
	refreshSkips   = desc("bucket_refreshes_skipped_total", "Bucket refreshes that sent nothing: the bucket held K fresh contacts already.")
	keepAlives     = desc("keepalives", "Values this node republishes for its program (keep-alives) now.")
	republishes    = desc("republishes_total",
		"Republishes of kept-alive values, by outcome: ok, failed (retried later), superseded (the keep-alive ended: a newer version was stored).", "outcome")
	pathCache = desc("path_cache_puts_total",
		"Copies a get cached on its lookup path, by outcome: sent, accepted, refused (refused or unanswered).", "outcome")
	rejoins = desc("rejoins_total", "Joins through the seeds started because the routing table was empty.")

	rateLimited = desc("ratelimit_dropped_total", "Requests dropped unanswered because their source host (an IPv4 address, an IPv6 /64) was over its rate limit.")
	crowded     = desc("routing_diversity_refused_total", "Contacts the routing table refused because their /24 (IPv4) or /48 (IPv6) held its share of a bucket or of the table.")

	storesAccepted = desc("stores_accepted_total", "STORE, PUT and DELETE requests accepted.")
	storeRefusals  = desc("store_refusals_total",
		"STORE, PUT and DELETE requests refused, by reason: too_large, store_full (MaxValues or MaxBytes), key_full (MaxPerKey or MaxBytesPerKey), "+
			"quota (a source's, site's or publisher's share), bad_ttl, stale (not newer than the held version), busy (the disk cannot take it), "+
			"too_many (too many values arriving in parts), invalid (a record that breaks its kind's rules), conflict (a compare-and-swap on another sequence), other.", "reason")
	expired       = desc("expired_records_total", "Records removed by expiry sweeps.")
	storedRecords = desc("stored_records", "Records in the store (tombstones and expired records not yet swept included).")
	storedBytes   = desc("stored_bytes", "Bytes of data in the store.")

	tableContacts = desc("routing_table_contacts",
		"Contacts in each routing-table bucket; bucket i holds the contacts whose IDs share i leading bits with the node's (the last bucket: at least i).", "bucket")
	tableBuckets  = desc("routing_table_buckets", "Buckets of the routing table.")
	listeners     = desc("listeners", "Other nodes' subscriptions to keys held by this node.")
	subscriptions = desc("subscriptions", "This node's own subscriptions (listens) in progress.")
	suppressed    = desc("debug_lines_suppressed_total", "Debug log lines dropped by the log's rate limit.")
	forged        = desc("forged_records_total", "Enveloped records this node dropped as a reader because they failed verification (a bad signature, or a key, publisher or version not bound to the envelope): a node served a forgery.")
	listenDropped = desc("listen_dropped_total",
		"What the listen paths dropped to stay bounded, by reason: notify (a NOTIFY not sent: the NOTIFYs in flight held their share), "+
			"listener (a listener that left two NOTIFYs unanswered), short_notify (a NOTIFY too short to pay for its fetch), "+
			"fetch (a notified record not fetched: the subscription's fetches were full), coalesced (an event replaced by a newer one "+
			"of its publisher while the callback fell behind), lost (an event dropped past that), listen (a LISTEN refused busy).", "reason")
)

var allDescs = []*prometheus.Desc{
	datagramsReceived, datagramsSent, datagramsDropped, sealedDropped,
	requestsSent, requestAttempts, requestRetries, requestErrors, requestsQueued, requestsFlight, requestDuration, lookupStalls,
	requestsServed, errorsSent,
	lookupsStarted, lookupsEnded, lookupRequests, lookupRounds, lookupQueried, lookupDuration, refreshes, refreshSkips, keepAlives, republishes, pathCache, rejoins,
	rateLimited, crowded,
	storesAccepted, storeRefusals, expired, storedRecords, storedBytes,
	tableContacts, tableBuckets, listeners, subscriptions, suppressed, listenDropped, forged,
}

// Describe sends the descriptions of every metric c exports.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

// requestTypes are the request types, in the order of the protocol.
var requestTypes = []string{"PING", "FIND_NODE", "FIND_VALUE", "STORE", "PUT", "GET", "FETCH", "DELETE", "LISTEN", "NOTIFY"}

// Collect takes a snapshot of the node's Stats and sends it as metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v int, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	histogram := func(d *prometheus.Desc, h core.Histogram, labels ...string) {
		buckets := make(map[float64]uint64, len(h.Bounds))
		var cum uint64
		for i, b := range h.Bounds {
			cum += h.Counts[i]
			buckets[b] = cum
		}
		ch <- prometheus.MustNewConstHistogram(d, h.Count, h.Sum, buckets, labels...)
	}

	counter(datagramsReceived, s.PacketsIn)
	counter(datagramsSent, s.PacketsOut)
	for _, d := range []struct {
		reason string
		v      uint64
	}{
		{"malformed", s.Malformed}, {"wrong_network", s.WrongNetwork}, {"unmatched", s.Unmatched},
		{"read_only", s.ReadOnlyDropped}, {"rpc_full", s.RPCFull}, {"identity", s.Identity.Failed},
		{"send_buffer_full", s.SendDropped}, {"send_error", s.SendErrors}, {"no_route", s.NoRoute},
	} {
		counter(datagramsDropped, d.v, d.reason)
	}

	for reason, v := range s.SealedDropped {
		counter(sealedDropped, v, reason)
	}

	for _, t := range requestTypes {
		r := s.Sent[t]
		counter(requestsSent, r.Answered, t, "answered")
		counter(requestsSent, r.Refused, t, "refused")
		counter(requestsSent, r.Timeouts, t, "timeout")
		counter(requestsSent, r.Abandoned, t, "abandoned")
		counter(requestAttempts, r.Sent, t)
		counter(requestsServed, s.Served[t], t)
	}
	counter(requestRetries, s.Retries)
	for code, v := range s.RequestErrors {
		counter(requestErrors, v, code)
	}
	for code, v := range s.ErrorsSent {
		counter(errorsSent, v, code)
	}
	counter(requestsQueued, s.RPCQueued)
	gauge(requestsFlight, s.InFlight)
	for _, g := range core.LatencyGroups {
		histogram(requestDuration, s.Latency[g], g)
	}
	counter(lookupStalls, s.Stalls)

	for _, k := range core.LookupKinds {
		l := s.Lookups[k]
		counter(lookupsStarted, l.Started, k)
		counter(lookupsEnded, l.Complete, k, "complete")
		counter(lookupsEnded, l.Incomplete, k, "incomplete")
		counter(lookupsEnded, l.NoAnswer, k, "no_answer")
		counter(lookupsEnded, l.Abandoned, k, "abandoned")
		counter(lookupRequests, l.Messages, k)
		histogram(lookupRounds, l.Rounds, k)
		histogram(lookupQueried, l.Queried, k)
		histogram(lookupDuration, l.Duration, k)
	}
	counter(refreshes, s.Refreshes)
	counter(refreshSkips, s.RefreshesSkipped)
	gauge(keepAlives, s.KeepAlive.Active)
	counter(republishes, s.KeepAlive.Republished, "ok")
	counter(republishes, s.KeepAlive.Failed, "failed")
	counter(republishes, s.KeepAlive.Superseded, "superseded")
	counter(pathCache, s.PathCache.Sent, "sent")
	counter(pathCache, s.PathCache.Accepted, "accepted")
	counter(pathCache, s.PathCache.Refused, "refused")
	counter(rejoins, s.Rejoins)
	counter(rateLimited, s.RateLimited)
	counter(crowded, s.Crowded)

	counter(storesAccepted, s.StoresAccepted)
	for _, r := range core.RefusalReasons {
		counter(storeRefusals, s.StoreRefusals[r], r)
	}
	counter(expired, s.Expired)
	gauge(storedRecords, s.StoredValues)
	gauge(storedBytes, s.StoredBytes)

	for i, n := range s.BucketSizes {
		gauge(tableContacts, n, strconv.Itoa(i))
	}
	gauge(tableBuckets, s.Buckets)
	gauge(listeners, s.Listeners)
	gauge(subscriptions, s.Subscriptions)
	counter(suppressed, s.DebugSuppressed)
	counter(forged, s.ForgedRecords)
	ld := s.Listen
	counter(listenDropped, ld.NotifiesDropped, "notify")
	counter(listenDropped, ld.ListenersDropped, "listener")
	counter(listenDropped, ld.NotifiesShort, "short_notify")
	counter(listenDropped, ld.FetchesDropped, "fetch")
	counter(listenDropped, ld.EventsCoalesced, "coalesced")
	counter(listenDropped, ld.EventsLost, "lost")
	counter(listenDropped, ld.ListensRefused, "listen")
}
