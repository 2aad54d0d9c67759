package node

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dhtkit/dht"
	"github.com/dhtkit/dht/api"
)

// quantile returns the q-quantile of ds (sorted in place).
func quantile(ds []time.Duration, q float64) time.Duration {
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(q*float64(len(ds))))]
}

// BenchmarkGetLibraryVsHTTP measures what the HTTP API adds to a get: the
// same get of a stored key through dht.Node.Get and through GET
// /api/v1/values on 127.0.0.1, alternating in one run, with p50 and p99 of
// each. Ten nodes on loopback UDP; the key is held by the K closest, which
// the asked node is not necessarily among, so most gets are a real lookup.
// Best case: an idle machine, a small value.
func BenchmarkGetLibraryVsHTTP(b *testing.B) {
	ns := udpNodes(b, 10)
	ctx := context.Background()
	key := dht.Key("benchmarked")
	if _, err := ns[3].Put(ctx, key, []byte("203.0.113.7:4000")); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(api.New(NewBackend(ns[7], BackendOptions{}), api.Options{Token: "t"}))
	defer srv.Close()
	url := srv.URL + "/api/v1/values?key=benchmarked"
	hc := srv.Client()
	var lib, web []time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if _, err := ns[7].Get(ctx, key); err != nil {
			b.Fatal(err)
		}
		lib = append(lib, time.Since(t0))
		t0 = time.Now()
		resp, err := hc.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("GET: %s", resp.Status)
		}
		web = append(web, time.Since(t0))
	}
	b.StopTimer()
	b.ReportMetric(float64(quantile(lib, 0.5).Microseconds()), "lib-p50-µs")
	b.ReportMetric(float64(quantile(lib, 0.99).Microseconds()), "lib-p99-µs")
	b.ReportMetric(float64(quantile(web, 0.5).Microseconds()), "http-p50-µs")
	b.ReportMetric(float64(quantile(web, 0.99).Microseconds()), "http-p99-µs")
}

// BenchmarkSSESubscribers opens 1,000 event streams on one key through the
// HTTP API of one node, then puts a value from another node and waits for
// it to reach every stream: the heap each subscriber costs (server and
// client ends together, both in this process) and the delay from the put's
// return to the last subscriber's event. b.N counts rounds of one put.
func BenchmarkSSESubscribers(b *testing.B) {
	const subscribers = 1000
	ns := udpNodes(b, 5)
	srv := httptest.NewServer(api.New(NewBackend(ns[1], BackendOptions{}), api.Options{Token: "t"}))
	defer srv.Close()
	tr := &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: subscribers}
	hc := &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan string, subscribers*4)
	var open sync.WaitGroup
	for range subscribers {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/v1/values/events?key=sse", nil)
		resp, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("subscribe: %s", resp.Status)
		}
		open.Add(1)
		go func() {
			defer open.Done()
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if line, ok := strings.CutPrefix(sc.Text(), "data: "); ok && strings.Contains(line, `"kind"`) {
					got <- line
				}
			}
		}()
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	perSub := float64(after.HeapInuse-before.HeapInuse) / subscribers / 1024
	var delays []time.Duration
	b.ResetTimer()
	for i := range b.N {
		if _, err := ns[3].Put(context.Background(), dht.Key("sse"), []byte(fmt.Sprint("value ", i))); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		want := fmt.Sprint("value ", i)
		for n := 0; n < subscribers; {
			select {
			case line := <-got:
				if strings.Contains(line, `"text":"`+want+`"`) {
					n++
				}
			case <-time.After(30 * time.Second):
				b.Fatalf("round %d: %d of %d subscribers had the event after 30s", i, n, subscribers)
			}
		}
		delays = append(delays, time.Since(t0))
	}
	b.StopTimer()
	b.ReportMetric(float64(quantile(delays, 0.5).Microseconds())/1000, "ms-to-last")
	b.ReportMetric(perSub, "KiB/subscriber") // after ResetTimer, which drops metrics
	b.ReportMetric(float64(runtime.NumGoroutine()), "goroutines")
	cancel()
	open.Wait()
}
