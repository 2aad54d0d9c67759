// Package storetest is the conformance suite for store.Store: every
// implementation runs it from its own tests, so that the node can swap one
// store for another without noticing.
//
//	func TestMemoryConforms(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store {
//			return store.NewMemory(storetest.Limits())
//		})
//	}
package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/store"
)

// Limits returns the limits every store under test must be opened with. They
// are small, so that the suite reaches each one in a few Puts, and distinct
// from each other, so that it can check that an error message names the
// number.
func Limits() store.Limits {
	return store.Limits{
		MaxValues: 41, MaxPerKey: 7, MaxValueSize: 123, MaxBytes: 2003,
		MaxPerSource: 11, MaxBytesPerSource: 301, MaxPerKeyPerSource: 3,
		MaxPerSite: 19, MaxBytesPerSite: 457, MaxPerKeyPerSite: 5,
	}
}

// Run runs the conformance suite as subtests of t. open must return a new,
// empty store that enforces Limits(); Run closes each store it opens.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	fresh := func(t *testing.T) store.Store {
		t.Helper()
		s := open(t)
		t.Cleanup(func() { _ = s.Close() })
		if n := s.Len(); n != 0 {
			t.Fatalf("open returned a store holding %d values, want an empty one", n)
		}
		return s
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"EmptyValue", testEmptyValue},
		{"ExpiryIsWallClock", testExpiryIsWallClock},
		{"SameBytesRefreshExpiry", testSameBytesRefreshExpiry},
		{"RefreshCannotShortenExpiry", testRefreshCannotShortenExpiry},
		{"DifferentBytesAdd", testDifferentBytesAdd},
		{"InsertionOrder", testInsertionOrder},
		{"ReputAfterExpiryIsNew", testReputAfterExpiryIsNew},
		{"ExpiredInvisibleBeforeSweep", testExpiredInvisibleBeforeSweep},
		{"NextExpiry", testNextExpiry},
		{"LimitValueSize", testLimitValueSize},
		{"LimitPerKey", testLimitPerKey},
		{"LimitTotal", testLimitTotal},
		{"LimitTotalBytes", testLimitTotalBytes},
		{"OneSourceCannotFillAKey", testOneSourceCannotFillAKey},
		{"OneSourceCannotFillTheStore", testOneSourceCannotFillTheStore},
		{"OneSourceCannotTakeTheBytes", testOneSourceCannotTakeTheBytes},
		{"SourcesGroupByHost", testSourcesGroupByHost},
		{"QuotaReleasedWhenValuesExpire", testQuotaReleasedWhenValuesExpire},
		{"OneSiteCannotFillAKey", testOneSiteCannotFillAKey},
		{"OneSiteCannotFillTheStore", testOneSiteCannotFillTheStore},
		{"RefreshMovesTheChargeToTheRefresher", testRefreshMovesTheChargeToTheRefresher},
		{"NodeItselfIsExemptFromQuotas", testNodeItselfIsExemptFromQuotas},
		{"ExpiryNotInFuture", testExpiryNotInFuture},
		{"PutCopiesData", testPutCopiesData},
		{"GetDataStableAcrossPuts", testGetDataStableAcrossPuts},
		{"Len", testLen},
		{"Keys", testKeys},
		{"KeysCallbackMayUseStore", testKeysCallbackMayUseStore},
		{"Close", testClose},
		{"ConcurrentPutGetSweep", testConcurrent},
		{"MatchesModel", testMatchesModel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, fresh(t)) })
	}
}

// t0 is an arbitrary instant; at(s) is s seconds after it. Stores read no
// clock, so the suite runs on these instants alone.
var t0 = time.Date(2031, time.March, 4, 5, 6, 7, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

func key(i int) id.ID { return id.Key(fmt.Sprintf("storetest key %d", i)) }

// self is the source of the node's own puts.
var self netip.Addr

// Senders of STOREs, in distinct groups.
var (
	srcA = netip.MustParseAddr("203.0.113.7")
	srcB = netip.MustParseAddr("198.51.100.20")
	srcC = netip.MustParseAddr("2001:db8:c::1")
)

// mustPut stores data as the node itself, which the source quotas leave
// alone, so that the other limits can be tested on their own.
func mustPut(t *testing.T, s store.Store, k id.ID, data string, expires, now time.Time) {
	t.Helper()
	mustPutFrom(t, s, self, k, data, expires, now)
}

func mustPutFrom(t *testing.T, s store.Store, src netip.Addr, k id.ID, data string, expires, now time.Time) {
	t.Helper()
	if err := s.Put(k, []byte(data), src, expires, now); err != nil {
		t.Fatalf("Put(%s, %q, from %v, expires %v, now %v) = %v, want nil", k.Short(), data, src, expires, now, err)
	}
}

// datas returns the values' data as strings, in order.
func datas(vals []store.Value) []string {
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = string(v.Data)
	}
	return out
}

// wantGet checks that Get(k, now) returns exactly want, in order.
func wantGet(t *testing.T, s store.Store, k id.ID, now time.Time, want ...string) []store.Value {
	t.Helper()
	got := s.Get(k, now, nil)
	if g := datas(got); strings.Join(g, "\x00") != strings.Join(want, "\x00") || len(g) != len(want) {
		t.Fatalf("Get(%s, %v) = %q, want %q", k.Short(), now, g, want)
	}
	return got
}

