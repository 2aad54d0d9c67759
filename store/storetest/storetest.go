// Package storetest is the conformance suite for store.Store: every
// implementation runs it from its own tests, so that the node can swap one
// store for another without noticing.
//
//	func TestMemoryConforms(t *testing.T) {
//		storetest.Run(t, func(l store.Limits) store.Store {
//			return store.NewMemory(l)
//		})
//	}
//
// A persistent store may refuse a Put with store.ErrBusy while its queue to
// the disk is full; the suite then waits for the store to Sync, if it is a
// store.Syncer, and tries again, so that its tight loops test the policy and
// not the disk.
package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/store"
)

// Limits returns the limits the suite opens most stores with. They are
// small, so that the suite reaches each one in a few Puts, and distinct from
// each other, so that it can check that an error message names the number.
func Limits() store.Limits {
	return store.Limits{
		MaxValueSize: 123, MaxPerKey: 7, MaxBytesPerKey: 401,
		MaxValues: 41, MaxBytes: 2003, MaxPerPublisher: 13,
		MaxPerSource: 11, MaxBytesPerSource: 301, MaxPerKeyPerSource: 3, MaxBytesPerKeyPerSource: 163,
		MaxPerSite: 19, MaxBytesPerSite: 457, MaxPerKeyPerSite: 5, MaxBytesPerKeyPerSite: 229,
	}
}

// Run runs the conformance suite as subtests of t. open must return a new,
// empty store that enforces l (mostly Limits(); some subtests need room for
// more records); Run closes each store it opens. open may panic if it
// cannot open a store.
func Run(t *testing.T, open func(l store.Limits) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"EmptyValue", testEmptyValue},
		{"ExpiryIsWallClock", testExpiryIsWallClock},
		{"NewestFirst", testNewestFirst},
		{"ReplacementByPublisher", testReplacementByPublisher},
		{"LowerVersionIsStale", testLowerVersionIsStale},
		{"SameVersionSameBytesRefreshes", testSameVersionSameBytesRefreshes},
		{"SameVersionOtherBytesIsStale", testSameVersionOtherBytesIsStale},
		{"AnyArrivalOrder", testAnyArrivalOrder},
		{"TombstoneHidesValue", testTombstoneHidesValue},
		{"TombstoneBeatsStaleVersions", testTombstoneBeatsStaleVersions},
		{"TombstoneBeforeValue", testTombstoneBeforeValue},
		{"TombstoneExpires", testTombstoneExpires},
		{"HigherVersionRepublishes", testHigherVersionRepublishes},
		{"EnvelopeBeatsPlain", testEnvelopeBeatsPlain},
		{"PlainNeverReplacesEnvelope", testPlainNeverReplacesEnvelope},
		{"EnvelopesOrderByVersion", testEnvelopesOrderByVersion},
		{"TombstoneHasNoBytes", testTombstoneHasNoBytes},
		{"ExpiredInvisibleBeforeSweep", testExpiredInvisibleBeforeSweep},
		{"NextExpiry", testNextExpiry},
		{"LimitValueSize", testLimitValueSize},
		{"LimitPerKey", testLimitPerKey},
		{"LimitBytesPerKey", testLimitBytesPerKey},
		{"LimitTotal", testLimitTotal},
		{"LimitTotalBytes", testLimitTotalBytes},
		{"LimitPerPublisher", testLimitPerPublisher},
		{"OneSourceCannotFillAKey", testOneSourceCannotFillAKey},
		{"OneSourceCannotFillAKeysBytes", testOneSourceCannotFillAKeysBytes},
		{"OneSourceCannotFillTheStore", testOneSourceCannotFillTheStore},
		{"OneSourceCannotTakeTheBytes", testOneSourceCannotTakeTheBytes},
		{"SourcesGroupByHost", testSourcesGroupByHost},
		{"QuotaReleasedWhenRecordsExpire", testQuotaReleasedWhenRecordsExpire},
		{"OneSiteCannotFillAKey", testOneSiteCannotFillAKey},
		{"OneSiteCannotFillTheStore", testOneSiteCannotFillTheStore},
		{"NewestWriterIsCharged", testNewestWriterIsCharged},
		{"NodeItselfIsExemptFromQuotas", testNodeItselfIsExemptFromQuotas},
		{"ExpiryNotInFuture", testExpiryNotInFuture},
		{"PutCopiesData", testPutCopiesData},
		{"GetDataStableAcrossPuts", testGetDataStableAcrossPuts},
		{"LenAndBytes", testLenAndBytes},
		{"Lookup", testLookup},
		{"Keys", testKeys},
		{"KeysCallbackMayUseStore", testKeysCallbackMayUseStore},
		{"Close", testClose},
		{"ConcurrentPutGetSweep", testConcurrent},
		{"MatchesModel", testMatchesModel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, fresh(t, open, Limits())) })
	}
	roomy := store.Limits{MaxValues: 20_000, MaxPerPublisher: 20_000}
	t.Run("AscendIsKeyOrder", func(t *testing.T) { testAscendIsKeyOrder(t, fresh(t, open, roomy)) })
	t.Run("AscendAcrossBatchesAndChanges", func(t *testing.T) { testAscendAcrossBatchesAndChanges(t, fresh(t, open, roomy)) })
	t.Run("SweepWithoutFullScan", func(t *testing.T) {
		testSweepWithoutFullScan(t, fresh(t, open, store.Limits{MaxValues: 20_000, MaxPerPublisher: 20_000}))
	})
}

// fresh opens a store with l, to be closed when t ends, and checks that it
// is empty.
func fresh(t *testing.T, open func(store.Limits) store.Store, l store.Limits) store.Store {
	t.Helper()
	s := open(l)
	t.Cleanup(func() { _ = s.Close() })
	if n := s.Len(); n != 0 {
		t.Fatalf("open returned a store holding %d records, want an empty one", n)
	}
	return s
}

// t0 is an arbitrary instant; at(s) is s seconds after it. Stores read no
// clock, so the suite runs on these instants alone.
var t0 = time.Date(2031, time.March, 4, 5, 6, 7, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

func key(i int) id.ID { return id.Key(fmt.Sprintf("storetest key %d", i)) }

// pub is the i-th publisher of the suite.
func pub(i int) id.ID { return id.Key(fmt.Sprintf("storetest publisher %d", i)) }

// self is the source of the node's own puts.
var self netip.Addr

// Senders of stores, in distinct groups.
var (
	srcA = netip.MustParseAddr("203.0.113.7")
	srcB = netip.MustParseAddr("198.51.100.20")
	srcC = netip.MustParseAddr("2001:db8:c::1")
)

// val is a value of publisher p at version ver.
func val(p id.ID, ver uint64, data string, expires time.Time) store.Value {
	return store.Value{Publisher: p, Version: ver, Expires: expires, Data: []byte(data)}
}

// tomb is a tombstone of publisher p at version ver.
func tomb(p id.ID, ver uint64, expires time.Time) store.Value {
	return store.Value{Publisher: p, Version: ver, Expires: expires, Deleted: true}
}

// put is s.Put, waiting out store.ErrBusy (see the package comment).
func put(s store.Store, k id.ID, v store.Value, src netip.Addr, now time.Time) error {
	for range 1000 {
		err := s.Put(k, v, src, now)
		if !errors.Is(err, store.ErrBusy) {
			return err
		}
		waitSync(s)
	}
	return fmt.Errorf("storetest: the store stayed busy through 1000 Syncs")
}

// waitSync waits for s to Sync, if it can.
func waitSync(s store.Store) {
	sy, ok := s.(store.Syncer)
	if !ok {
		return
	}
	done := make(chan struct{})
	sy.Sync(func(error) { close(done) })
	<-done
}

// mustPut stores v as the node itself, which the source quotas leave alone,
// so that the other limits can be tested on their own.
func mustPut(t *testing.T, s store.Store, k id.ID, v store.Value, now time.Time) {
	t.Helper()
	mustPutFrom(t, s, self, k, v, now)
}

func mustPutFrom(t *testing.T, s store.Store, src netip.Addr, k id.ID, v store.Value, now time.Time) {
	t.Helper()
	if err := put(s, k, v, src, now); err != nil {
		t.Fatalf("Put(%s, %s, from %v, now %v) = %v, want nil", k.Short(), describe(v), src, now, err)
	}
}

// describe shows a record in a failure message.
func describe(v store.Value) string {
	what := fmt.Sprintf("%q", v.Data)
	if len(v.Data) > 20 {
		what = fmt.Sprintf("%q... (%d bytes)", v.Data[:12], len(v.Data))
	}
	if v.Deleted {
		what = "deleted"
		if len(v.Data) > 0 {
			what += fmt.Sprintf(" with data %q", v.Data)
		}
	}
	if v.Envelope {
		what = "envelope " + what
	}
	return fmt.Sprintf("{%s v%d %s until %s}", v.Publisher.Short(), v.Version, what, v.Expires.Format("15:04:05.000"))
}

func describeAll(vs []store.Value) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = describe(v)
	}
	return "[" + strings.Join(s, " ") + "]"
}

// same reports whether two records are equal in every field, expiries
// compared as instants and an empty Data equal to a nil one.
func same(a, b store.Value) bool {
	return a.Publisher == b.Publisher && a.Version == b.Version && a.Deleted == b.Deleted &&
		a.Envelope == b.Envelope && a.Expires.Equal(b.Expires) && bytes.Equal(a.Data, b.Data)
}

func sameAll(a, b []store.Value) bool { return slices.EqualFunc(a, b, same) }

// wantGet checks that Get(k, now) returns exactly want, in order.
func wantGet(t *testing.T, s store.Store, k id.ID, now time.Time, want ...store.Value) []store.Value {
	t.Helper()
	got := s.Get(k, now, nil)
	if !sameAll(got, want) {
		t.Fatalf("Get(%s, %v) = %s, want %s", k.Short(), now, describeAll(got), describeAll(want))
	}
	return got
}

// wantRecords checks that Records(k, now) returns exactly want, in order.
func wantRecords(t *testing.T, s store.Store, k id.ID, now time.Time, want ...store.Value) {
	t.Helper()
	if got := s.Records(k, now, nil); !sameAll(got, want) {
		t.Fatalf("Records(%s, %v) = %s, want %s", k.Short(), now, describeAll(got), describeAll(want))
	}
}

func wantLen(t *testing.T, s store.Store, want int) {
	t.Helper()
	if n := s.Len(); n != want {
		t.Fatalf("Len() = %d, want %d", n, want)
	}
}

func wantBytes(t *testing.T, s store.Store, want int) {
	t.Helper()
	if n := s.Bytes(); n != want {
		t.Fatalf("Bytes() = %d, want %d", n, want)
	}
}

// wantNumbers checks that err's message names each of the numbers, since
// the publisher only sees the message.
func wantNumbers(t *testing.T, err error, numbers ...int) {
	t.Helper()
	for _, n := range numbers {
		if !regexp.MustCompile(fmt.Sprintf(`(^|[^\w.:])%d($|[^\w.:])`, n)).MatchString(err.Error()) {
			t.Errorf("error %q does not name %d", err, n)
		}
	}
}

