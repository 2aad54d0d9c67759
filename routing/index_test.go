package routing

import (
	"fmt"
	"testing"
)

// indexError checks that the address index holds exactly one slot per entry
// (buckets and caches), each reachable from its home position.
func indexError(tb *Table) error {
	x := &tb.idx
	want := map[uint32]int{}
	total := 0
	for i := range tb.buckets {
		b := &tb.buckets[i]
		for _, s := range [][]entry{b.entries, b.repl} {
			for j := range s {
				tag := x.tag(&s[j])
				if x.find(tag, i) < 0 {
					return fmt.Errorf("index: %v (bucket %d) is not reachable", s[j].contact(tb.zones), i)
				}
				want[tag<<8|uint32(i)]++
				total++
			}
		}
	}
	got := map[uint32]int{}
	used := 0
	for _, s := range x.slots {
		if s != 0 {
			got[s]++
			used++
		}
	}
	if used != x.n || x.n != total {
		return fmt.Errorf("index: %d slots used, n = %d, table holds %d", used, x.n, total)
	}
	for s, c := range want {
		if got[s] != c {
			return fmt.Errorf("index: slot %#x appears %d times, want %d", s, got[s], c)
		}
	}
	if x.n*4 > len(x.slots)*3 {
		return fmt.Errorf("index: %d of %d slots used", x.n, len(x.slots))
	}
	return nil
}

// The index behaves as a multiset of (tag, bucket) under random inserts,
// moves and removals, with tags drawn from a few values so that probe
// sequences collide and wrap around, and deletion's backward shift is
// exercised.
func TestAddrIndexMatchesAMultiset(t *testing.T) {
	for seed := range uint64(200) {
		r := newRand(seed)
		x := newAddrIndex()
		ref := map[uint32]int{}
		var live []uint32
		for step := range 400 {
			switch op := r.IntN(10); {
			case op < 5 || len(live) == 0:
				// Tags whose low bits crowd a few home positions.
				tag := uint32(1+r.IntN(6)) | uint32(r.IntN(3))<<20
				b := r.IntN(3)
				x.insert(tag, b)
				s := tag<<8 | uint32(b)
				ref[s]++
				live = append(live, s)
			case op < 8:
				i := r.IntN(len(live))
				s := live[i]
				x.remove(s>>8, int(s&0xff))
				ref[s]--
				live[i] = live[len(live)-1]
				live = live[:len(live)-1]
			default:
				i := r.IntN(len(live))
				s := live[i]
				to := r.IntN(3)
				x.move(s>>8, int(s&0xff), to)
				ref[s]--
				s = s&^0xff | uint32(to)
				ref[s]++
				live[i] = s
			}
			got := map[uint32]int{}
			for _, s := range x.slots {
				if s != 0 {
					got[s]++
				}
			}
			for s, c := range ref {
				if got[s] != c {
					t.Fatalf("seed %d step %d: slot %#x held %d times, want %d", seed, step, s, got[s], c)
				}
				if c > 0 && x.find(s>>8, int(s&0xff)) < 0 {
					t.Fatalf("seed %d step %d: slot %#x unreachable", seed, step, s)
				}
			}
			if x.n != len(live) {
				t.Fatalf("seed %d step %d: n = %d, want %d", seed, step, x.n, len(live))
			}
		}
	}
}