func wantLen(t *testing.T, s store.Store, want int) {
	t.Helper()
	if n := s.Len(); n != want {
		t.Fatalf("Len() = %d, want %d", n, want)
	}
}

// wantErr checks that err wraps sentinel and that its message names each of
// the numbers, since the publisher only sees the message.
func wantErr(t *testing.T, err, sentinel error, numbers ...int) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Fatalf("error = %v, want one wrapping %q", err, sentinel)
	}
	for _, n := range numbers {
		if !regexp.MustCompile(fmt.Sprintf(`(^|[^\w.:])%d($|[^\w.:])`, n)).MatchString(err.Error()) {
			t.Errorf("error %q does not name %d", err, n)
		}
	}
}

// wantQuota checks that err is a quota refusal naming the source and the
// numbers.
func wantQuota(t *testing.T, err error, source string, numbers ...int) {
	t.Helper()
	wantErr(t, err, store.ErrQuota, numbers...)
	if !strings.Contains(err.Error(), source) {
		t.Errorf("error %q does not name the source %s", err, source)
	}
}

func testRoundTrip(t *testing.T, s store.Store) {
	k := key(1)
	mustPut(t, s, k, "hello", at(10), at(0))
	got := wantGet(t, s, k, at(1), "hello")
	if !got[0].Expires.Equal(at(10)) {
		t.Errorf("Expires = %v, want %v", got[0].Expires, at(10))
	}
	wantGet(t, s, key(2), at(1))

	dst := make([]store.Value, 1, 4)
	dst[0] = store.Value{Data: []byte("already there")}
	out := s.Get(k, at(1), dst)
	if g := datas(out); len(g) != 2 || g[0] != "already there" || g[1] != "hello" {
		t.Errorf("Get appending to a 1-element dst = %q, want [\"already there\" \"hello\"]", g)
	}
}

func testEmptyValue(t *testing.T, s store.Store) {
	k := key(1)
	if err := s.Put(k, nil, self, at(10), at(0)); err != nil {
		t.Fatalf("Put of an empty value = %v, want nil", err)
	}
	// An empty slice holds the same (no) bytes: a refresh, not a second value.
	if err := s.Put(k, []byte{}, self, at(20), at(0)); err != nil {
		t.Fatalf("Put of an empty value = %v, want nil", err)
	}
	got := wantGet(t, s, k, at(15), "")
	if !got[0].Expires.Equal(at(20)) {
		t.Errorf("Expires = %v, want %v", got[0].Expires, at(20))
	}
	wantLen(t, s, 1)
}

func testExpiryIsWallClock(t *testing.T, s store.Store) {
	// time.Now carries a monotonic reading; a store must compare on the wall
	// clock alone, as its heap and any persistent store do, so the reading
	// must not come back.
	now := time.Now()
	mustPut(t, s, key(1), "v", now.Add(time.Hour), now)
	got := wantGet(t, s, key(1), now, "v")
	if e := got[0].Expires; e != e.Round(0) || !e.Equal(now.Add(time.Hour)) {
		t.Errorf("Expires = %v, want %v without a monotonic clock reading", e, now.Add(time.Hour).Round(0))
	}
}

func testSameBytesRefreshExpiry(t *testing.T, s store.Store) {
	k := key(1)
	mustPut(t, s, k, "addr", at(10), at(0))
	// Same bytes from another slice: compared by content, not identity.
	mustPut(t, s, k, string([]byte("addr")), at(20), at(1))
	wantLen(t, s, 1)
	got := wantGet(t, s, k, at(15), "addr")
	if !got[0].Expires.Equal(at(20)) {
		t.Errorf("after refresh Expires = %v, want %v", got[0].Expires, at(20))
	}
	wantLen(t, s, 1)
}

// testRefreshCannotShortenExpiry guards against a forged STORE of the same
// bytes with a short TTL, from anyone, cutting a value's life short: a
// refresh may only extend an expiry.
func testRefreshCannotShortenExpiry(t *testing.T, s store.Store) {
	k := key(1)
	long := at(24 * 3600)
	mustPutFrom(t, s, srcA, k, "addr", long, at(0))
	for _, src := range []netip.Addr{srcB, srcA, self} {
		// Accepted, since the value is stored at least that long, but the
		// expiry stays the later one.
		mustPutFrom(t, s, src, k, "addr", at(2), at(1))
		got := wantGet(t, s, k, at(3), "addr")
		if !got[0].Expires.Equal(long) {
			t.Fatalf("a refresh from %v with an earlier expiry moved the expiry to %v, want %v", src, got[0].Expires, long)
		}
	}
	if n := s.Sweep(at(3)); n != 0 {
		t.Errorf("Sweep after the shortening refreshes deleted %d values, want 0", n)
	}
	if e, ok := s.NextExpiry(); !ok || !e.Equal(long) {
		t.Errorf("NextExpiry() = %v, %v; want %v, true", e, ok, long)
	}
	wantLen(t, s, 1)
}