// wantLimit checks that err is the *store.LimitError of bound, matching
// sentinel, with the limit and the numbers (what is held and what the put
// wants) in its fields and in its message, and the group named, if given.
func wantLimit(t *testing.T, err, sentinel error, bound, group string, limit, have, want int) {
	t.Helper()
	var le *store.LimitError
	switch {
	case err == nil:
		t.Fatalf("Put = nil, want a refusal for %s", bound)
	case !errors.Is(err, sentinel):
		t.Fatalf("error = %v, want one matching %q", err, sentinel)
	case !errors.As(err, &le):
		t.Fatalf("error = %v (%T), want a *store.LimitError", err, err)
	}
	if le.Bound != bound || le.Limit != limit || le.Have != have || le.Want != want || le.Group != group {
		t.Errorf("LimitError = {Bound %q Limit %d Have %d Want %d Group %q}, want {%q %d %d %d %q}",
			le.Bound, le.Limit, le.Have, le.Want, le.Group, bound, limit, have, want, group)
	}
	if !strings.Contains(err.Error(), bound) {
		t.Errorf("error %q does not name the bound %s", err, bound)
	}
	if group != "" && !strings.Contains(err.Error(), group) {
		t.Errorf("error %q does not name %s", err, group)
	}
	wantNumbers(t, err, limit, want)
	if bound != "MaxValueSize" {
		wantNumbers(t, err, have)
	}
	if n := len(err.Error()); n > 255 {
		t.Errorf("error message is %d bytes, more than the 255 a refusal carries", n)
	}
}

// wantStale checks that err is a refusal as stale naming the numbers.
func wantStale(t *testing.T, err error, numbers ...int) {
	t.Helper()
	if !errors.Is(err, store.ErrStale) {
		t.Fatalf("error = %v, want one matching %q", err, store.ErrStale)
	}
	wantNumbers(t, err, numbers...)
}

// snapshot is everything a store shows under some keys, to check that a
// refused Put changed nothing.
type snapshot struct {
	recs       map[id.ID][]store.Value
	len, bytes int
	next       time.Time
	nextOK     bool
}

func snap(s store.Store, now time.Time, keys ...id.ID) snapshot {
	sn := snapshot{recs: map[id.ID][]store.Value{}, len: s.Len(), bytes: s.Bytes()}
	for _, k := range keys {
		sn.recs[k] = s.Records(k, now, nil)
	}
	sn.next, sn.nextOK = s.NextExpiry()
	return sn
}

// wantUnchanged checks that s shows what was snapped.
func wantUnchanged(t *testing.T, s store.Store, before snapshot, now time.Time) {
	t.Helper()
	for k, want := range before.recs {
		if got := s.Records(k, now, nil); !sameAll(got, want) {
			t.Fatalf("a refused Put changed %s: Records = %s, was %s", k.Short(), describeAll(got), describeAll(want))
		}
	}
	next, ok := s.NextExpiry()
	if s.Len() != before.len || s.Bytes() != before.bytes || ok != before.nextOK || !next.Equal(before.next) {
		t.Fatalf("a refused Put changed Len, Bytes, NextExpiry to %d, %d, %v; were %d, %d, %v",
			s.Len(), s.Bytes(), next, before.len, before.bytes, before.next)
	}
}

// refused checks that a Put of v is refused with a *store.LimitError for
// bound and changes nothing under keys.
func refused(t *testing.T, s store.Store, src netip.Addr, k id.ID, v store.Value, now time.Time,
	sentinel error, bound, group string, limit, have, want int, keys ...id.ID) {
	t.Helper()
	before := snap(s, now, append(keys, k)...)
	wantLimit(t, put(s, k, v, src, now), sentinel, bound, group, limit, have, want)
	wantUnchanged(t, s, before, now)
}

// sorted returns vs in the order of Store: the higher version first, then
// the lower publisher, written as plainly as possible.
func sorted(vs ...store.Value) []store.Value {
	out := slices.Clone(vs)
	slices.SortFunc(out, func(a, b store.Value) int {
		if a.Version != b.Version {
			if a.Version > b.Version {
				return -1
			}
			return 1
		}
		return bytes.Compare(a.Publisher[:], b.Publisher[:])
	})
	return out
}

// live returns the values among vs, tombstones left out.
func live(vs ...store.Value) []store.Value {
	return slices.DeleteFunc(slices.Clone(vs), func(v store.Value) bool { return v.Deleted })
}

func testRoundTrip(t *testing.T, s store.Store) {
	k := key(1)
	v := val(pub(1), 5, "hello", at(10))
	mustPut(t, s, k, v, at(0))
	wantGet(t, s, k, at(1), v)
	wantRecords(t, s, k, at(1), v)
	wantGet(t, s, key(2), at(1))
	if got, ok := s.Lookup(k, pub(1), at(1)); !ok || !same(got, v) {
		t.Errorf("Lookup(key 1, publisher 1) = %s, %v; want %s, true", describe(got), ok, describe(v))
	}
	dst := make([]store.Value, 1, 4)
	dst[0] = store.Value{Data: []byte("already there")}
	out := s.Get(k, at(1), dst)
	if len(out) != 2 || string(out[0].Data) != "already there" || !same(out[1], v) {
		t.Errorf("Get appending to a 1-element dst = %s, want [already there, %s]", describeAll(out), describe(v))
	}
	out = s.Records(k, at(1), dst[:1])
	if len(out) != 2 || string(out[0].Data) != "already there" || !same(out[1], v) {
		t.Errorf("Records appending to a 1-element dst = %s, want [already there, %s]", describeAll(out), describe(v))
	}
}

func testEmptyValue(t *testing.T, s store.Store) {
	k := key(1)
	mustPut(t, s, k, store.Value{Publisher: pub(1), Version: 1, Expires: at(10)}, at(0))
	// An empty slice holds the same (no) bytes: a refresh, not another
	// version's conflict.
	mustPut(t, s, k, store.Value{Publisher: pub(1), Version: 1, Expires: at(20), Data: []byte{}}, at(0))
	got := wantGet(t, s, k, at(15), store.Value{Publisher: pub(1), Version: 1, Expires: at(20)})
	if len(got[0].Data) != 0 {
		t.Errorf("Data = %q, want empty", got[0].Data)
	}
	wantLen(t, s, 1)
	wantBytes(t, s, 0)
}

func testExpiryIsWallClock(t *testing.T, s store.Store) {
	// time.Now carries a monotonic reading; a store must compare on the wall
	// clock alone, as its heap and any persistent store do, so the reading
	// must not come back.
	now := time.Now()
	mustPut(t, s, key(1), val(pub(1), 1, "v", now.Add(time.Hour)), now)
	got := s.Get(key(1), now, nil)
	if len(got) != 1 {
		t.Fatalf("Get = %s, want one value", describeAll(got))
	}
	if e := got[0].Expires; e != e.Round(0) || !e.Equal(now.Add(time.Hour)) {
		t.Errorf("Expires = %v, want %v without a monotonic clock reading", e, now.Add(time.Hour).Round(0))
	}
}

// testNewestFirst checks the order of Get and Records: version descending,
// then publisher ascending as bytes, whatever the order of the puts and the
// expiries.
func testNewestFirst(t *testing.T, s store.Store) {
	k := key(1)
	vs := []store.Value{
		val(pub(3), 9, "p3", at(50)), val(pub(1), 2, "p1", at(90)), val(pub(2), 9, "p2", at(60)),
		val(pub(4), 0, "p4", at(70)), val(pub(5), 2, "p5", at(40)), tomb(pub(6), 9, at(80)),
		tomb(pub(7), 1, at(30)),
	}
	for _, v := range vs {
		mustPut(t, s, k, v, at(0))
	}
	want := sorted(vs...)
	wantRecords(t, s, k, at(1), want...)
	wantGet(t, s, k, at(1), live(want...)...)
	// A new version moves its record to its new place.
	vs[3] = val(pub(4), 10, "p4 again", at(70))
	mustPut(t, s, k, vs[3], at(2))
	want = sorted(vs...)
	wantRecords(t, s, k, at(3), want...)
	wantGet(t, s, k, at(3), live(want...)...)
}

// testReplacementByPublisher checks that a key holds one record per
// publisher: a new version replaces the publisher's record, and leaves the
// others'.
func testReplacementByPublisher(t *testing.T, s store.Store) {
	k := key(1)
	a1, b1 := val(pub(1), 1, "a", at(100)), val(pub(2), 1, "b", at(100))
	mustPutFrom(t, s, srcA, k, a1, at(0))
	mustPutFrom(t, s, srcB, k, b1, at(0))
	// From another source: a record is its publisher's, not its sender's.
	a2 := val(pub(1), 2, "a, second version", at(100))
	mustPutFrom(t, s, srcB, k, a2, at(1))
	wantGet(t, s, k, at(2), sorted(a2, b1)...)
	wantLen(t, s, 2)
	wantBytes(t, s, len("a, second version")+len("b"))
	// A new version brings its own expiry, earlier or not.
	a3 := val(pub(1), 3, "a3", at(5))
	mustPut(t, s, k, a3, at(2))
	wantGet(t, s, k, at(3), sorted(a3, b1)...)
	wantGet(t, s, k, at(5), b1)
	wantBytes(t, s, len("a3")+len("b"))
}

// env is an enveloped value of publisher p at version ver.
func env(p id.ID, ver uint64, data string, expires time.Time) store.Value {
	v := val(p, ver, data, expires)
	v.Envelope = true
	return v
}

// testEnvelopeBeatsPlain: an enveloped record replaces a plain record of its
// publisher whatever the versions, a tombstone's included, and keeps its
// flag.
func testEnvelopeBeatsPlain(t *testing.T, s store.Store) {
	k := key(1)
	mustPut(t, s, k, val(pub(1), 100, "plain", at(100)), at(0))
	e := env(pub(1), 1, "signed", at(50))
	mustPut(t, s, k, e, at(1))
	wantRecords(t, s, k, at(1), e)
	if got, ok := s.Lookup(k, pub(1), at(1)); !ok || !got.Envelope {
		t.Fatalf("Lookup = %s, %v; want the enveloped record", describe(got), ok)
	}
	k2 := key(2)
	mustPut(t, s, k2, tomb(pub(1), 100, at(100)), at(0))
	e2 := env(pub(1), 2, "signed", at(50))
	mustPut(t, s, k2, e2, at(1))
	wantGet(t, s, k2, at(1), e2)
}

// testPlainNeverReplacesEnvelope: the signature proves an enveloped record's
// publisher, so a plain value or tombstone naming that publisher, of any
// version, is refused with ErrSigned (which is ErrStale) and changes
// nothing; a tombstone marked as enveloped is still a plain tombstone.
func testPlainNeverReplacesEnvelope(t *testing.T, s store.Store) {
	k := key(1)
	e := env(pub(1), 5, "signed", at(100))
	mustPut(t, s, k, e, at(0))
	forgedTomb := tomb(pub(1), 1<<63, at(200))
	forgedTomb.Envelope = true
	for _, v := range []store.Value{
		val(pub(1), 1<<63, "plain", at(200)), val(pub(1), 5, "signed", at(200)),
		tomb(pub(1), 1<<63, at(200)), tomb(pub(1), 5, at(200)), forgedTomb,
	} {
		before := snap(s, at(1), k)
		err := put(s, k, v, srcA, at(1))
		if !errors.Is(err, store.ErrSigned) || !errors.Is(err, store.ErrStale) {
			t.Fatalf("Put(%s) over %s = %v, want ErrSigned and ErrStale", describe(v), describe(e), err)
		}
		wantUnchanged(t, s, before, at(1))
	}
	wantGet(t, s, k, at(1), e)
	// Once the enveloped record has expired, it plays no part.
	p := val(pub(1), 1, "plain", at(300))
	mustPut(t, s, k, p, at(100))
	wantGet(t, s, k, at(100), p)
}

