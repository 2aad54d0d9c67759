package dht

import (
	"context"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/dhtkit/dht/record"
)

// PutEnvelope stores an envelope signed elsewhere as it is, readable with
// GetMutable; a forged one, or one put at another version than it was
// signed for, fails with ErrInvalid before any node is asked.
func TestPutEnvelopeStoresAPreSignedRecordAndRefusesAForgedOne(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nodes := loopbackNet(t, ctx, 3)
	pub, priv, _ := ed25519.GenerateKey(nil)
	key, publisher, data, err := record.NewSigned(priv, []byte("s"), 7, []byte("signed elsewhere"))
	if err != nil {
		t.Fatal(err)
	}
	forged := append([]byte(nil), data...)
	forged[len(forged)-1] ^= 1
	for name, tc := range map[string]struct {
		data    []byte
		version uint64
	}{"forged": {forged, 7}, "other version": {data, 8}} {
		r, err := nodes[0].PutEnvelope(ctx, key, tc.version, tc.data)
		var re *record.Error
		if !errors.Is(err, ErrInvalid) || !errors.As(err, &re) || re.Field != "signature" || len(r.Receipts) != 0 {
			t.Errorf("%s: %v (%d receipts), want ErrInvalid naming the signature, nothing sent", name, err, len(r.Receipts))
		}
	}
	if _, err := nodes[0].PutEnvelope(ctx, key, 7, data, WithVersion(7)); err == nil {
		t.Error("WithVersion was taken")
	}
	r, err := nodes[0].PutEnvelope(ctx, key, 7, data)
	if err != nil || r.Publisher != publisher || r.Version != 7 || r.Stored != 3 {
		t.Fatalf("put: %+v %v", r, err)
	}
	got, err := nodes[2].GetMutable(ctx, pub, []byte("s"))
	if err != nil || string(got.Value) != "signed elsewhere" || got.Seq != 7 {
		t.Errorf("GetMutable: %+v %v", got, err)
	}
}
