#!/usr/bin/env bash
# Reproduces every figure of docs/BENCHMARKS.md, one measurement at a time
# (they share the machine's cores, so nothing else should run meanwhile).
# Usage: bash docs/measure.sh OUTDIR    (about 70 minutes on 2 cores)
#        LONG=1 bash docs/measure.sh OUTDIR adds the idle run over a whole
#        refresh interval (another 92 minutes).
set -u
out=${1:?usage: docs/measure.sh OUTDIR}
mkdir -p "$out/plots"
cd "$(dirname "$0")/.."
go build -o "$out/dht" ./cmd/dht
D="$out/dht"
{ nproc; grep -m1 "model name" /proc/cpuinfo; free -g | head -2; uname -r; go version; git rev-parse --short HEAD; } > "$out/machine.txt"

# Go benchmarks: the codec, the routing table, the node's own work per request.
go test -run '^$' -bench 'Encode|Decode' -benchmem -count 6 ./wire > "$out/micro-wire.txt" 2>&1
go test -run '^$' -bench 'Closest20$|SeenExisting|SeenNew' -benchmem -count 6 ./routing > "$out/micro-routing.txt" 2>&1
go test -run '^$' -bench 'HandleRequest|HandleBatch' -benchmem -count 6 ./internal/core > "$out/micro-core.txt" 2>&1
go test -run '^$' -bench 'Benchmark(Get|Put)$' -benchmem -count 6 ./internal/core > "$out/micro-ops.txt" 2>&1
go test -run '^$' -bench 'ServeFindValue|Echo' -benchtime 200000x -count 6 ./bench > "$out/micro-bench.txt" 2>&1

# Real UDP on loopback.
# The best case (4 senders, every request on the routing table's fast path)
# and the realistic one (4096 senders, each its own ID and address), in turn.
for i in 1 2 3; do
	"$D" bench serve > "$out/serve$i.txt" 2>&1
	"$D" bench serve --senders 4096 > "$out/serve-senders$i.txt" 2>&1
done
for i in 1 2 3; do "$D" bench cluster > "$out/cluster$i.txt" 2>&1; done
"$D" bench idle --nodes 10000 > "$out/idle1.txt" 2>&1
# Maintenance brought into the window: a 5-minute refresh interval, three intervals.
"$D" bench idle --nodes 10000 --refresh-interval 5m --idle 15m > "$out/idle-refresh.txt" 2>&1
if [ "${LONG:-0}" = 1 ]; then
	"$D" bench idle --nodes 10000 --idle 90m > "$out/idle-90m.txt" 2>&1
fi
# Storage and the node service (issues 8 and 9): puts into one node with its
# values in memory and in bbolt, in the same run; the store on its own
# (bytes on disk, reopen with 100,000 records); the cluster with every node on
# bbolt; what the HTTP API adds to a get; 1,000 SSE subscribers.
go test -run '^$' -bench 'BenchmarkNodePuts' -benchtime 20000x -count 5 . > "$out/node-puts.txt" 2>&1
go test -run '^$' -bench . -count 3 ./store/bolt > "$out/bolt.txt" 2>&1
for i in 1 2 3; do
	"$D" bench cluster --nodes 50 --ops 5000 --concurrency 512 > "$out/cluster-mem$i.txt" 2>&1
	rm -rf "$out/bolt-data"
	"$D" bench cluster --nodes 50 --ops 5000 --concurrency 512 --data "$out/bolt-data" > "$out/cluster-bolt$i.txt" 2>&1
done
go test -run '^$' -bench 'BenchmarkGetLibraryVsHTTP' -benchtime 2000x -count 5 ./node > "$out/api-get.txt" 2>&1
go test -run '^$' -bench 'BenchmarkSSESubscribers' -benchtime 100x -count 3 ./node > "$out/api-sse.txt" 2>&1
# Where the CPU goes, for the targets not reached.
"$D" bench cluster --cpuprofile "$out/cluster.prof" > "$out/cluster-prof.txt" 2>&1
go tool pprof -top "$D" "$out/cluster.prof" > "$out/cluster-top.txt" 2>&1
"$D" bench serve --cpuprofile "$out/serve.prof" > "$out/serve-prof.txt" 2>&1
go tool pprof -top -tagfocus=role=node "$D" "$out/serve.prof" > "$out/serve-top-node.txt" 2>&1
go tool pprof -top -tagfocus=role=echo "$D" "$out/serve.prof" > "$out/serve-top-echo.txt" 2>&1

# The simulator.
for s in small 10k longtail loss partition churn; do
	/usr/bin/time -v "$D" sim --scenario "sim/testdata/$s.json" --json --plot "$out/plots" --progress none > "$out/sim-$s.json" 2> "$out/sim-$s.err"
done
/usr/bin/time -v "$D" sim --scenario sim/testdata/100k.json --json --plot "$out/plots" --progress lines > "$out/sim-100k.json" 2> "$out/sim-100k.err"
/usr/bin/time -v "$D" sim --nodes 100000 --progress lines > "$out/sim-nodes100000.txt" 2> "$out/sim-nodes100000.err"
"$D" sim --compare "$out/sim-small.json,$out/sim-10k.json,$out/sim-100k.json" --name sizes --plot "$out/plots" > "$out/compare-sizes.txt" 2>&1
"$D" sim --compare "$out/sim-10k.json,$out/sim-longtail.json,$out/sim-loss.json" --name models --plot "$out/plots" > "$out/compare-models.txt" 2>&1
echo "done: $out"