// testEnvelopesOrderByVersion: between two enveloped records the ordinary
// rule applies: a lower version is stale, the same bytes refresh.
func testEnvelopesOrderByVersion(t *testing.T, s store.Store) {
	k := key(1)
	mustPut(t, s, k, env(pub(1), 5, "five", at(10)), at(0))
	wantStale(t, put(s, k, env(pub(1), 4, "four", at(100)), srcA, at(1)), 4, 5)
	wantStale(t, put(s, k, env(pub(1), 5, "other", at(100)), srcA, at(1)), 5)
	mustPut(t, s, k, env(pub(1), 5, "five", at(20)), at(1))
	e6 := env(pub(1), 6, "six", at(30))
	mustPut(t, s, k, e6, at(2))
	wantGet(t, s, k, at(2), e6)
}

func testLowerVersionIsStale(t *testing.T, s store.Store) {
	k := key(1)
	v5 := val(pub(1), 5, "five", at(10))
	mustPut(t, s, k, v5, at(0))
	for _, v := range []store.Value{val(pub(1), 4, "four", at(100)), val(pub(1), 0, "five", at(100)), tomb(pub(1), 4, at(100))} {
		before := snap(s, at(1), k)
		wantStale(t, put(s, k, v, srcA, at(1)), int(v.Version), 5)
		wantUnchanged(t, s, before, at(1))
	}
	wantGet(t, s, k, at(1), v5)
}

// testSameVersionSameBytesRefreshes guards against a forged store of the
// same record with a short TTL, from anyone, cutting its life short: a
// refresh may only extend an expiry.
func testSameVersionSameBytesRefreshes(t *testing.T, s store.Store) {
	k := key(1)
	mustPutFrom(t, s, srcA, k, val(pub(1), 3, "addr", at(10)), at(0))
	// Same bytes from another slice: compared by content, not identity.
	mustPutFrom(t, s, srcA, k, store.Value{Publisher: pub(1), Version: 3, Expires: at(20), Data: []byte(string("addr"))}, at(1))
	wantGet(t, s, k, at(15), val(pub(1), 3, "addr", at(20)))
	long := at(24 * 3600)
	mustPutFrom(t, s, srcA, k, val(pub(1), 3, "addr", long), at(1))
	for _, src := range []netip.Addr{srcB, srcA, self} {
		// Accepted, since the record is stored at least that long, but the
		// expiry stays the later one.
		mustPutFrom(t, s, src, k, val(pub(1), 3, "addr", at(2)), at(1))
		wantGet(t, s, k, at(3), val(pub(1), 3, "addr", long))
	}
	if n := s.Sweep(at(3)); n != 0 {
		t.Errorf("Sweep after the shortening refreshes deleted %d records, want 0", n)
	}
	if e, ok := s.NextExpiry(); !ok || !e.Equal(long) {
		t.Errorf("NextExpiry() = %v, %v; want %v, true", e, ok, long)
	}
	wantLen(t, s, 1)
}

func testSameVersionOtherBytesIsStale(t *testing.T, s store.Store) {
	k := key(1)
	v := val(pub(1), 7, "the bytes of version 7", at(10))
	mustPut(t, s, k, v, at(0))
	before := snap(s, at(1), k)
	wantStale(t, put(s, k, val(pub(1), 7, "other bytes", at(100)), srcA, at(1)), 7)
	wantUnchanged(t, s, before, at(1))
	wantGet(t, s, k, at(1), v)
}

// testAnyArrivalOrder checks that the records a key ends up with do not
// depend on the order the writes arrived in: the same writes (values and
// tombstones of several publishers, at several versions, some sent twice
// with other expiries, as replicas do) in random orders leave the same
// records, each publisher's highest version, a tombstone winning a tie.
func testAnyArrivalOrder(t *testing.T, s store.Store) {
	r := rand.New(rand.NewPCG(8, 9))
	for round := range 60 {
		now := at(round * 1000)
		s.Sweep(now) // the earlier rounds' records have expired
		k := key(round)
		var writes []store.Value
		for p := range 3 {
			for range 1 + r.IntN(6) {
				w := store.Value{Publisher: pub(p), Version: uint64(r.IntN(4)), Deleted: r.IntN(4) == 0,
					Expires: now.Add(time.Duration(1+r.IntN(500)) * time.Second)}
				if !w.Deleted {
					// A publisher gives one version one value.
					w.Data = fmt.Appendf(nil, "publisher %d version %d", p, w.Version)
				}
				writes = append(writes, w)
			}
		}
		r.Shuffle(len(writes), func(i, j int) { writes[i], writes[j] = writes[j], writes[i] })
		for _, w := range writes {
			if err := put(s, k, w, self, now); err != nil && !errors.Is(err, store.ErrStale) {
				t.Fatalf("round %d: Put(%s) = %v, want nil or ErrStale", round, describe(w), err)
			}
		}
		// The winner of each publisher, and the expiry bounds it must have.
		var want []store.Value
		for p := range 3 {
			var win *store.Value
			for i := range writes {
				w := &writes[i]
				if w.Publisher != pub(p) {
					continue
				}
				if win == nil || w.Version > win.Version || (w.Version == win.Version && w.Deleted && !win.Deleted) {
					win = w
				}
			}
			if win == nil {
				continue
			}
			v := *win
			latest := time.Time{} // the latest expiry among the writes of p
			for _, w := range writes {
				if w.Publisher != pub(p) {
					continue
				}
				if w.Expires.After(latest) {
					latest = w.Expires
				}
				// Copies of the winner extend it to the latest of theirs.
				if w.Version == v.Version && w.Deleted == v.Deleted && w.Expires.After(v.Expires) {
					v.Expires = w.Expires
				}
			}
			got, ok := s.Lookup(k, pub(p), now)
			if !ok {
				t.Fatalf("round %d: publisher %d holds nothing after writes %s", round, p, describeAll(writes))
			}
			if v.Deleted {
				// A tombstone keeps at least the expiry of what it replaced,
				// which depends on what had arrived before it.
				if got.Deleted && got.Version == v.Version && !got.Expires.Before(v.Expires) && !got.Expires.After(latest) {
					v.Expires = got.Expires
				}
			}
			if !same(got, v) {
				t.Fatalf("round %d: publisher %d holds %s after writes %s, want %s", round, p, describe(got), describeAll(writes), describe(v))
			}
			want = append(want, v)
		}
		wantRecords(t, s, k, now, sorted(want...)...)
	}
}

func testTombstoneHidesValue(t *testing.T, s store.Store) {
	k := key(1)
	a, b := val(pub(1), 1, "a", at(30)), val(pub(2), 1, "b", at(30))
	mustPut(t, s, k, a, at(0))
	mustPut(t, s, k, b, at(0))
	d := tomb(pub(1), 2, at(50))
	mustPutFrom(t, s, srcA, k, d, at(1))
	wantGet(t, s, k, at(2), b)
	wantRecords(t, s, k, at(2), sorted(d, b)...)
	if got, ok := s.Lookup(k, pub(1), at(2)); !ok || !same(got, d) {
		t.Errorf("Lookup of the withdrawn record = %s, %v; want the tombstone %s", describe(got), ok, describe(d))
	}
	wantLen(t, s, 2)
	wantBytes(t, s, len("b"))
}

// testTombstoneBeatsStaleVersions checks that a withdrawal stays a
// withdrawal: a replica that missed it cannot put the value back, at its
// version or an older one, and the tombstone lives at least as long as the
// value it replaced.
func testTombstoneBeatsStaleVersions(t *testing.T, s store.Store) {
	k := key(1)
	mustPut(t, s, k, val(pub(1), 3, "x", at(100)), at(0))
	// At the same version: the withdrawal beats the value, and keeps its
	// expiry although it asked for less.
	mustPut(t, s, k, tomb(pub(1), 3, at(20)), at(1))
	d := tomb(pub(1), 3, at(100))
	wantRecords(t, s, k, at(2), d)
	for _, v := range []store.Value{val(pub(1), 3, "x", at(300)), val(pub(1), 2, "older", at(300)), tomb(pub(1), 1, at(300))} {
		before := snap(s, at(2), k)
		wantStale(t, put(s, k, v, srcB, at(2)), int(v.Version))
		wantUnchanged(t, s, before, at(2))
	}
	wantGet(t, s, k, at(50))
	// A tombstone of the same version is a refresh: it may extend.
	mustPut(t, s, k, tomb(pub(1), 3, at(200)), at(2))
	wantRecords(t, s, k, at(150), tomb(pub(1), 3, at(200)))
	// A tombstone of a higher version keeps the expiry of the one it
	// replaces, too.
	mustPut(t, s, k, tomb(pub(1), 4, at(10)), at(3))
	wantRecords(t, s, k, at(150), tomb(pub(1), 4, at(200)))
}

// testTombstoneBeforeValue checks that a withdrawal that overtakes the value
// it withdraws (a DELETE that arrives first) still wins.
func testTombstoneBeforeValue(t *testing.T, s store.Store) {
	k := key(1)
	d := tomb(pub(1), 5, at(100))
	mustPut(t, s, k, d, at(0))
	for _, v := range []store.Value{val(pub(1), 5, "late", at(100)), val(pub(1), 4, "later", at(100))} {
		wantStale(t, put(s, k, v, srcA, at(1)), int(v.Version))
	}
	wantGet(t, s, k, at(1))
	wantRecords(t, s, k, at(1), d)
	wantLen(t, s, 1)
}

func testTombstoneExpires(t *testing.T, s store.Store) {
	k := key(1)
	mustPut(t, s, k, val(pub(1), 1, "a", at(10)), at(0))
	mustPut(t, s, k, tomb(pub(1), 2, at(5)), at(1)) // kept to at(10), the value's expiry
	wantRecords(t, s, k, at(9), tomb(pub(1), 2, at(10)))
	if e, ok := s.NextExpiry(); !ok || !e.Equal(at(10)) {
		t.Errorf("NextExpiry() = %v, %v; want %v, true", e, ok, at(10))
	}
	// Expired, it is gone from Records and Lookup at once, and swept like
	// any record.
	wantRecords(t, s, k, at(10))
	if _, ok := s.Lookup(k, pub(1), at(10)); ok {
		t.Error("Lookup found a tombstone after its expiry")
	}
	if n := s.Sweep(at(10)); n != 1 {
		t.Fatalf("Sweep = %d, want 1", n)
	}
	wantLen(t, s, 0)
	// Gone, it protects nothing: an old version may be stored again.
	mustPut(t, s, k, val(pub(1), 1, "a", at(20)), at(10))
	wantGet(t, s, k, at(10), val(pub(1), 1, "a", at(20)))
}