func testDifferentBytesAdd(t *testing.T, s store.Store) {
	k := key(1)
	mustPut(t, s, k, "a", at(10), at(0))
	mustPut(t, s, k, "b", at(30), at(0))
	mustPut(t, s, k, "c", at(20), at(0))
	wantLen(t, s, 3)
	got := wantGet(t, s, k, at(5), "a", "b", "c")
	for i, want := range []time.Time{at(10), at(30), at(20)} {
		if !got[i].Expires.Equal(want) {
			t.Errorf("value %q expires %v, want %v", got[i].Data, got[i].Expires, want)
		}
	}
	wantGet(t, s, k, at(25), "b")
}

func testInsertionOrder(t *testing.T, s store.Store) {
	k, other := key(1), key(2)
	var want []string
	for i := range Limits().MaxPerKey {
		v := fmt.Sprintf("v%d", i)
		want = append(want, v)
		// Expiries run against insertion order, so that an order by expiry
		// would show.
		mustPut(t, s, k, v, at(100-i), at(0))
		mustPut(t, s, other, v, at(100), at(0))
	}
	wantGet(t, s, k, at(1), want...)
	// Refreshes keep each value in its place, whether they extend the
	// expiry or not.
	mustPut(t, s, k, "v3", at(200), at(2))
	mustPut(t, s, k, "v0", at(50), at(2))
	wantGet(t, s, k, at(3), want...)
}

func testReputAfterExpiryIsNew(t *testing.T, s store.Store) {
	k := key(1)
	mustPut(t, s, k, "old", at(5), at(0))
	mustPut(t, s, k, "b", at(50), at(0))
	// "old" expired at 5: storing it again adds it anew, at the end.
	mustPut(t, s, k, "old", at(60), at(6))
	got := wantGet(t, s, k, at(7), "b", "old")
	if !got[1].Expires.Equal(at(60)) {
		t.Errorf("re-stored value expires %v, want %v", got[1].Expires, at(60))
	}
	wantLen(t, s, 2)
}

