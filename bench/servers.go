package bench

import (
	"context"
	"crypto/ed25519"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/dhtkit/dht"
	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/record"
	"github.com/dhtkit/dht/store"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/transport/udp"
	"github.com/dhtkit/dht/wire"
)

// makeKeys returns n keys and a distinct value of size bytes for each, the
// same for the same seed. A value starts with its index, so no two are equal
// even when size is small.
func makeKeys(prefix string, seed uint64, n, size int) ([]id.ID, [][]byte) {
	keys := make([]id.ID, n)
	values := make([][]byte, n)
	r := rand.New(rand.NewPCG(seed, 0x76616c756573))
	for i := range n {
		keys[i] = id.Key(fmt.Sprintf("%s-%d-%d", prefix, seed, i))
		v := make([]byte, size)
		for j := range v {
			v[j] = byte(r.Uint32())
		}
		for j := 0; j < 4 && j < size; j++ {
			v[j] = byte(i >> (8 * j))
		}
		values[i] = v
	}
	return keys, values
}

// valuesLen is the size of the VALUES message a node answers a FIND_VALUE
// with when it holds exactly one value of size bytes.
func valuesLen(size int) int {
	m := wire.Message{Type: wire.Values, Values: []wire.Value{{TTL: 1, Data: make([]byte, size)}}}
	b, err := m.Append(nil)
	if err != nil {
		panic("bench: a one-value VALUES message does not encode: " + err.Error())
	}
	return len(b)
}

// withLabel runs f with the pprof label role=label, which the goroutines f
// starts inherit: `go tool pprof -tagfocus role=node` then shows the node's
// share of a profile of the whole run.
func withLabel(label string, f func()) {
	pprof.Do(context.Background(), pprof.Labels("role", label), func(context.Context) { f() })
}

// plainRecords are values as a legacy STORE makes them: anonymous plain
// records, the publisher the value's hash.
func plainRecords(values [][]byte) []store.Value {
	recs := make([]store.Value, len(values))
	for i, v := range values {
		recs[i] = store.Value{Publisher: sha1.Sum(v), Data: v}
	}
	return recs
}

// signedRecords signs values[i] as the signed record (sequence 1) of one
// key pair drawn from seed and the salt i (8 bytes, so that every envelope
// has one size), and returns the records' keys, SHA-1(public key || salt),
// and the records as a storing node keeps them.
func signedRecords(seed uint64, values [][]byte) ([]id.ID, []store.Value) {
	var s [ed25519.SeedSize]byte
	binary.BigEndian.PutUint64(s[:], seed)
	copy(s[8:], "dht bench serve signed")
	priv := ed25519.NewKeyFromSeed(s[:])
	keys := make([]id.ID, len(values))
	recs := make([]store.Value, len(values))
	for i, v := range values {
		salt := binary.BigEndian.AppendUint64(nil, uint64(i))
		key, pub, data, err := record.NewSigned(priv, salt, 1, v)
		if err != nil {
			panic("bench: signing a record: " + err.Error()) // sizes are validated
		}
		keys[i], recs[i] = key, store.Value{Publisher: pub, Version: 1, Envelope: true, Data: data}
	}
	return keys, recs
}

// recordsLen is the size of the RECORDS message a node answers a GET with
// when it holds exactly the record r.
func recordsLen(r *store.Value) int {
	m := wire.Message{Type: wire.Records, Records: []wire.Record{{Publisher: r.Publisher, Version: r.Version, TTL: 1, Envelope: r.Envelope, Size: uint32(len(r.Data)), Data: r.Data}}}
	b, err := m.Append(nil)
	if err != nil {
		panic("bench: a one-record RECORDS message does not encode: " + err.Error())
	}
	return len(b)
}