func testHigherVersionRepublishes(t *testing.T, s store.Store) {
	k := key(1)
	mustPut(t, s, k, val(pub(1), 1, "first", at(100)), at(0))
	mustPut(t, s, k, tomb(pub(1), 2, at(100)), at(1))
	back := val(pub(1), 3, "back again", at(50))
	mustPutFrom(t, s, srcA, k, back, at(2))
	wantGet(t, s, k, at(3), back)
	wantRecords(t, s, k, at(3), back)
	wantLen(t, s, 1)
	wantBytes(t, s, len("back again"))
}

// testTombstoneHasNoBytes checks that a tombstone counts one record and no
// bytes: its Data is dropped, and it is accepted where the bytes are full.
func testTombstoneHasNoBytes(t *testing.T, s store.Store) {
	l := Limits()
	k := key(1)
	mustPut(t, s, k, store.Value{Publisher: pub(1), Version: 1, Expires: at(10), Deleted: true, Data: []byte("ignored")}, at(0))
	wantRecords(t, s, k, at(1), tomb(pub(1), 1, at(10)))
	wantBytes(t, s, 0)
	// Fill the key's bytes; a tombstone still fits, and one that replaces a
	// value gives its bytes back.
	big := strings.Repeat("b", l.MaxValueSize)
	for i := range l.MaxBytesPerKey / l.MaxValueSize {
		mustPut(t, s, k, val(pub(10+i), 1, big, at(10)), at(0))
	}
	rest := l.MaxBytesPerKey - l.MaxBytesPerKey/l.MaxValueSize*l.MaxValueSize
	mustPut(t, s, k, val(pub(20), 1, strings.Repeat("r", rest), at(10)), at(0))
	refused(t, s, self, k, val(pub(21), 1, "x", at(10)), at(0), store.ErrKeyFull, "MaxBytesPerKey", "", l.MaxBytesPerKey, l.MaxBytesPerKey, 1)
	mustPut(t, s, k, tomb(pub(21), 1, at(10)), at(0))
	mustPut(t, s, k, tomb(pub(10), 2, at(10)), at(0))
	wantBytes(t, s, l.MaxBytesPerKey-l.MaxValueSize)
	// It counts as a record: a key full of tombstones takes no more.
	for i := len(s.Records(k, at(0), nil)); i < l.MaxPerKey; i++ {
		mustPut(t, s, k, tomb(pub(30+i), 1, at(10)), at(0))
	}
	refused(t, s, self, k, tomb(pub(40), 1, at(10)), at(0), store.ErrKeyFull, "MaxPerKey", "", l.MaxPerKey, l.MaxPerKey, 1)
	wantLen(t, s, l.MaxPerKey)
}

func testExpiredInvisibleBeforeSweep(t *testing.T, s store.Store) {
	a, b := key(1), key(2)
	a1, a2, a3 := val(pub(1), 3, "a1", at(10)), val(pub(2), 2, "a2", at(20)), tomb(pub(3), 1, at(30))
	b1, b2 := val(pub(1), 1, "b1", at(10)), val(pub(2), 1, "b2", at(40))
	for _, v := range []store.Value{a1, a2, a3} {
		mustPut(t, s, a, v, at(0))
	}
	mustPut(t, s, b, b1, at(0))
	mustPut(t, s, b, b2, at(0))

	wantRecords(t, s, a, at(10).Add(-time.Nanosecond), a1, a2, a3)
	// A record is expired from its expiry instant on.
	wantRecords(t, s, a, at(10), a2, a3)
	wantGet(t, s, a, at(10), a2)
	wantRecords(t, s, b, at(10), b2)
	wantLen(t, s, 5) // still stored until swept
	wantBytes(t, s, 8)

	steps := []struct {
		now, deleted, len int
		wantA, wantB      []store.Value
	}{
		{now: 10, deleted: 2, len: 3, wantA: []store.Value{a2, a3}, wantB: []store.Value{b2}},
		{now: 10, deleted: 0, len: 3, wantA: []store.Value{a2, a3}, wantB: []store.Value{b2}},
		{now: 25, deleted: 1, len: 2, wantA: []store.Value{a3}, wantB: []store.Value{b2}},
		{now: 100, deleted: 2, len: 0},
	}
	for _, st := range steps {
		if n := s.Sweep(at(st.now)); n != st.deleted {
			t.Fatalf("Sweep(at %d s) = %d, want %d", st.now, n, st.deleted)
		}
		wantLen(t, s, st.len)
		// Read back at an earlier instant: swept records are gone for good.
		wantRecords(t, s, a, at(0), st.wantA...)
		wantRecords(t, s, b, at(0), st.wantB...)
	}
	wantBytes(t, s, 0)
	if _, ok := s.NextExpiry(); ok {
		t.Error("NextExpiry reports a record after everything was swept")
	}
}

func testNextExpiry(t *testing.T, s store.Store) {
	want := func(sec int) {
		t.Helper()
		got, ok := s.NextExpiry()
		switch {
		case sec < 0 && ok:
			t.Fatalf("NextExpiry() = %v, true; want false", got)
		case sec >= 0 && (!ok || !got.Equal(at(sec))):
			t.Fatalf("NextExpiry() = %v, %v; want %v, true", got, ok, at(sec))
		}
	}
	want(-1)
	mustPut(t, s, key(1), val(pub(1), 1, "x", at(30)), at(0))
	mustPut(t, s, key(2), val(pub(2), 1, "y", at(10)), at(0))
	mustPut(t, s, key(1), val(pub(3), 1, "z", at(20)), at(0))
	want(10)
	mustPut(t, s, key(2), val(pub(2), 1, "y", at(50)), at(1)) // a refresh moves the earliest later
	want(20)
	mustPut(t, s, key(1), val(pub(3), 1, "z", at(5)), at(2)) // but cannot move it earlier
	want(20)
	mustPut(t, s, key(1), val(pub(3), 2, "z2", at(25)), at(2)) // a new version can move it either way
	want(25)
	mustPut(t, s, key(1), tomb(pub(4), 1, at(5)), at(2)) // so can a new record, a tombstone too
	want(5)
	// Expired but not swept still counts: it is what the next sweep deletes.
	wantRecords(t, s, key(1), at(6), val(pub(3), 2, "z2", at(25)), val(pub(1), 1, "x", at(30)))
	want(5)
	if n := s.Sweep(at(6)); n != 1 {
		t.Fatalf("Sweep = %d, want 1", n)
	}
	want(25)
	if n := s.Sweep(at(100)); n != 3 {
		t.Fatalf("Sweep = %d, want 3", n)
	}
	want(-1)
}

func testLimitValueSize(t *testing.T, s store.Store) {
	max := Limits().MaxValueSize
	k := key(1)
	v := val(pub(1), 1, strings.Repeat("m", max), at(10))
	mustPut(t, s, k, v, at(0))
	refused(t, s, self, k, val(pub(2), 1, strings.Repeat("x", max+1), at(10)), at(0), store.ErrTooLarge, "MaxValueSize", "", max, 0, max+1)
	// Nor may a new version grow past it.
	refused(t, s, self, k, val(pub(1), 2, strings.Repeat("x", max+1), at(10)), at(0), store.ErrTooLarge, "MaxValueSize", "", max, 0, max+1)
	wantGet(t, s, k, at(1), v)
}

func testLimitPerKey(t *testing.T, s store.Store) {
	max := Limits().MaxPerKey
	k := key(1)
	var held []store.Value
	for i := range max {
		exp := at(100)
		if i == 0 {
			exp = at(5)
		}
		v := val(pub(i), 1, fmt.Sprint("v", i), exp)
		held = append(held, v)
		mustPut(t, s, k, v, at(0))
	}
	refused(t, s, self, k, val(pub(100), 1, "one too many", at(100)), at(1), store.ErrKeyFull, "MaxPerKey", "", max, max, 1)
	// A tombstone is a record too.
	refused(t, s, self, k, tomb(pub(100), 1, at(100)), at(1), store.ErrKeyFull, "MaxPerKey", "", max, max, 1)
	// A publisher that holds a record replaces it: that adds none.
	held[1] = val(pub(1), 2, "v1 again", at(90))
	mustPut(t, s, k, held[1], at(1))
	mustPut(t, s, k, tomb(pub(2), 2, at(90)), at(1))
	held[2] = tomb(pub(2), 2, at(100)) // a tombstone keeps the expiry of the value it replaces
	wantRecords(t, s, k, at(1), sorted(held...)...)
	// Other keys have their own allowance.
	mustPut(t, s, key(2), val(pub(100), 1, "elsewhere", at(100)), at(1))
	// Expired records do not count toward the bound, swept or not.
	v := val(pub(100), 1, "after v0 expired", at(100))
	mustPut(t, s, k, v, at(5))
	wantRecords(t, s, k, at(5), sorted(append(held[1:], v)...)...)
}

func testLimitBytesPerKey(t *testing.T, s store.Store) {
	l := Limits()
	k := key(1)
	big := strings.Repeat("b", l.MaxValueSize)
	n := l.MaxBytesPerKey / l.MaxValueSize
	for i := range n {
		exp := at(100)
		if i == 0 {
			exp = at(5)
		}
		mustPut(t, s, k, val(pub(i), 1, big, exp), at(0))
	}
	rest := l.MaxBytesPerKey - n*l.MaxValueSize
	mustPut(t, s, k, val(pub(n), 1, strings.Repeat("r", rest), at(100)), at(0)) // exactly MaxBytesPerKey
	refused(t, s, self, k, val(pub(100), 1, "x", at(100)), at(1), store.ErrKeyFull, "MaxBytesPerKey", "", l.MaxBytesPerKey, l.MaxBytesPerKey, 1)
	// A replacement is counted in place of what it replaces: growing by a
	// byte is refused, shrinking is not.
	refused(t, s, self, k, val(pub(n), 2, strings.Repeat("r", rest+1), at(100)), at(1),
		store.ErrKeyFull, "MaxBytesPerKey", "", l.MaxBytesPerKey, l.MaxBytesPerKey-rest, rest+1)
	mustPut(t, s, k, val(pub(n), 2, strings.Repeat("r", rest-1), at(100)), at(1))
	mustPut(t, s, k, val(pub(100), 1, "x", at(100)), at(1))
	// Other keys have their own bytes.
	mustPut(t, s, key(2), val(pub(100), 1, big, at(100)), at(1))
	// Expired records give theirs back.
	mustPut(t, s, k, val(pub(101), 1, big, at(100)), at(5))
	wantBytes(t, s, l.MaxBytesPerKey+l.MaxValueSize)
}