func testExpiredInvisibleBeforeSweep(t *testing.T, s store.Store) {
	a, b := key(1), key(2)
	mustPut(t, s, a, "a1", at(10), at(0))
	mustPut(t, s, a, "a2", at(20), at(0))
	mustPut(t, s, a, "a3", at(30), at(0))
	mustPut(t, s, b, "b1", at(10), at(0))
	mustPut(t, s, b, "b2", at(40), at(0))

	wantGet(t, s, a, at(10).Add(-time.Nanosecond), "a1", "a2", "a3")
	// A value is expired from its expiry instant on.
	wantGet(t, s, a, at(10), "a2", "a3")
	wantGet(t, s, b, at(10), "b2")
	wantLen(t, s, 5) // still stored until swept

	steps := []struct {
		now          int
		deleted      int
		len          int
		wantA, wantB []string
	}{
		{now: 10, deleted: 2, len: 3, wantA: []string{"a2", "a3"}, wantB: []string{"b2"}},
		{now: 10, deleted: 0, len: 3, wantA: []string{"a2", "a3"}, wantB: []string{"b2"}},
		{now: 25, deleted: 1, len: 2, wantA: []string{"a3"}, wantB: []string{"b2"}},
		{now: 100, deleted: 2, len: 0},
	}
	for _, st := range steps {
		if n := s.Sweep(at(st.now)); n != st.deleted {
			t.Fatalf("Sweep(at %d s) = %d, want %d", st.now, n, st.deleted)
		}
		wantLen(t, s, st.len)
		// Read back at an earlier instant: swept values are gone for good.
		wantGet(t, s, a, at(0), st.wantA...)
		wantGet(t, s, b, at(0), st.wantB...)
	}
	if _, ok := s.NextExpiry(); ok {
		t.Error("NextExpiry reports a value after everything was swept")
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
	mustPut(t, s, key(1), "x", at(30), at(0))
	mustPut(t, s, key(2), "y", at(10), at(0))
	mustPut(t, s, key(1), "z", at(20), at(0))
	want(10)
	mustPut(t, s, key(2), "y", at(50), at(1)) // the earliest moves later
	want(20)
	mustPut(t, s, key(1), "z", at(5), at(2)) // a refresh cannot move it earlier
	want(20)
	mustPut(t, s, key(1), "w", at(5), at(2)) // a new value can
	want(5)
	// Expired but not swept still counts: it is what the next sweep deletes.
	wantGet(t, s, key(1), at(6), "x", "z")
	want(5)
	if n := s.Sweep(at(6)); n != 1 {
		t.Fatalf("Sweep = %d, want 1", n)
	}
	want(20)
	if n := s.Sweep(at(100)); n != 3 {
		t.Fatalf("Sweep = %d, want 3", n)
	}
	want(-1)
}

func testLimitValueSize(t *testing.T, s store.Store) {
	max := Limits().MaxValueSize
	k := key(1)
	mustPut(t, s, k, strings.Repeat("m", max), at(10), at(0))
	err := s.Put(k, bytes.Repeat([]byte("x"), max+1), self, at(10), at(0))
	wantErr(t, err, store.ErrTooLarge, max, max+1)
	wantGet(t, s, k, at(1), strings.Repeat("m", max))
	wantLen(t, s, 1)
}

func testLimitPerKey(t *testing.T, s store.Store) {
	max := Limits().MaxPerKey
	k := key(1)
	var want []string
	for i := range max {
		v := fmt.Sprintf("v%d", i)
		want = append(want, v)
		exp := at(100)
		if i == 0 {
			exp = at(5)
		}
		mustPut(t, s, k, v, exp, at(0))
	}
	err := s.Put(k, []byte("one too many"), self, at(100), at(1))
	wantErr(t, err, store.ErrKeyFull, max)
	wantGet(t, s, k, at(1), want...)
	wantLen(t, s, max)
	// A refresh adds nothing, so a full key accepts it.
	mustPut(t, s, k, "v1", at(90), at(1))
	// Other keys have their own allowance.
	mustPut(t, s, key(2), "elsewhere", at(100), at(1))
	// Expired values do not count toward the limit, swept or not.
	mustPut(t, s, k, "after v0 expired", at(100), at(5))
	wantGet(t, s, k, at(5), append(want[1:], "after v0 expired")...)
}

func testLimitTotal(t *testing.T, s store.Store) {
	l := Limits()
	perKey := l.MaxPerKey - 2
	for i := range l.MaxValues {
		exp := at(100)
		if i < 3 {
			exp = at(10)
		}
		mustPut(t, s, key(i/perKey), fmt.Sprintf("v%d", i), exp, at(0))
	}
	wantLen(t, s, l.MaxValues)
	fresh := key(1000)
	err := s.Put(fresh, []byte("no room"), self, at(100), at(1))
	wantErr(t, err, store.ErrFull, l.MaxValues)
	wantGet(t, s, fresh, at(1))
	wantLen(t, s, l.MaxValues)
	// A refresh adds nothing, so a full store accepts it.
	mustPut(t, s, key(3), fmt.Sprintf("v%d", 3*perKey), at(90), at(1))
	wantLen(t, s, l.MaxValues)
	// Once values have expired, a full store reclaims them before refusing.
	mustPut(t, s, fresh, "room now", at(100), at(10))
	wantGet(t, s, fresh, at(10), "room now")
	wantLen(t, s, l.MaxValues-3+1)
	wantGet(t, s, key(0), at(0), "v3", "v4") // v0..v2 were deleted
}

func testLimitTotalBytes(t *testing.T, s store.Store) {
	l := Limits()
	// big returns a distinct value of n bytes.
	big := func(i, n int) string { return fmt.Sprintf("%03d", i) + strings.Repeat("b", n-3) }
	full := l.MaxBytes / l.MaxValueSize // values of the largest size that fit
	for i := range full {
		exp := at(100)
		if i < 2 {
			exp = at(10)
		}
		mustPut(t, s, key(i/4), big(i, l.MaxValueSize), exp, at(0))
	}
	rest := l.MaxBytes - full*l.MaxValueSize
	mustPut(t, s, key(100), big(100, rest), at(100), at(0)) // exactly MaxBytes
	err := s.Put(key(101), []byte("x"), self, at(100), at(1))
	wantErr(t, err, store.ErrFull, l.MaxBytes)
	wantGet(t, s, key(101), at(1))
	wantLen(t, s, full+1)
	// A refresh adds nothing, so a store full of bytes accepts it.
	mustPut(t, s, key(100), big(100, rest), at(110), at(1))
	// Expired values are reclaimed before refusing.
	mustPut(t, s, key(101), big(101, l.MaxValueSize), at(100), at(10))
	wantLen(t, s, full+1-2+1)
}

// testOneSourceCannotFillAKey guards against key squatting: one source
// storing junk under a key until every later publisher is refused.
func testOneSourceCannotFillAKey(t *testing.T, s store.Store) {
	l := Limits()
	k := key(1)
	var want []string
	for i := range l.MaxPerKeyPerSource {
		v := fmt.Sprintf("junk %d", i)
		want = append(want, v)
		mustPutFrom(t, s, srcA, k, v, at(100), at(0))
	}
	err := s.Put(k, []byte("more junk"), srcA, at(100), at(1))
	wantQuota(t, err, "203.0.113.7", l.MaxPerKeyPerSource)
	// The same host in its IPv4-mapped IPv6 form is the same source.
	err = s.Put(k, []byte("more junk"), netip.MustParseAddr("::ffff:203.0.113.7"), at(100), at(1))
	wantQuota(t, err, "203.0.113.7", l.MaxPerKeyPerSource)
	wantGet(t, s, k, at(1), want...)
	// Every other publisher can still store under the key.
	mustPutFrom(t, s, srcB, k, "b's address", at(100), at(1))
	mustPutFrom(t, s, srcC, k, "c's address", at(100), at(1))
	mustPut(t, s, k, "the node's own", at(100), at(1))
	wantGet(t, s, k, at(1), append(want, "b's address", "c's address", "the node's own")...)
	// The first source keeps its allowance under other keys.
	mustPutFrom(t, s, srcA, key(2), "more junk", at(100), at(1))
}

// testOneSourceCannotFillTheStore guards against store filling: one source
// taking every slot of a node for as long as its TTL allows.
func testOneSourceCannotFillTheStore(t *testing.T, s store.Store) {
	l := Limits()
	per := l.MaxPerKeyPerSource
	for i := range l.MaxPerSource {
		mustPutFrom(t, s, srcA, key(i/per), fmt.Sprintf("a%d", i), at(100), at(0))
	}
	fresh := key(1000)
	err := s.Put(fresh, []byte("one too many"), srcA, at(100), at(1))
	wantQuota(t, err, "203.0.113.7", l.MaxPerSource)
	wantGet(t, s, fresh, at(1))
	wantLen(t, s, l.MaxPerSource)
	// The source's refresh adds nothing, so it is accepted at the quota.
	mustPutFrom(t, s, srcA, key(0), "a0", at(200), at(1))
	// Other sources, and the node itself, still have room.
	mustPutFrom(t, s, srcB, fresh, "b", at(100), at(1))
	mustPutFrom(t, s, srcC, fresh, "c", at(100), at(1))
	mustPut(t, s, fresh, "the node's own", at(100), at(1))
	wantGet(t, s, fresh, at(1), "b", "c", "the node's own")
	wantLen(t, s, l.MaxPerSource+3)
}

func testOneSourceCannotTakeTheBytes(t *testing.T, s store.Store) {
	l := Limits()
	big := func(i, n int) string { return fmt.Sprintf("%03d", i) + strings.Repeat("c", n-3) }
	n := l.MaxBytesPerSource / l.MaxValueSize
	for i := range n {
		mustPutFrom(t, s, srcC, key(i), big(i, l.MaxValueSize), at(100), at(0))
	}
	err := s.Put(key(100), []byte(big(100, l.MaxValueSize)), srcC, at(100), at(1))
	// An IPv6 source is named as its /64.
	wantQuota(t, err, "2001:db8:c::/64", l.MaxBytesPerSource, l.MaxValueSize)
	wantGet(t, s, key(100), at(1))
	// What is left of the quota can still be used, to the byte.
	rest := l.MaxBytesPerSource - n*l.MaxValueSize
	mustPutFrom(t, s, srcC, key(100), big(100, rest), at(100), at(1))
	err = s.Put(key(101), []byte("x"), srcC, at(100), at(1))
	wantQuota(t, err, "2001:db8:c::/64", l.MaxBytesPerSource)
	// Others are not charged for it.
	mustPutFrom(t, s, srcB, key(101), big(101, l.MaxValueSize), at(100), at(1))
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
				mustPutFrom(t, s, a, k, fmt.Sprint(j), at(100), at(0))
			}
			err := s.Put(k, []byte("b"), b, at(100), at(0))
			switch {
			case tc.same && !errors.Is(err, store.ErrQuota):
				t.Errorf("Put from %s after %s filled its quota under the key = %v, want ErrQuota: the same source", b, a, err)
			case !tc.same && err != nil:
				t.Errorf("Put from %s after %s filled its quota under the key = %v, want nil: another source", b, a, err)
			}
		})
	}
}

