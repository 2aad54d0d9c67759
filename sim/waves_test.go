package sim

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dht/internal/core"
)

// The network replaced a share at a time, faster than one replication
// interval: with replication (hand-over to the newcomers, re-replication
// after departures) every key is found after every wave; without it, keys
// go with their last replica, and the report says so.
func TestWavesKeepEveryKeyOnlyWithReplication(t *testing.T) {
	sc := Scenario{Nodes: 300, K: 8, Keys: 100, Lookups: 100, ProbeKeys: 100, Seed: 3,
		Waves: &Waves{Count: 9, Share: 0.1, Every: Duration(6 * time.Minute)}}
	if raceEnabled {
		sc.Nodes, sc.Keys, sc.ProbeKeys, sc.Lookups = 120, 40, 40, 40
	}
	with := run(t, sc)
	w := with.Waves
	if w == nil || len(w.Probes) != sc.Waves.Count {
		t.Fatalf("waves report %+v: want %d probes", w, sc.Waves.Count)
	}
	last := w.Probes[len(w.Probes)-1]
	if want := sc.Nodes - sc.Waves.Count*w.Replaced; last.Original != want {
		t.Errorf("after the last wave %d original nodes are live, want %d", last.Original, want)
	}
	for _, p := range w.Probes {
		// A key lost is one no live node holds; a key held but not found
		// is a lookup that asked only departed nodes (the asker's stale
		// table), which the report tells apart.
		if p.LostNoReplica != 0 || p.LostHeld != p.Unanswered {
			t.Errorf("with replication, after wave %d %d of %d keys were found: %+v", p.Wave, p.Found, p.Keys, p)
		}
	}
	if with.Replication.Newcomers == 0 || with.Replication.Transfers == 0 {
		t.Errorf("no hand-over happened: %+v", with.Replication)
	}
	sc.ReplicateInterval = Duration(-time.Second)
	without := run(t, sc)
	lastOff := without.Waves.Probes[len(without.Waves.Probes)-1]
	// The control: the same waves without replication thin the keys out
	// (at this size the probes' own path-cache copies and lookups that
	// reach past departed holders still find most or all of them, so
	// keys found would prove nothing): replicas fall under K on average, and
	// some key is left with fewer than any key has with replication.
	if lastOff.Replicas.Mean >= float64(sc.K) || lastOff.Replicas.Min >= last.Replicas.Min {
		t.Errorf("without replication the last probe found replicas %+v per key (with it %+v): the waves thinned nothing", lastOff.Replicas, last.Replicas)
	}
	if last.Replicas.Min < float64(sc.K) {
		t.Errorf("with replication some key was down to %v replicas after the last wave, want at least K = %d", last.Replicas.Min, sc.K)
	}
	if without.Replication.Offers != 0 {
		t.Errorf("replication off, yet %d OFFERs", without.Replication.Offers)
	}
	t.Logf("last wave: %.3f found with replication, %.3f without (%d keys with no replica); replicas per key %.2f (min %v) with, %.2f (min %v) without",
		last.Share, lastOff.Share, lastOff.LostNoReplica, last.Replicas.Mean, last.Replicas.Min, lastOff.Replicas.Mean, lastOff.Replicas.Min)
}