func testLimitTotal(t *testing.T, s store.Store) {
	l := Limits()
	perKey := l.MaxPerKey - 2
	for i := range l.MaxValues {
		exp := at(100)
		if i < 3 {
			exp = at(10)
		}
		mustPut(t, s, key(i/perKey), val(pub(i), 1, fmt.Sprint("v", i), exp), at(0))
	}
	wantLen(t, s, l.MaxValues)
	fresh := key(1000)
	refused(t, s, self, fresh, val(pub(1000), 1, "no room", at(100)), at(1), store.ErrFull, "MaxValues", "", l.MaxValues, l.MaxValues, 1, key(0), key(1))
	refused(t, s, self, fresh, tomb(pub(1000), 1, at(100)), at(1), store.ErrFull, "MaxValues", "", l.MaxValues, l.MaxValues, 1)
	// A replacement or a refresh adds no record, so a full store accepts it.
	mustPut(t, s, key(1), val(pub(perKey), 2, "replaced", at(90)), at(1))
	mustPut(t, s, key(1), val(pub(perKey+1), 1, fmt.Sprint("v", perKey+1), at(110)), at(1))
	wantLen(t, s, l.MaxValues)
	// Once records have expired, a full store deletes them before refusing.
	v := val(pub(1000), 1, "room now", at(100))
	mustPut(t, s, fresh, v, at(10))
	wantGet(t, s, fresh, at(10), v)
	wantLen(t, s, l.MaxValues-3+1)
	wantRecords(t, s, key(0), at(0), sorted(val(pub(3), 1, "v3", at(100)), val(pub(4), 1, "v4", at(100)))...)
}

func testLimitTotalBytes(t *testing.T, s store.Store) {
	l := Limits()
	big := strings.Repeat("b", l.MaxValueSize)
	perKey := l.MaxBytesPerKey / l.MaxValueSize
	full := l.MaxBytes / l.MaxValueSize // values of the largest size that fit
	for i := range full {
		exp := at(100)
		if i < 2 {
			exp = at(10)
		}
		mustPut(t, s, key(i/perKey), val(pub(i), 1, big, exp), at(0))
	}
	rest := l.MaxBytes - full*l.MaxValueSize
	mustPut(t, s, key(100), val(pub(100), 1, strings.Repeat("r", rest), at(100)), at(0)) // exactly MaxBytes
	wantBytes(t, s, l.MaxBytes)
	refused(t, s, self, key(101), val(pub(101), 1, "x", at(100)), at(1), store.ErrFull, "MaxBytes", "", l.MaxBytes, l.MaxBytes, 1, key(100))
	refused(t, s, self, key(100), val(pub(100), 2, strings.Repeat("r", rest+1), at(100)), at(1),
		store.ErrFull, "MaxBytes", "", l.MaxBytes, l.MaxBytes-rest, rest+1)
	// A tombstone needs no bytes; a refresh and a replacement that does not
	// grow need none more.
	mustPut(t, s, key(101), tomb(pub(101), 1, at(100)), at(1))
	mustPut(t, s, key(100), val(pub(100), 1, strings.Repeat("r", rest), at(110)), at(1))
	mustPut(t, s, key(100), val(pub(100), 2, strings.Repeat("s", rest), at(110)), at(1))
	// Expired records are deleted before refusing.
	mustPut(t, s, key(102), val(pub(102), 1, big, at(100)), at(10))
	wantLen(t, s, full+2-2+1)
	wantBytes(t, s, l.MaxBytes-l.MaxValueSize)
}

func testLimitPerPublisher(t *testing.T, s store.Store) {
	l := Limits()
	p := pub(1)
	group := "publisher " + fmt.Sprintf("%x", p[:])
	for i := range l.MaxPerPublisher {
		exp := at(100)
		if i == 0 {
			exp = at(10)
		}
		// From several sources: the bound is the publisher's, whoever
		// sends its records.
		mustPutFrom(t, s, []netip.Addr{self, srcA, srcB, srcC}[i%4], key(i), val(p, 1, "mine", exp), at(0))
	}
	refused(t, s, srcB, key(100), val(p, 1, "one too many", at(100)), at(1), store.ErrQuota, "MaxPerPublisher", group, l.MaxPerPublisher, l.MaxPerPublisher, 1)
	refused(t, s, self, key(100), tomb(p, 1, at(100)), at(1), store.ErrQuota, "MaxPerPublisher", group, l.MaxPerPublisher, l.MaxPerPublisher, 1)
	// Its records can still be replaced, and others publish as before.
	mustPut(t, s, key(3), val(p, 2, "mine, again", at(100)), at(1))
	mustPut(t, s, key(100), val(pub(2), 1, "another's", at(100)), at(1))
	// Expired records give their room back.
	mustPut(t, s, key(100), val(p, 1, "now it fits", at(100)), at(10))
}

// testOneSourceCannotFillAKey guards against key squatting: one source
// storing junk under a key, under as many publisher IDs as it likes, until
// every later publisher is refused.
func testOneSourceCannotFillAKey(t *testing.T, s store.Store) {
	l := Limits()
	k := key(1)
	var held []store.Value
	for i := range l.MaxPerKeyPerSource {
		v := val(pub(i), 1, fmt.Sprint("junk ", i), at(100))
		held = append(held, v)
		mustPutFrom(t, s, srcA, k, v, at(0))
	}
	per := l.MaxPerKeyPerSource
	refused(t, s, srcA, k, val(pub(100), 1, "more junk", at(100)), at(1), store.ErrQuota, "MaxPerKeyPerSource", "203.0.113.7", per, per, 1)
	// The same host in its IPv4-mapped IPv6 form is the same source.
	refused(t, s, netip.MustParseAddr("::ffff:203.0.113.7"), k, tomb(pub(100), 1, at(100)), at(1),
		store.ErrQuota, "MaxPerKeyPerSource", "203.0.113.7", per, per, 1)
	// Its publishers may replace their records.
	held[0] = val(pub(0), 2, "junk 0, version 2", at(100))
	mustPutFrom(t, s, srcA, k, held[0], at(1))
	// Every other sender can still store under the key.
	b, c, n := val(pub(101), 1, "b's address", at(100)), val(pub(102), 1, "c's address", at(100)), val(pub(103), 1, "the node's own", at(100))
	mustPutFrom(t, s, srcB, k, b, at(1))
	mustPutFrom(t, s, srcC, k, c, at(1))
	mustPut(t, s, k, n, at(1))
	wantGet(t, s, k, at(1), sorted(append(held, b, c, n)...)...)
	// The first source keeps its allowance under other keys.
	mustPutFrom(t, s, srcA, key(2), val(pub(100), 1, "more junk", at(100)), at(1))
}

// testOneSourceCannotFillAKeysBytes guards against key squatting by bytes:
// a few values of the largest size from one source would otherwise fill
// the key's bytes.
func testOneSourceCannotFillAKeysBytes(t *testing.T, s store.Store) {
	l := Limits()
	k := key(1)
	quota := l.MaxBytesPerKeyPerSource
	mustPutFrom(t, s, srcA, k, val(pub(1), 1, strings.Repeat("a", l.MaxValueSize), at(100)), at(0))
	mustPutFrom(t, s, srcA, k, val(pub(2), 1, strings.Repeat("a", quota-l.MaxValueSize), at(100)), at(0))
	refused(t, s, srcA, k, val(pub(3), 1, "x", at(100)), at(1), store.ErrQuota, "MaxBytesPerKeyPerSource", "203.0.113.7", quota, quota, 1)
	// A tombstone takes no bytes.
	mustPutFrom(t, s, srcA, k, tomb(pub(3), 1, at(100)), at(1))
	// Others still have room.
	mustPutFrom(t, s, srcB, k, val(pub(4), 1, strings.Repeat("b", l.MaxValueSize), at(100)), at(1))
	mustPutFrom(t, s, srcA, key(2), val(pub(3), 1, strings.Repeat("a", l.MaxValueSize), at(100)), at(1))
}

// testOneSourceCannotFillTheStore guards against store filling: one source
// taking every slot of a node for as long as its TTL allows.
func testOneSourceCannotFillTheStore(t *testing.T, s store.Store) {
	l := Limits()
	per := l.MaxPerKeyPerSource
	for i := range l.MaxPerSource {
		mustPutFrom(t, s, srcA, key(i/per), val(pub(i), 1, fmt.Sprint("a", i), at(100)), at(0))
	}
	fresh := key(1000)
	refused(t, s, srcA, fresh, val(pub(1000), 1, "one too many", at(100)), at(1),
		store.ErrQuota, "MaxPerSource", "203.0.113.7", l.MaxPerSource, l.MaxPerSource, 1, key(0))
	wantLen(t, s, l.MaxPerSource)
	// A refresh and a new version of its records add nothing, so they are
	// accepted at the quota.
	mustPutFrom(t, s, srcA, key(0), val(pub(0), 1, "a0", at(200)), at(1))
	mustPutFrom(t, s, srcA, key(0), val(pub(1), 2, "a1 again", at(200)), at(1))
	// Other sources, and the node itself, still have room.
	b, c, n := val(pub(1001), 1, "b", at(100)), val(pub(1002), 1, "c", at(100)), val(pub(1003), 1, "the node's own", at(100))
	mustPutFrom(t, s, srcB, fresh, b, at(1))
	mustPutFrom(t, s, srcC, fresh, c, at(1))
	mustPut(t, s, fresh, n, at(1))
	wantGet(t, s, fresh, at(1), sorted(b, c, n)...)
	wantLen(t, s, l.MaxPerSource+3)
}

func testOneSourceCannotTakeTheBytes(t *testing.T, s store.Store) {
	l := Limits()
	big := strings.Repeat("c", l.MaxValueSize)
	n := l.MaxBytesPerSource / l.MaxValueSize
	for i := range n {
		mustPutFrom(t, s, srcC, key(i), val(pub(i), 1, big, at(100)), at(0))
	}
	// An IPv6 source is named as its /64.
	refused(t, s, srcC, key(100), val(pub(100), 1, big, at(100)), at(1),
		store.ErrQuota, "MaxBytesPerSource", "2001:db8:c::/64", l.MaxBytesPerSource, n*l.MaxValueSize, l.MaxValueSize)
	// What is left of the quota can still be used, to the byte.
	rest := l.MaxBytesPerSource - n*l.MaxValueSize
	mustPutFrom(t, s, srcC, key(100), val(pub(100), 1, strings.Repeat("r", rest), at(100)), at(1))
	refused(t, s, srcC, key(101), val(pub(101), 1, "x", at(100)), at(1),
		store.ErrQuota, "MaxBytesPerSource", "2001:db8:c::/64", l.MaxBytesPerSource, l.MaxBytesPerSource, 1)
	// Others are not charged for it.
	mustPutFrom(t, s, srcB, key(101), val(pub(101), 1, big, at(100)), at(1))
}

func testSourcesGroupByHost(t *testing.T, s store.Store) {
	for i, tc := range []struct {
		name string
		a, b string
		same bool
	}{
		{"IPv6SameSlash64", "2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff", true},
		{"IPv6OtherSlash64", "2001:db8:1:2::1", "2001:db8:1:3::1", false},
		{"IPv6OtherSlash48", "2001:db8:1:2::1", "2001:db8:2:2::1", false},
		{"IPv4MappedIsIPv4", "203.0.113.7", "::ffff:203.0.113.7", true},
		{"IPv4NeighboursDiffer", "203.0.113.7", "203.0.113.6", false},
		{"ZoneIgnored", "fe80::1%eth0", "fe80::2%eth1", true},
		{"IPv4IsNotAnIPv6Prefix", "0.0.0.1", "::1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Fill a key of its own with a's quota, then try b there.
			k := key(100 + i)
			a, b := netip.MustParseAddr(tc.a), netip.MustParseAddr(tc.b)
			for j := range Limits().MaxPerKeyPerSource {
				mustPutFrom(t, s, a, k, val(pub(j), 1, "a", at(100)), at(0))
			}
			err := put(s, k, val(pub(100), 1, "b", at(100)), b, at(0))
			switch {
			case tc.same && !errors.Is(err, store.ErrQuota):
				t.Errorf("Put from %s after %s filled its quota under the key = %v, want ErrQuota: the same source", b, a, err)
			case !tc.same && err != nil:
				t.Errorf("Put from %s after %s filled its quota under the key = %v, want nil: another source", b, a, err)
			}
		})
	}
}