// testQuotaReleasedWhenValuesExpire checks that a quota counts values
// alive: expired ones, swept or not, give their room back.
func testQuotaReleasedWhenValuesExpire(t *testing.T, s store.Store) {
	l := Limits()
	per := l.MaxPerKeyPerSource
	// Over all keys, released by the Put itself.
	for i := range l.MaxPerSource {
		mustPutFrom(t, s, srcA, key(i/per), fmt.Sprintf("a%d", i), at(10), at(0))
	}
	wantQuota(t, s.Put(key(100), []byte("later"), srcA, at(100), at(9)), "203.0.113.7", l.MaxPerSource)
	mustPutFrom(t, s, srcA, key(100), "later", at(100), at(10))
	wantLen(t, s, 1)
	// Under one key, released by the Put's purge of the key.
	for i := range per - 1 {
		mustPutFrom(t, s, srcA, key(100), fmt.Sprintf("k%d", i), at(20), at(10))
	}
	wantQuota(t, s.Put(key(100), []byte("k more"), srcA, at(100), at(19)), "203.0.113.7", per)
	mustPutFrom(t, s, srcA, key(100), "k more", at(100), at(20))
	// Over all keys again, released by Sweep.
	for i := range l.MaxPerSource - 2 {
		mustPutFrom(t, s, srcA, key(200+i), "s", at(30), at(20))
	}
	wantQuota(t, s.Put(key(300), []byte("s"), srcA, at(100), at(29)), "203.0.113.7", l.MaxPerSource)
	if n := s.Sweep(at(30)); n != l.MaxPerSource-2 {
		t.Fatalf("Sweep = %d, want %d", n, l.MaxPerSource-2)
	}
	for i := range l.MaxPerSource - 2 {
		mustPutFrom(t, s, srcA, key(300+i), "s", at(100), at(30))
	}
	// Bytes, released by the Put itself.
	big := strings.Repeat("b", l.MaxValueSize)
	n := l.MaxBytesPerSource / l.MaxValueSize
	for i := range n {
		mustPutFrom(t, s, srcC, key(400+i), big, at(40), at(30))
	}
	wantQuota(t, s.Put(key(500), []byte(big), srcC, at(100), at(39)), "2001:db8:c::/64", l.MaxBytesPerSource)
	mustPutFrom(t, s, srcC, key(500), big, at(100), at(40))
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
// MaxPerKeyPerSite values under a key.
func testOneSiteCannotFillAKey(t *testing.T, s store.Store) {
	l := Limits()
	k := key(1)
	var want []string
	for i := range l.MaxPerKeyPerSite {
		v := fmt.Sprintf("junk %d", i)
		want = append(want, v)
		src := site1
		if i >= l.MaxPerKeyPerSource {
			src = site2
		}
		mustPutFrom(t, s, src, k, v, at(100), at(0))
	}
	for _, src := range []netip.Addr{site2, site3} {
		wantQuota(t, s.Put(k, []byte("more junk"), src, at(100), at(1)), siteName, l.MaxPerKeyPerSite)
	}
	wantGet(t, s, k, at(1), want...)
	// Other sites, and IPv4 sources, can still store under the key.
	mustPutFrom(t, s, nextSite, k, "next site's", at(100), at(1))
	mustPutFrom(t, s, srcB, k, "b's", at(100), at(1))
	// The site keeps its allowance under other keys.
	mustPutFrom(t, s, site3, key(2), "more junk", at(100), at(1))
}

// testOneSiteCannotFillTheStore guards against store filling by one IPv6
// site: its sources together hold at most MaxPerSite values and
// MaxBytesPerSite bytes.
func testOneSiteCannotFillTheStore(t *testing.T, s store.Store) {
	l := Limits()
	for i := range l.MaxPerSite {
		src := site1
		if i >= l.MaxPerSource {
			src = site2
		}
		mustPutFrom(t, s, src, key(i), "v", at(100), at(0))
	}
	fresh := key(1000)
	wantQuota(t, s.Put(fresh, []byte("one too many"), site3, at(100), at(1)), siteName, l.MaxPerSite)
	wantGet(t, s, fresh, at(1))
	// A refresh adds nothing, so the site's is accepted at the quota.
	mustPutFrom(t, s, site2, key(l.MaxPerSite-1), "v", at(200), at(1))
	// Other sites still have room.
	mustPutFrom(t, s, nextSite, fresh, "next site's", at(100), at(1))
	wantLen(t, s, l.MaxPerSite+1)
	// Once the site's values expire, its room comes back.
	mustPutFrom(t, s, site3, fresh, "site's", at(500), at(200))

	// Bytes: three sources of the site fill its share to the byte.
	big := func(i, n int) string { return fmt.Sprintf("%03d", i) + strings.Repeat("s", n-3) }
	for i, src := range []netip.Addr{site1, site1, site2} {
		mustPutFrom(t, s, src, key(2000+i), big(i, l.MaxValueSize), at(400), at(300))
	}
	rest := l.MaxBytesPerSite - 3*l.MaxValueSize - len("site's")
	mustPutFrom(t, s, site3, key(2003), big(3, rest), at(400), at(300))
	wantQuota(t, s.Put(key(2004), []byte("x"), site3, at(400), at(300)), siteName, l.MaxBytesPerSite)
	mustPutFrom(t, s, nextSite, key(2004), "x", at(400), at(300))
}

// testRefreshMovesTheChargeToTheRefresher checks that a refresh that extends
// a value moves its charge to the refresher, so that a third party cannot
// keep a publisher's quota spent by refreshing its values; that the move
// needs the refresher to have room; and that a refresh that extends nothing
// changes nothing.
func testRefreshMovesTheChargeToTheRefresher(t *testing.T, s store.Store) {
	l := Limits()
	per := l.MaxPerKeyPerSource
	k := key(1)
	mustPutFrom(t, s, srcA, k, "shared", at(100), at(0))
	// B extends it: B is charged for it now, and A is not.
	mustPutFrom(t, s, srcB, k, "shared", at(200), at(1))
	for i := range per {
		mustPutFrom(t, s, srcA, k, fmt.Sprintf("a%d", i), at(300), at(1))
	}
	wantQuota(t, s.Put(k, []byte("a more"), srcA, at(300), at(1)), "203.0.113.7", per)
	for i := range per - 1 {
		mustPutFrom(t, s, srcB, k, fmt.Sprintf("b%d", i), at(300), at(1))
	}
	wantQuota(t, s.Put(k, []byte("b more"), srcB, at(300), at(1)), "198.51.100.20", per)
	// B holds the value: its refresh at its quota is accepted.
	mustPutFrom(t, s, srcB, k, "shared", at(250), at(1))
	// A has no room to take it back: its extending refresh is refused, and
	// changes nothing.
	wantQuota(t, s.Put(k, []byte("shared"), srcA, at(300), at(1)), "203.0.113.7", per)
	if got := wantGet(t, s, k, at(1), "shared", "a0", "a1", "a2", "b0", "b1"); !got[0].Expires.Equal(at(250)) {
		t.Fatalf("a refused refresh moved the expiry to %v, want %v", got[0].Expires, at(250))
	}
	// A refresh that extends nothing is accepted from anyone and moves no
	// charge: B still has no room.
	mustPutFrom(t, s, srcA, k, "shared", at(240), at(1))
	mustPutFrom(t, s, srcC, k, "shared", at(250), at(1))
	wantQuota(t, s.Put(k, []byte("b more"), srcB, at(300), at(1)), "198.51.100.20", per)
	// The node itself takes the charge, and B gets its room back.
	mustPut(t, s, k, "shared", at(260), at(1))
	mustPutFrom(t, s, srcB, k, "b more", at(300), at(1))

	// Over the store: a source at MaxPerSource cannot take a value over.
	for i := range l.MaxPerSource {
		mustPutFrom(t, s, srcC, key(100+i/per), fmt.Sprintf("c%d", i), at(300), at(1))
	}
	wantQuota(t, s.Put(k, []byte("a0"), srcC, at(400), at(1)), "2001:db8:c::/64", l.MaxPerSource)
	wantGet(t, s, k, at(1), "shared", "a0", "a1", "a2", "b0", "b1", "b more")

	// Within a site: a charge moves between two /64s of a site at its quota
	// under a key, since the site holds the value either way; a third /64
	// still has room of its own under the key.
	k2 := key(200)
	for i := range l.MaxPerKeyPerSite {
		src := site1
		if i >= per {
			src = site2
		}
		mustPutFrom(t, s, src, k2, fmt.Sprintf("s%d", i), at(100), at(1))
	}
	mustPutFrom(t, s, site3, k2, "s0", at(110), at(1))
	// site1 got one value of room back, but the site has none.
	wantQuota(t, s.Put(k2, []byte("s more"), site1bis, at(100), at(1)), siteName, l.MaxPerKeyPerSite)
	// Another site's source takes a value out of the site, which gets room.
	mustPutFrom(t, s, nextSite, k2, "s1", at(120), at(1))
	mustPutFrom(t, s, site1bis, k2, "s more", at(100), at(1))
}

func testNodeItselfIsExemptFromQuotas(t *testing.T, s store.Store) {
	l := Limits()
	// More values under one key, over all keys, and more bytes than any
	// source may hold; MaxBytes still bounds them.
	n := l.MaxBytes / l.MaxValueSize
	for i := range n {
		mustPut(t, s, key(i/l.MaxPerKey), fmt.Sprintf("%03d", i)+strings.Repeat("n", l.MaxValueSize-3), at(100), at(0))
	}
	if got := len(s.Get(key(0), at(1), nil)); got != l.MaxPerKey {
		t.Fatalf("key 0 holds %d of the node's own values, want %d", got, l.MaxPerKey)
	}
	wantLen(t, s, n)
	err := s.Put(key(100), []byte(strings.Repeat("n", l.MaxValueSize)), self, at(100), at(0))
	wantErr(t, err, store.ErrFull, l.MaxBytes)
}

func testExpiryNotInFuture(t *testing.T, s store.Store) {
	k := key(1)
	mustPut(t, s, k, "live", at(20), at(0))
	for _, tc := range []struct {
		name    string
		data    string
		expires time.Time
	}{
		{"NewValueExpiresNow", "new", at(5)},
		{"NewValueExpiredBefore", "new", at(4)},
		{"RefreshExpiresNow", "live", at(5)},
		{"RefreshExpiredBefore", "live", at(-100)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Put(k, []byte(tc.data), srcA, tc.expires, at(5))
			wantErr(t, err, store.ErrExpired)
			got := wantGet(t, s, k, at(5), "live")
			if !got[0].Expires.Equal(at(20)) {
				t.Errorf("refused Put changed the expiry to %v", got[0].Expires)
			}
			wantLen(t, s, 1)
		})
	}
}

