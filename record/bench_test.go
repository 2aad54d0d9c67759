package record

import (
	"testing"
)

// BenchmarkCheckSigned: a storing node's check of one signed record of 100
// bytes (parse, bindings, ed25519 verification); records/s is per core.
func BenchmarkCheckSigned(b *testing.B) {
	var p Policy
	k, pubID, d := mustSigned(b, priv1, "salt", 42, string(make([]byte, 100)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Check(k, pubID, 42, true, d, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkParse: decoding a signed envelope's structure.
func BenchmarkParse(b *testing.B) {
	_, _, d := mustSigned(b, priv1, "salt", 42, string(make([]byte, 100)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(d); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckTyped: a storing node's check of one typed address record:
// the signed check plus the JSON document's rules.
func BenchmarkCheckTyped(b *testing.B) {
	var p Policy
	ex := examples()["address"]
	k, pubID, d := mustTyped(b, priv1, ex[0], 1, ex[1])
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Check(k, pubID, 1, true, d, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