// testQuotaReleasedWhenRecordsExpire checks that a quota counts records
// alive: expired ones, swept or not, give their room back.
func testQuotaReleasedWhenRecordsExpire(t *testing.T, s store.Store) {
	l := Limits()
	per := l.MaxPerKeyPerSource
	// Over all keys, released by the Put itself.
	for i := range l.MaxPerSource {
		mustPutFrom(t, s, srcA, key(i/per), val(pub(i), 1, "a", at(10)), at(0))
	}
	wantLimit(t, put(s, key(100), val(pub(100), 1, "later", at(100)), srcA, at(9)),
		store.ErrQuota, "MaxPerSource", "203.0.113.7", l.MaxPerSource, l.MaxPerSource, 1)
	mustPutFrom(t, s, srcA, key(100), val(pub(100), 1, "later", at(100)), at(10))
	wantLen(t, s, 1)
	// Under one key, released by the Put's purge of the key.
	for i := range per - 1 {
		mustPutFrom(t, s, srcA, key(100), val(pub(i), 1, "k", at(20)), at(10))
	}
	wantLimit(t, put(s, key(100), val(pub(200), 1, "k more", at(100)), srcA, at(19)),
		store.ErrQuota, "MaxPerKeyPerSource", "203.0.113.7", per, per, 1)
	mustPutFrom(t, s, srcA, key(100), val(pub(200), 1, "k more", at(100)), at(20))
	// Over all keys again, released by Sweep.
	for i := range l.MaxPerSource - 2 {
		mustPutFrom(t, s, srcA, key(200+i), val(pub(i), 1, "s", at(30)), at(20))
	}
	wantLimit(t, put(s, key(300), val(pub(300), 1, "s", at(100)), srcA, at(29)),
		store.ErrQuota, "MaxPerSource", "203.0.113.7", l.MaxPerSource, l.MaxPerSource, 1)
	if n := s.Sweep(at(30)); n != l.MaxPerSource-2 {
		t.Fatalf("Sweep = %d, want %d", n, l.MaxPerSource-2)
	}
	for i := range l.MaxPerSource - 2 {
		mustPutFrom(t, s, srcA, key(300+i), val(pub(i), 1, "s", at(100)), at(30))
	}
	// Bytes, released by the Put itself.
	big := strings.Repeat("b", l.MaxValueSize)
	n := l.MaxBytesPerSource / l.MaxValueSize
	for i := range n {
		mustPutFrom(t, s, srcC, key(400+i), val(pub(i), 1, big, at(40)), at(30))
	}
	wantLimit(t, put(s, key(500), val(pub(500), 1, big, at(100)), srcC, at(39)),
		store.ErrQuota, "MaxBytesPerSource", "2001:db8:c::/64", l.MaxBytesPerSource, n*l.MaxValueSize, l.MaxValueSize)
	mustPutFrom(t, s, srcC, key(500), val(pub(500), 1, big, at(100)), at(40))
}

// Three /64s of one site, 2001:db8:5::/48, another host of the first /64,
// and a /64 of the neighbouring site.
var (
	site1    = netip.MustParseAddr("2001:db8:5:1::1")
	site1bis = netip.MustParseAddr("2001:db8:5:1::2")
	site2    = netip.MustParseAddr("2001:db8:5:2::1")
	site3    = netip.MustParseAddr("2001:db8:5:ffff::1")
	nextSite = netip.MustParseAddr("2001:db8:6:1::1")
)

const siteName = "2001:db8:5::/48"

// testOneSiteCannotFillAKey guards against key squatting by one IPv6 site,
// which holds thousands of /64s: its sources together hold at most
// MaxPerKeyPerSite records and MaxBytesPerKeyPerSite bytes under a key.
func testOneSiteCannotFillAKey(t *testing.T, s store.Store) {
	l := Limits()
	k := key(1)
	var held []store.Value
	for i := range l.MaxPerKeyPerSite {
		v := val(pub(i), 1, fmt.Sprint("junk ", i), at(100))
		held = append(held, v)
		src := site1
		if i >= l.MaxPerKeyPerSource {
			src = site2
		}
		mustPutFrom(t, s, src, k, v, at(0))
	}
	for _, src := range []netip.Addr{site2, site3} {
		refused(t, s, src, k, val(pub(100), 1, "more junk", at(100)), at(1),
			store.ErrQuota, "MaxPerKeyPerSite", siteName, l.MaxPerKeyPerSite, l.MaxPerKeyPerSite, 1)
	}
	wantGet(t, s, k, at(1), sorted(held...)...)
	// Other sites, and IPv4 sources, can still store under the key.
	mustPutFrom(t, s, nextSite, k, val(pub(101), 1, "next site's", at(100)), at(1))
	mustPutFrom(t, s, srcB, k, val(pub(102), 1, "b's", at(100)), at(1))
	// The site keeps its allowance under other keys.
	mustPutFrom(t, s, site3, key(2), val(pub(100), 1, "more junk", at(100)), at(1))

	// Bytes: two /64s of the site fill its share of a key's bytes.
	k = key(3)
	quota := l.MaxBytesPerKeyPerSite
	mustPutFrom(t, s, site1, k, val(pub(1), 1, strings.Repeat("s", l.MaxValueSize), at(100)), at(1))
	mustPutFrom(t, s, site2, k, val(pub(2), 1, strings.Repeat("s", quota-l.MaxValueSize), at(100)), at(1))
	refused(t, s, site3, k, val(pub(3), 1, "x", at(100)), at(1), store.ErrQuota, "MaxBytesPerKeyPerSite", siteName, quota, quota, 1)
	mustPutFrom(t, s, nextSite, k, val(pub(3), 1, "x", at(100)), at(1))
}

// testOneSiteCannotFillTheStore guards against store filling by one IPv6
// site: its sources together hold at most MaxPerSite records and
// MaxBytesPerSite bytes.
func testOneSiteCannotFillTheStore(t *testing.T, s store.Store) {
	l := Limits()
	for i := range l.MaxPerSite {
		src := site1
		if i >= l.MaxPerSource {
			src = site2
		}
		mustPutFrom(t, s, src, key(i), val(pub(i), 1, "v", at(100)), at(0))
	}
	fresh := key(1000)
	refused(t, s, site3, fresh, val(pub(1000), 1, "one too many", at(100)), at(1),
		store.ErrQuota, "MaxPerSite", siteName, l.MaxPerSite, l.MaxPerSite, 1)
	// A refresh adds nothing, so the site's is accepted at the quota.
	mustPutFrom(t, s, site2, key(l.MaxPerSite-1), val(pub(l.MaxPerSite-1), 1, "v", at(200)), at(1))
	// Other sites still have room.
	mustPutFrom(t, s, nextSite, fresh, val(pub(1001), 1, "next site's", at(100)), at(1))
	wantLen(t, s, l.MaxPerSite+1)
	// Once the site's records expire, its room comes back.
	mustPutFrom(t, s, site3, fresh, val(pub(1000), 1, "site's", at(500)), at(200))

	// Bytes: three sources of the site fill its share to the byte.
	big := strings.Repeat("s", l.MaxValueSize)
	for i, src := range []netip.Addr{site1, site1, site2} {
		mustPutFrom(t, s, src, key(2000+i), val(pub(2000+i), 1, big, at(400)), at(300))
	}
	rest := l.MaxBytesPerSite - 3*l.MaxValueSize - len("site's")
	mustPutFrom(t, s, site3, key(2003), val(pub(2003), 1, strings.Repeat("r", rest), at(400)), at(300))
	refused(t, s, site3, key(2004), val(pub(2004), 1, "x", at(400)), at(300),
		store.ErrQuota, "MaxBytesPerSite", siteName, l.MaxBytesPerSite, l.MaxBytesPerSite, 1)
	mustPutFrom(t, s, nextSite, key(2004), val(pub(2004), 1, "x", at(400)), at(300))
}

// testNewestWriterIsCharged checks that a record is charged to the source
// of the write that made it what it is: a new version, a tombstone or a
// refresh that extends it moves the charge to its sender, so that a third
// party that keeps a record alive pays for it and a source's quota is not
// kept spent by records it let go; that the move needs the new writer to
// have room; and that a refresh that extends nothing moves nothing.
func testNewestWriterIsCharged(t *testing.T, s store.Store) {
	l := Limits()
	per := l.MaxPerKeyPerSource
	k := key(1)
	// A fills its quota under k.
	for i := range per {
		mustPutFrom(t, s, srcA, k, val(pub(i), 1, "a", at(100)), at(0))
	}
	refused(t, s, srcA, k, val(pub(100), 1, "a more", at(100)), at(1), store.ErrQuota, "MaxPerKeyPerSource", "203.0.113.7", per, per, 1)
	// B writes a new version of one record, C extends another, and the
	// node itself withdraws a third: A is charged for none of them now.
	mustPutFrom(t, s, srcB, k, val(pub(0), 2, "b", at(100)), at(1))
	mustPutFrom(t, s, srcC, k, val(pub(1), 1, "a", at(150)), at(1))
	mustPut(t, s, k, tomb(pub(2), 2, at(100)), at(1))
	for i := range per {
		mustPutFrom(t, s, srcA, k, val(pub(100+i), 1, "a more", at(100)), at(1))
	}
	refused(t, s, srcA, k, val(pub(200), 1, "a more", at(100)), at(1), store.ErrQuota, "MaxPerKeyPerSource", "203.0.113.7", per, per, 1)
	// A refresh that extends nothing is accepted from anyone and moves no
	// charge: A has no more room than before.
	mustPutFrom(t, s, srcA, k, val(pub(1), 1, "a", at(120)), at(1))
	refused(t, s, srcA, k, val(pub(200), 1, "a more", at(100)), at(1), store.ErrQuota, "MaxPerKeyPerSource", "203.0.113.7", per, per, 1)
	// A has no room to take a record over: its extending refresh and its
	// new version are refused, and change nothing.
	refused(t, s, srcA, k, val(pub(1), 1, "a", at(300)), at(1), store.ErrQuota, "MaxPerKeyPerSource", "203.0.113.7", per, per, 1)
	refused(t, s, srcA, k, val(pub(0), 3, "a", at(300)), at(1), store.ErrQuota, "MaxPerKeyPerSource", "203.0.113.7", per, per, 1)
	refused(t, s, srcA, k, tomb(pub(0), 3, at(300)), at(1), store.ErrQuota, "MaxPerKeyPerSource", "203.0.113.7", per, per, 1)
	// But its own records it may replace at its quota.
	mustPutFrom(t, s, srcA, k, val(pub(100), 2, "a more, again", at(100)), at(1))

	// Over the store: a source at MaxPerSource cannot take a record over.
	for i := range l.MaxPerSource - 1 {
		mustPutFrom(t, s, srcB, key(100+i/per), val(pub(300+i), 1, "b", at(300)), at(1))
	}
	refused(t, s, srcB, k, val(pub(1), 2, "b", at(300)), at(1), store.ErrQuota, "MaxPerSource", "198.51.100.20", l.MaxPerSource, l.MaxPerSource, 1)

	// Within a site: a record moves between two /64s of a site at its quota
	// under a key, since the site holds it either way; another site's
	// source takes one out of the site, which gets room.
	k2 := key(200)
	for i := range l.MaxPerKeyPerSite {
		src := site1
		if i >= per {
			src = site2
		}
		mustPutFrom(t, s, src, k2, val(pub(i), 1, "s", at(100)), at(1))
	}
	mustPutFrom(t, s, site3, k2, val(pub(0), 1, "s", at(110)), at(1))
	// site1 got a record's room back, but the site has none.
	refused(t, s, site1bis, k2, val(pub(100), 1, "s more", at(100)), at(1),
		store.ErrQuota, "MaxPerKeyPerSite", siteName, l.MaxPerKeyPerSite, l.MaxPerKeyPerSite, 1)
	mustPutFrom(t, s, nextSite, k2, val(pub(1), 2, "taken out", at(120)), at(1))
	mustPutFrom(t, s, site1bis, k2, val(pub(100), 1, "s more", at(100)), at(1))
}