func testPutCopiesData(t *testing.T, s store.Store) {
	k := key(1)
	buf := []byte("original")
	if err := s.Put(k, buf, srcA, at(10), at(0)); err != nil {
		t.Fatal(err)
	}
	copy(buf, "XXXXXXXX")
	wantGet(t, s, k, at(1), "original")
	// The same holds for the slice passed to a refresh.
	buf = []byte("original")
	if err := s.Put(k, buf, srcB, at(20), at(1)); err != nil {
		t.Fatal(err)
	}
	copy(buf, "YYYYYYYY")
	wantGet(t, s, k, at(15), "original")
}

func testGetDataStableAcrossPuts(t *testing.T, s store.Store) {
	k := key(1)
	mustPut(t, s, k, "aaaa", at(100), at(0))
	mustPut(t, s, k, "bbbb", at(10), at(0))
	mustPut(t, s, k, "cccc", at(100), at(0))
	held := s.Get(k, at(1), nil)
	want := []string{"aaaa", "bbbb", "cccc"}
	if g := datas(held); len(g) != 3 {
		t.Fatalf("Get = %q, want %q", g, want)
	}
	// Everything that could tempt a store to reuse memory: refreshes, new
	// values of the same length, a sweep freeing "bbbb", a re-put after
	// expiry, and traffic on other keys.
	mustPut(t, s, k, "aaaa", at(200), at(2))
	mustPut(t, s, k, "dddd", at(100), at(2))
	if n := s.Sweep(at(10)); n != 1 {
		t.Fatalf("Sweep = %d, want 1", n)
	}
	mustPut(t, s, k, "eeee", at(100), at(10))
	mustPut(t, s, k, "bbbb", at(100), at(10))
	for i := range 30 {
		mustPut(t, s, key(2+i%6), fmt.Sprintf("%04d", i), at(100), at(10))
	}
	s.Sweep(at(100))
	for i, v := range held {
		if string(v.Data) != want[i] {
			t.Errorf("value %d returned by an earlier Get changed to %q, want %q", i, v.Data, want[i])
		}
	}
}