// startServeNode starts a node on 127.0.0.1 whose store holds recs[i]
// under keys[i], stored directly: the benchmark measures serving, and a
// store filled before the node starts gives exactly one value per key with
// no network traffic to wait for. Signed records go in unchecked: a node
// checks a record once, when it stores it, and what is measured here is
// what it does on each read.
func startServeNode(keys []id.ID, recs []store.Value, sockets int, seed uint64) (*dht.Node, error) {
	maxSize := 0
	for i := range recs {
		maxSize = max(maxSize, len(recs[i].Data))
	}
	st := store.NewMemory(store.Limits{MaxValues: max(len(keys), store.DefaultMaxValues), MaxValueSize: max(wire.MaxValueSize, maxSize)})
	now := time.Now()
	for i := range keys {
		v := recs[i]
		v.Expires = now.Add(24 * time.Hour)
		if err := st.Put(keys[i], v, netip.Addr{}, now); err != nil {
			return nil, fmt.Errorf("bench: filling the node's store: %w", err)
		}
	}
	cfg := dht.DefaultConfig()
	cfg.Listen = []string{"127.0.0.1:0"}
	cfg.Sockets = sockets
	cfg.Store = st
	cfg.Rand = rand.New(rand.NewPCG(seed, 0x6e6f6465))
	var n *dht.Node
	var err error
	withLabel("node", func() { n, err = dht.New(cfg) })
	if err != nil {
		return nil, fmt.Errorf("bench: starting the node: %w", err)
	}
	return n, nil
}

// echoHandler answers every datagram with the datagram itself, padded with
// zeros (or cut) to size bytes: the least a server can do to answer with a
// datagram of the node's answer's size.
type echoHandler struct {
	size int
	bufs sync.Pool // *[]byte of size bytes
}

func newEchoHandler(size int) *echoHandler {
	e := &echoHandler{size: size}
	e.bufs.New = func() any {
		b := make([]byte, size)
		return &b
	}
	return e
}

// HandlePacket implements transport.Handler.
func (e *echoHandler) HandlePacket(data []byte, from netip.AddrPort, w transport.Writer) {
	bp := e.bufs.Get().(*[]byte)
	b := *bp
	// The padding is zeros until a request longer than the load
	// generator's arrives; its content is not checked either way.
	copy(b, data)
	w.WriteTo(b, from)
	e.bufs.Put(bp)
}

// startEcho starts an echo server on the udp transport, with sockets
// sockets and the default batch, as dht.New opens the node's.
func startEcho(sockets, size int) (*udp.Transport, error) {
	tr, err := udp.Listen(udp.Config{Addr: "127.0.0.1:0", Sockets: sockets})
	if err != nil {
		return nil, fmt.Errorf("bench: starting the echo server: %w", err)
	}
	withLabel("echo", func() { err = tr.Start(newEchoHandler(size)) })
	if err != nil {
		tr.Close()
		return nil, fmt.Errorf("bench: starting the echo server: %w", err)
	}
	return tr, nil
}

// naiveEcho is the textbook echo server: one net.UDPConn, one goroutine,
// one datagram per system call each way. It is measured for reference only.
type naiveEcho struct {
	conn *net.UDPConn
	done chan struct{}
}

func startNaiveEcho(size int) (*naiveEcho, error) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, fmt.Errorf("bench: starting the naive echo server: %w", err)
	}
	e := &naiveEcho{conn: conn, done: make(chan struct{})}
	withLabel("naive-echo", func() { go e.serve(size) })
	return e, nil
}

func (e *naiveEcho) serve(size int) {
	defer close(e.done)
	in := make([]byte, transport.MaxDatagram+1)
	out := make([]byte, size)
	for {
		n, from, err := e.conn.ReadFromUDPAddrPort(in)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		copy(out, in[:n])
		_, _ = e.conn.WriteToUDPAddrPort(out, from)
	}
}

func (e *naiveEcho) addr() netip.AddrPort {
	a := e.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

func (e *naiveEcho) close() {
	e.conn.Close()
	<-e.done
}