func testNodeItselfIsExemptFromQuotas(t *testing.T, s store.Store) {
	l := Limits()
	// More records under one key, over all keys, and more bytes than any
	// source may hold; the other bounds still hold.
	for i := range l.MaxPerKey {
		mustPut(t, s, key(0), val(pub(i), 1, "n", at(100)), at(0))
	}
	big := strings.Repeat("n", l.MaxValueSize)
	perKey := l.MaxBytesPerKey / l.MaxValueSize
	n := l.MaxBytes / l.MaxValueSize
	for i := range n {
		mustPut(t, s, key(1+i/perKey), val(pub(i), 1, big, at(100)), at(0))
	}
	wantLen(t, s, l.MaxPerKey+n)
	refused(t, s, self, key(100), val(pub(100), 1, big, at(100)), at(0),
		store.ErrFull, "MaxBytes", "", l.MaxBytes, l.MaxBytes-l.MaxBytes%l.MaxValueSize+len("n")*l.MaxPerKey, l.MaxValueSize)
}

func testExpiryNotInFuture(t *testing.T, s store.Store) {
	k := key(1)
	live := val(pub(1), 1, "live", at(20))
	mustPut(t, s, k, live, at(0))
	for _, tc := range []struct {
		name string
		v    store.Value
	}{
		{"NewValueExpiresNow", val(pub(2), 1, "new", at(5))},
		{"NewValueExpiredBefore", val(pub(2), 1, "new", at(4))},
		{"RefreshExpiresNow", val(pub(1), 1, "live", at(5))},
		{"RefreshExpiredBefore", val(pub(1), 1, "live", at(-100))},
		{"NewVersionExpiresNow", val(pub(1), 2, "newer", at(5))},
		{"TombstoneExpiresNow", tomb(pub(1), 2, at(5))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := snap(s, at(5), k)
			if err := put(s, k, tc.v, srcA, at(5)); !errors.Is(err, store.ErrExpired) {
				t.Fatalf("Put(%s) at %v = %v, want ErrExpired", describe(tc.v), at(5), err)
			}
			wantUnchanged(t, s, before, at(5))
		})
	}
}

func testPutCopiesData(t *testing.T, s store.Store) {
	k := key(1)
	buf := []byte("original")
	mustPutFrom(t, s, srcA, k, store.Value{Publisher: pub(1), Version: 1, Expires: at(10), Data: buf}, at(0))
	copy(buf, "XXXXXXXX")
	wantGet(t, s, k, at(1), val(pub(1), 1, "original", at(10)))
	// The same holds for the slice passed to a refresh and to a new version.
	buf = []byte("original")
	mustPutFrom(t, s, srcB, k, store.Value{Publisher: pub(1), Version: 1, Expires: at(20), Data: buf}, at(1))
	copy(buf, "YYYYYYYY")
	wantGet(t, s, k, at(15), val(pub(1), 1, "original", at(20)))
	buf = []byte("second")
	mustPutFrom(t, s, srcB, k, store.Value{Publisher: pub(1), Version: 2, Expires: at(20), Data: buf}, at(1))
	copy(buf, "ZZZZZZ")
	wantGet(t, s, k, at(15), val(pub(1), 2, "second", at(20)))
}

func testGetDataStableAcrossPuts(t *testing.T, s store.Store) {
	k := key(1)
	mustPut(t, s, k, val(pub(1), 1, "aaaa", at(100)), at(0))
	mustPut(t, s, k, val(pub(2), 1, "bbbb", at(10)), at(0))
	mustPut(t, s, k, val(pub(3), 1, "cccc", at(100)), at(0))
	held := s.Get(k, at(1), nil)
	var want []string
	for _, v := range held {
		want = append(want, string(v.Data))
	}
	if len(held) != 3 {
		t.Fatalf("Get = %s, want 3 values", describeAll(held))
	}
	// Everything that could tempt a store to reuse memory: refreshes, new
	// versions of the same length, a tombstone, a sweep freeing "bbbb", a
	// re-put after expiry, and traffic on other keys.
	mustPut(t, s, k, val(pub(1), 1, "aaaa", at(200)), at(2))
	mustPut(t, s, k, val(pub(1), 2, "dddd", at(100)), at(2))
	mustPut(t, s, k, tomb(pub(3), 2, at(100)), at(2))
	if n := s.Sweep(at(10)); n != 1 {
		t.Fatalf("Sweep = %d, want 1", n)
	}
	mustPut(t, s, k, val(pub(2), 1, "eeee", at(100)), at(10))
	for i := range 30 {
		mustPut(t, s, key(2+i%6), val(pub(i%4), uint64(i), fmt.Sprintf("%04d", i), at(100)), at(10))
	}
	s.Sweep(at(100))
	for i, v := range held {
		if string(v.Data) != want[i] {
			t.Errorf("value %d returned by an earlier Get changed to %q, want %q", i, v.Data, want[i])
		}
	}
}

func testLenAndBytes(t *testing.T, s store.Store) {
	wantLen(t, s, 0)
	wantBytes(t, s, 0)
	mustPut(t, s, key(1), val(pub(1), 1, "a", at(10)), at(0))
	mustPut(t, s, key(1), val(pub(2), 1, "bb", at(20)), at(0))
	mustPut(t, s, key(2), val(pub(1), 1, "ccc", at(20)), at(0))
	wantLen(t, s, 3)
	wantBytes(t, s, 6)
	mustPut(t, s, key(1), val(pub(1), 1, "a", at(30)), at(1)) // refresh
	wantLen(t, s, 3)
	mustPut(t, s, key(1), val(pub(2), 2, "bbbb", at(20)), at(1)) // replacement
	wantLen(t, s, 3)
	wantBytes(t, s, 8)
	mustPut(t, s, key(2), tomb(pub(1), 2, at(20)), at(1)) // withdrawal
	wantLen(t, s, 3)
	wantBytes(t, s, 5)
	_ = put(s, key(1), val(pub(3), 1, "x", at(1)), self, at(1)) // refused
	_ = put(s, key(1), val(pub(2), 1, "old", at(50)), self, at(1))
	wantLen(t, s, 3)
	wantBytes(t, s, 5)
	s.Get(key(2), at(25), nil) // reading does not delete
	s.Records(key(2), at(25), nil)
	wantLen(t, s, 3)
	if n := s.Sweep(at(20)); n != 2 {
		t.Fatalf("Sweep = %d, want 2", n)
	}
	wantLen(t, s, 1)
	wantBytes(t, s, 1)
}

func testLookup(t *testing.T, s store.Store) {
	k := key(1)
	a, b := val(pub(1), 4, "a", at(10)), tomb(pub(2), 2, at(20))
	mustPut(t, s, k, a, at(0))
	mustPut(t, s, k, b, at(0))
	for _, tc := range []struct {
		key, pub id.ID
		now      int
		want     store.Value
		ok       bool
	}{
		{k, pub(1), 1, a, true},
		{k, pub(2), 1, b, true},
		{k, pub(3), 1, store.Value{}, false},
		{key(2), pub(1), 1, store.Value{}, false},
		{k, pub(1), 10, store.Value{}, false}, // expired, not yet swept
		{k, pub(2), 19, b, true},
	} {
		got, ok := s.Lookup(tc.key, tc.pub, at(tc.now))
		if ok != tc.ok || (ok && !same(got, tc.want)) {
			t.Errorf("Lookup(%s, %s, at %d s) = %s, %v; want %s, %v", tc.key.Short(), tc.pub.Short(), tc.now, describe(got), ok, describe(tc.want), tc.ok)
		}
	}
}

// keySet collects what Keys reports, failing on a key reported twice.
func keySet(t *testing.T, s store.Store) map[id.ID]bool {
	t.Helper()
	seen := map[id.ID]bool{}
	s.Keys(func(k id.ID) bool {
		if seen[k] {
			t.Errorf("Keys reported %s twice", k.Short())
		}
		seen[k] = true
		return true
	})
	return seen
}

func testKeys(t *testing.T, s store.Store) {
	if got := keySet(t, s); len(got) != 0 {
		t.Fatalf("Keys on an empty store reported %d keys", len(got))
	}
	mustPut(t, s, key(1), val(pub(1), 1, "a", at(10)), at(0))
	mustPut(t, s, key(2), val(pub(1), 1, "a", at(50)), at(0))
	mustPut(t, s, key(2), val(pub(2), 1, "b", at(50)), at(0))
	mustPut(t, s, key(3), tomb(pub(1), 1, at(50)), at(0)) // a key of tombstones only is held too
	got := keySet(t, s)
	if len(got) != 3 || !got[key(1)] || !got[key(2)] || !got[key(3)] {
		t.Fatalf("Keys reported %d keys (%v), want keys 1, 2 and 3", len(got), got)
	}
	calls := 0
	s.Keys(func(id.ID) bool { calls++; return false })
	if calls != 1 {
		t.Errorf("Keys called fn %d times after it returned false, want 1", calls)
	}
	s.Sweep(at(10))
	got = keySet(t, s)
	if len(got) != 2 || !got[key(2)] || !got[key(3)] {
		t.Fatalf("after sweeping key 1, Keys reported %v, want keys 2 and 3", got)
	}
}