func testLen(t *testing.T, s store.Store) {
	wantLen(t, s, 0)
	mustPut(t, s, key(1), "a", at(10), at(0))
	mustPut(t, s, key(1), "b", at(20), at(0))
	mustPut(t, s, key(2), "a", at(20), at(0))
	wantLen(t, s, 3)
	mustPut(t, s, key(1), "a", at(30), at(1)) // refresh
	wantLen(t, s, 3)
	_ = s.Put(key(1), []byte("x"), self, at(1), at(1)) // refused
	wantLen(t, s, 3)
	s.Get(key(2), at(25), nil) // reading does not delete
	wantLen(t, s, 3)
	if n := s.Sweep(at(20)); n != 2 {
		t.Fatalf("Sweep = %d, want 2", n)
	}
	wantLen(t, s, 1)
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
	mustPut(t, s, key(1), "a", at(10), at(0))
	mustPut(t, s, key(2), "a", at(50), at(0))
	mustPut(t, s, key(2), "b", at(50), at(0))
	mustPut(t, s, key(3), "a", at(50), at(0))
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
		mustPut(t, s, key(i), "v", at(50), at(0))
	}
	done := make(chan int)
	go func() {
		seen := 0
		s.Keys(func(k id.ID) bool {
			// What republishing does: read the key, store again, maybe sweep.
			if len(s.Get(k, at(1), nil)) == 1 {
				seen++
			}
			if err := s.Put(k, []byte("v"), self, at(60), at(1)); err != nil {
				t.Errorf("Put inside Keys: %v", err)
			}
			s.Sweep(at(1))
			return true
		})
		done <- seen
	}()
	select {
	case seen := <-done:
		if seen != 5 {
			t.Errorf("Get inside Keys found values under %d keys, want 5", seen)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Keys with a callback that uses the store did not return within 10s: deadlock?")
	}
}

