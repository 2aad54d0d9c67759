package routing

import (
	"slices"

	"github.com/dhtkit/dht/id"
)

// Closest appends to dst up to n bucket contacts (never replacement-cache
// ones), closest to target first by XOR distance, and returns the extended
// slice. It does not allocate when dst has room for the result.
//
// Each bucket is a subtree of the keyspace, so its contacts occupy one
// contiguous range of distances from any target, and the order of those
// ranges follows from the bits where target differs from the own ID. Closest
// visits buckets in that order and sorts only the buckets it takes from,
// stopping as soon as it has n contacts.
func (t *Table) Closest(target id.ID, n int, dst []id.Contact) []id.Contact {
	return t.closest(target, n, dst, false)
}

// ClosestResponsive is Closest without the contacts whose last request
// failed (Failures > 0). A node hands these out, and seeds its own lookups
// with them, so that a contact it has found unreachable costs nobody else a
// timeout while the table waits to evict it.
func (t *Table) ClosestResponsive(target id.ID, n int, dst []id.Contact) []id.Contact {
	return t.closest(target, n, dst, true)
}

func (t *Table) closest(target id.ID, n int, dst []id.Contact, live bool) []id.Contact {
	if n <= 0 || t.n == 0 {
		return dst
	}
	tk := load(target)
	last := len(t.buckets) - 1
	tc := cpl(t.self, tk)
	need := n
	if tc >= last {
		// target falls in the last bucket: it is nearest, then every bucket
		// i differs from target first at bit i, so deeper is nearer.
		for i := last; i >= 0 && need > 0; i-- {
			dst, need = t.take(&t.buckets[i], tk, need, dst, live)
		}
		return dst
	}
	// target falls in bucket tc: it is nearest. Every deeper bucket
	// (including the last) differs from target first at bit tc, so they
	// come next; among them, bucket i is nearer than all deeper ones exactly
	// when target and self differ at bit i. Shallower buckets come last,
	// deepest first.
	d := t.self.xor(tk)
	dst, need = t.take(&t.buckets[tc], tk, need, dst, live)
	for i := tc + 1; i < last && need > 0; i++ {
		if d.bit(i) == 1 {
			dst, need = t.take(&t.buckets[i], tk, need, dst, live)
		}
	}
	if need > 0 {
		dst, need = t.take(&t.buckets[last], tk, need, dst, live)
	}
	for i := last - 1; i > tc && need > 0; i-- {
		if d.bit(i) == 0 {
			dst, need = t.take(&t.buckets[i], tk, need, dst, live)
		}
	}
	for i := tc - 1; i >= 0 && need > 0; i-- {
		dst, need = t.take(&t.buckets[i], tk, need, dst, live)
	}
	return dst
}

// take appends the up to need contacts of b nearest to tk, nearest first,
// leaving out failing ones when live is set, and returns dst and how many
// are still needed. It keeps a sorted selection of entry indexes on the
// stack (insertion into a bounded list: buckets are small).
func (t *Table) take(b *bucket, tk key, need int, dst []id.Contact, live bool) ([]id.Contact, int) {
	es := b.entries
	if len(es) == 0 {
		return dst, need
	}
	var sel [MaxK]uint8
	lim := min(need, len(es))
	m := 0
	for j := range es {
		e := &es[j]
		if live && e.failures > 0 {
			continue
		}
		if m == lim {
			if !closer(tk, e, &es[sel[m-1]]) {
				continue
			}
			m-- // e displaces the farthest selected
		}
		p := m
		for p > 0 && closer(tk, e, &es[sel[p-1]]) {
			sel[p] = sel[p-1]
			p--
		}
		sel[p] = uint8(j)
		m++
	}
	base := len(dst)
	dst = slices.Grow(dst, m)[:base+m]
	for i, j := range sel[:m] {
		es[j].fill(&dst[base+i], t.zones)
	}
	return dst, need - m
}