// An idle network whose records sit on their keys' K closest exchanges
// digests, not values: its maintenance sends no record, and the report's
// figures per value and hour are its datagrams and bytes over the values
// held and the hours.
func TestIdlePhaseMeasuresMaintenance(t *testing.T) {
	sc := Scenario{Nodes: 60, K: 8, Keys: 500, Lookups: 10, Seed: 4, Preload: true, Idle: Duration(2 * time.Hour)}
	if raceEnabled {
		sc.Nodes, sc.Keys = 30, 100
	}
	r := run(t, sc)
	m := r.Maintenance
	if m == nil || m.Values != sc.Keys*sc.K {
		t.Fatalf("maintenance report %+v: want %d values held", m, sc.Keys*sc.K)
	}
	if m.Datagrams == 0 || m.Bytes < 36*m.Datagrams || m.Replication.Offers == 0 || m.Replication.Passes == 0 {
		t.Fatalf("an idle hour did no maintenance: %+v", m)
	}
	if m.Replication.Transfers != 0 {
		t.Errorf("records on their K closest, yet replication sent %d of them", m.Replication.Transfers)
	}
	if want := float64(m.Datagrams) / float64(m.Values) / 2; m.DatagramsPerValueHour != want {
		t.Errorf("datagrams per value and hour %v, want %v", m.DatagramsPerValueHour, want)
	}
	if !strings.Contains(textOf(t, r), "per value and hour") {
		t.Error("the text report does not give the maintenance figures")
	}
}

func textOf(t *testing.T, r *Report) string {
	t.Helper()
	var b strings.Builder
	if err := r.WriteText(&b, false); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// combineRepl adds and subtracts every field of the counters.
func TestCombineReplCoversEveryField(t *testing.T) {
	var a core.ReplicationStats
	v := reflect.ValueOf(&a).Elem()
	for i := range v.NumField() {
		v.Field(i).SetUint(uint64(i + 1))
	}
	sum := reflect.ValueOf(combineRepl(a, a, 1))
	diff := reflect.ValueOf(subRepl(a, a))
	for i := range v.NumField() {
		if sum.Field(i).Uint() != 2*uint64(i+1) || diff.Field(i).Uint() != 0 {
			t.Errorf("combineRepl leaves out %s", v.Type().Field(i).Name)
		}
	}
}

func TestWavesAndIdleOptionsAreChecked(t *testing.T) {
	for _, c := range []struct {
		sc   Scenario
		name string
	}{
		{Scenario{Waves: &Waves{Count: 0, Share: 0.1}}, "waves.count"},
		{Scenario{Waves: &Waves{Count: 3, Share: 1.5}}, "waves.share"},
		{Scenario{Waves: &Waves{Count: 3, Share: 0.1, Every: Duration(time.Second)}}, "waves.every"},
		{Scenario{Idle: Duration(-time.Second)}, "idle"},
		{Scenario{ReplicateInterval: Duration(time.Millisecond)}, "replicate_interval"},
	} {
		err := c.sc.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), c.name+" = ") {
			t.Errorf("%+v: %v, want an error naming %s", c.sc, err, c.name)
		}
	}
}

// The churn that loses a third of the keys without replication
// (TestChurnLosesKeysAndKeepsReporting, 10% of the nodes a minute with
// K = 8) loses none with it: hand-over to the nodes that join and
// re-replication after those that leave keep every key on its closest
// nodes. A probe may miss a key or two (a lookup from a node whose table
// holds only departed nodes near the key), never more than 1%, and the
// last probe finds them all.
func TestChurnWithReplicationLosesNothing(t *testing.T) {
	sc := Scenario{Nodes: 400, K: 8, Keys: 200, Lookups: 200, Seed: 5, ProbeKeys: 200, ProbeEvery: Duration(2 * time.Minute),
		Churn: &Churn{Leave: 0.1, Join: 0.1, For: Duration(20 * time.Minute)}}
	if raceEnabled {
		sc.Nodes, sc.Keys, sc.ProbeKeys = 80, 40, 40
	}
	r := run(t, sc)
	miss := max(1, sc.ProbeKeys/100) // a key or two, 1%: one at the race detector's 40 keys
	for _, p := range r.Churn.Probes {
		if p.Keys-p.Found > miss {
			t.Errorf("at %v, %d of %d keys found", p.At, p.Found, p.Keys)
		}
	}
	if last := r.Churn.Probes[len(r.Churn.Probes)-1]; last.Share != 1 {
		t.Errorf("at the end %d of %d keys found, want all", last.Found, last.Keys)
	}
}