func testClose(t *testing.T, s store.Store) {
	mustPut(t, s, key(1), "a", at(10), at(0))
	if err := s.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if err := s.Put(key(2), []byte("b"), self, at(10), at(0)); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Put after Close = %v, want ErrClosed", err)
	}
	// Closed is reported before any other reason.
	big := make([]byte, Limits().MaxValueSize+1)
	if err := s.Put(key(2), big, srcA, at(10), at(0)); !errors.Is(err, store.ErrClosed) {
		t.Errorf("oversized Put after Close = %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close() = %v, want nil", err)
	}
	dst := make([]store.Value, 1, 4)
	if got := s.Get(key(1), at(1), dst); len(got) != 1 {
		t.Errorf("Get after Close appended %d values, want none", len(got)-1)
	}
	s.Keys(func(k id.ID) bool {
		t.Errorf("Keys after Close reported %s", k.Short())
		return true
	})
	// These must not panic; what they return after Close is unspecified.
	s.Sweep(at(100))
	s.NextExpiry()
	s.Len()
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
				err := s.Put(key(k), valueFor(k, r.IntN(10)), src, n.Add(time.Duration(1+r.IntN(100))*time.Millisecond), n)
				if err != nil && !errors.Is(err, store.ErrKeyFull) && !errors.Is(err, store.ErrFull) && !errors.Is(err, store.ErrQuota) {
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
				buf = s.Get(key(k), n, buf[:0])
				if len(buf) > Limits().MaxPerKey {
					t.Errorf("Get returned %d values, above MaxPerKey", len(buf))
				}
				seen := map[string]bool{}
				for _, v := range buf {
					if !bytes.HasPrefix(v.Data, fmt.Appendf(nil, "k%d:", k)) {
						t.Errorf("Get(key %d) returned %q, stored under another key", k, v.Data)
					}
					if seen[string(v.Data)] {
						t.Errorf("Get(key %d) returned %q twice", k, v.Data)
					}
					seen[string(v.Data)] = true
					if !v.Expires.After(n) {
						t.Errorf("Get at %v returned %q expiring at %v", n, v.Data, v.Expires)
					}
				}
				if l := s.Len(); l < 0 || l > Limits().MaxValues {
					t.Errorf("Len() = %d, outside [0, MaxValues]", l)
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
	total := 0
	s.Keys(func(k id.ID) bool {
		total += len(s.Get(k, t0, nil)) // t0 precedes every expiry
		return true
	})
	wantLen(t, s, total)
	s.Sweep(now().Add(time.Hour))
	wantLen(t, s, 0)
}