func testKeysCallbackMayUseStore(t *testing.T, s store.Store) {
	for i := range 5 {
		mustPut(t, s, key(i), val(pub(1), 1, "v", at(50)), at(0))
	}
	done := make(chan int)
	go func() {
		seen := 0
		s.Keys(func(k id.ID) bool {
			// What republishing does: read the key, store again, maybe sweep.
			if len(s.Records(k, at(1), nil)) == 1 {
				seen++
			}
			if err := put(s, k, val(pub(1), 1, "v", at(60)), self, at(1)); err != nil {
				t.Errorf("Put inside Keys: %v", err)
			}
			s.Lookup(k, pub(1), at(1))
			s.Sweep(at(1))
			return true
		})
		done <- seen
	}()
	select {
	case seen := <-done:
		if seen != 5 {
			t.Errorf("Records inside Keys found records under %d keys, want 5", seen)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Keys with a callback that uses the store did not return within 10s: deadlock?")
	}
}

// ascended returns the keys Ascend reports from from on, in its order.
func ascended(s store.Store, from id.ID) []id.ID {
	var ks []id.ID
	s.Ascend(from, func(k id.ID) bool { ks = append(ks, k); return true })
	return ks
}

// sortedKeys is the brute-force answer: the held keys not below from,
// sorted.
func sortedKeys(t *testing.T, s store.Store, from id.ID) []id.ID {
	var ks []id.ID
	for k := range keySet(t, s) {
		if k.Compare(from) >= 0 {
			ks = append(ks, k)
		}
	}
	slices.SortFunc(ks, func(a, b id.ID) int { return a.Compare(b) })
	return ks
}

// Ascend reports the held keys in ascending order from its start, keys of
// tombstones included, each once, and stops when fn says so.
func testAscendIsKeyOrder(t *testing.T, s store.Store) {
	if got := ascended(s, id.ID{}); len(got) != 0 {
		t.Fatalf("Ascend on an empty store reported %d keys", len(got))
	}
	for i := range 20 {
		v := val(pub(1), 1, "v", at(50))
		if i%5 == 0 {
			v = tomb(pub(1), 1, at(50))
		}
		mustPut(t, s, key(i), v, at(0))
	}
	all := sortedKeys(t, s, id.ID{})
	if got := ascended(s, id.ID{}); !slices.Equal(got, all) {
		t.Fatalf("Ascend from zero reported %d keys out of order or missing, want the 20 in key order", len(got))
	}
	// From a held key: that key first. From between keys: the next one.
	if got := ascended(s, all[7]); !slices.Equal(got, all[7:]) {
		t.Fatalf("Ascend from the 8th key reported %d keys, want %d from it", len(got), len(all)-7)
	}
	between := all[7]
	between[id.Len-1]++ // just after the 8th key: no key of the suite is that close
	if got := ascended(s, between); !slices.Equal(got, all[8:]) {
		t.Fatalf("Ascend from just after the 8th key reported %d keys, want %d", len(got), len(all)-8)
	}
	var top id.ID
	for i := range top {
		top[i] = 0xff
	}
	if got := ascended(s, top); len(got) != 0 {
		t.Fatalf("Ascend from the last ID reported %d keys", len(got))
	}
	calls := 0
	s.Ascend(id.ID{}, func(id.ID) bool { calls++; return calls < 3 })
	if calls != 3 {
		t.Errorf("Ascend called fn %d times, want 3 (it returned false on the third)", calls)
	}
}

// Across more keys than any one batch, and with keys added and swept
// between walks and inside one, Ascend stays in order and never reports a
// key twice; keys held throughout a walk are all reported.
func testAscendAcrossBatchesAndChanges(t *testing.T, s store.Store) {
	for i := range 700 {
		mustPut(t, s, key(i), val(pub(1), 1, "v", at(10+i%2*40)), at(0))
	}
	if got, want := ascended(s, id.ID{}), sortedKeys(t, s, id.ID{}); !slices.Equal(got, want) {
		t.Fatalf("Ascend over 700 keys reported %d, want %d in order", len(got), len(want))
	}
	s.Sweep(at(10)) // half the keys go
	for i := 700; i < 800; i++ {
		mustPut(t, s, key(i), val(pub(1), 1, "v", at(50)), at(10))
	}
	mustPut(t, s, key(0), val(pub(1), 2, "back", at(50)), at(10)) // a key that went, back again
	if got, want := ascended(s, id.ID{}), sortedKeys(t, s, id.ID{}); !slices.Equal(got, want) {
		t.Fatalf("after a sweep and new keys, Ascend reported %d keys, want %d in order", len(got), len(want))
	}
	held := sortedKeys(t, s, id.ID{})
	var got []id.ID
	i := 800
	s.Ascend(id.ID{}, func(k id.ID) bool {
		if len(got) > 0 && got[len(got)-1].Compare(k) >= 0 {
			t.Fatalf("Ascend reported %s after %s", k.Short(), got[len(got)-1].Short())
		}
		got = append(got, k)
		// Writes inside the walk, as replication's own puts may be.
		if err := put(s, key(i), val(pub(1), 1, "v", at(50)), self, at(11)); err != nil {
			t.Fatalf("Put inside Ascend: %v", err)
		}
		i++
		return true
	})
	have := map[id.ID]bool{}
	for _, k := range got {
		have[k] = true
	}
	for _, k := range held {
		if !have[k] {
			t.Fatalf("Ascend with puts inside missed %s, held throughout", k.Short())
		}
	}
}

func testClose(t *testing.T, s store.Store) {
	mustPut(t, s, key(1), val(pub(1), 1, "a", at(10)), at(0))
	if err := s.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if err := s.Put(key(2), val(pub(1), 1, "b", at(10)), self, at(0)); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Put after Close = %v, want ErrClosed", err)
	}
	// Closed is reported before any other reason.
	big := store.Value{Publisher: pub(1), Version: 1, Expires: at(10), Data: make([]byte, Limits().MaxValueSize+1)}
	if err := s.Put(key(2), big, srcA, at(0)); !errors.Is(err, store.ErrClosed) {
		t.Errorf("oversized Put after Close = %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close() = %v, want nil", err)
	}
	dst := make([]store.Value, 1, 4)
	if got := s.Get(key(1), at(1), dst); len(got) != 1 {
		t.Errorf("Get after Close appended %d values, want none", len(got)-1)
	}
	if got := s.Records(key(1), at(1), dst); len(got) != 1 {
		t.Errorf("Records after Close appended %d records, want none", len(got)-1)
	}
	if _, ok := s.Lookup(key(1), pub(1), at(1)); ok {
		t.Error("Lookup after Close found a record")
	}
	s.Keys(func(k id.ID) bool {
		t.Errorf("Keys after Close reported %s", k.Short())
		return true
	})
	// These must not panic; what they return after Close is unspecified.
	s.Sweep(at(100))
	s.NextExpiry()
	s.Len()
	s.Bytes()
}

// testSweepWithoutFullScan checks that expiry costs in proportion to what
// expires: with 10,000 live records held, a Sweep that deletes a few
// examines about as many, when the store says how many it examined (the
// optional SweepExamined method).
func testSweepWithoutFullScan(t *testing.T, s store.Store) {
	const live, expiring = 10_000, 5
	for i := range live {
		mustPut(t, s, key(i/50), val(pub(i%50), 1, "v", at(3600)), at(0))
	}
	// The expiring records sit among live ones, under keys that hold many,
	// so that deleting them by scanning their keys would show too.
	for i := range expiring {
		mustPut(t, s, key(i*7), val(pub(100+i), 1, "short", at(10)), at(0))
	}
	counter, ok := s.(interface{ SweepExamined() int })
	if n := s.Sweep(at(9)); n != 0 {
		t.Fatalf("Sweep before anything expired = %d, want 0", n)
	}
	if ok && counter.SweepExamined() > 1 {
		t.Errorf("a Sweep that deleted nothing examined %d records of %d", counter.SweepExamined(), live+expiring)
	}
	if n := s.Sweep(at(10)); n != expiring {
		t.Fatalf("Sweep = %d, want %d", n, expiring)
	}
	if ok && counter.SweepExamined() > expiring+1 {
		t.Errorf("a Sweep that deleted %d records examined %d of %d", expiring, counter.SweepExamined(), live+expiring)
	}
	wantLen(t, s, live)
	if !ok {
		t.Log("the store does not implement SweepExamined: the cost of Sweep is not checked")
	}
}

// valueFor makes the data a writer stores, tagged with the key so that a
// reader can tell a value under the wrong key.
func valueFor(k, v int) []byte { return fmt.Appendf(nil, "k%d:v%d", k, v) }

func testConcurrent(t *testing.T, s store.Store) {
	const (
		keys    = 12
		writers = 3
		readers = 3
		ops     = 400
	)
	var tick atomic.Int64 // a shared clock that only moves forward
	now := func() time.Time { return t0.Add(time.Duration(tick.Add(1)) * time.Millisecond) }

	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for range ops {
				k, n := r.IntN(keys), now()
				src := []netip.Addr{self, srcA, srcB, srcC}[(w+r.IntN(2))%4]
				ver := r.IntN(10)
				v := store.Value{Publisher: pub(r.IntN(6)), Version: uint64(ver), Deleted: r.IntN(5) == 0,
					Expires: n.Add(time.Duration(1+r.IntN(100)) * time.Millisecond), Data: valueFor(k, ver)}
				err := put(s, key(k), v, src, n)
				if err != nil && !errors.Is(err, store.ErrKeyFull) && !errors.Is(err, store.ErrFull) &&
					!errors.Is(err, store.ErrQuota) && !errors.Is(err, store.ErrStale) {
					t.Errorf("concurrent Put: %v", err)
				}
			}
		})
	}
	for rd := range readers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(rd), 2))
			var buf []store.Value
			for range ops {
				k, n := r.IntN(keys), now()
				tombstones := r.IntN(2) == 0
				if tombstones {
					buf = s.Records(key(k), n, buf[:0])
				} else {
					buf = s.Get(key(k), n, buf[:0])
				}
				if len(buf) > Limits().MaxPerKey {
					t.Errorf("Get returned %d records, above MaxPerKey", len(buf))
				}
				if !sameAll(buf, sorted(buf...)) {
					t.Errorf("Get(key %d) returned %s, out of order", k, describeAll(buf))
				}
				seen := map[id.ID]bool{}
				for _, v := range buf {
					if !v.Deleted && !bytes.HasPrefix(v.Data, fmt.Appendf(nil, "k%d:", k)) {
						t.Errorf("Get(key %d) returned %q, stored under another key", k, v.Data)
					}
					if v.Deleted && (!tombstones || len(v.Data) > 0) {
						t.Errorf("Get(key %d) returned %s", k, describe(v))
					}
					if seen[v.Publisher] {
						t.Errorf("Get(key %d) returned two records of %s", k, v.Publisher.Short())
					}
					seen[v.Publisher] = true
					if !v.Expires.After(n) {
						t.Errorf("Get at %v returned %s", n, describe(v))
					}
				}
				if l := s.Len(); l < 0 || l > Limits().MaxValues {
					t.Errorf("Len() = %d, outside [0, MaxValues]", l)
				}
				if b := s.Bytes(); b < 0 || b > Limits().MaxBytes {
					t.Errorf("Bytes() = %d, outside [0, MaxBytes]", b)
				}
			}
		})
	}
	wg.Go(func() {
		for range ops {
			s.Sweep(now())
			s.NextExpiry()
			s.Keys(func(id.ID) bool { return true })
		}
	})
	wg.Wait()

	// Quiescent again: everything adds up.
	total, bytes := 0, 0
	s.Keys(func(k id.ID) bool {
		for _, v := range s.Records(k, t0, nil) { // t0 precedes every expiry
			total++
			bytes += len(v.Data)
		}
		return true
	})
	wantLen(t, s, total)
	wantBytes(t, s, bytes)
	s.Sweep(now().Add(time.Hour))
	wantLen(t, s, 0)
	wantBytes(t, s, 0)
}
