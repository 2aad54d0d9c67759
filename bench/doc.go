// Package bench measures nodes over real UDP on 127.0.0.1: the benchmarks
// behind `dht bench`.
//
//   - RunServe drives one node with FIND_VALUE requests from a load
//     generator that speaks the wire protocol itself (a closed loop over a
//     few batched sockets, every answer checked), and measures an echo
//     server on the same transport under the same load and packet sizes,
//     alternately, so that the ratio of the two rates isolates the node's
//     own work.
//   - RunCluster starts a network of nodes in this process, joins them, and
//     puts and then gets distinct keys through random nodes.
//   - RunIdle starts many joined nodes and measures start-up time, CPU use
//     while idle and memory per node.
//
// Every run is bounded in time and memory, takes a context whose end stops
// it early (the report then holds what was measured, marked Interrupted),
// and labels its goroutines for CPU profiles (pprof label role: node, echo,
// naive-echo or loadgen). The reports print whether the targets were
// reached; nothing here asserts timing.
//
// The functions are safe to call from several goroutines, though running two
// benchmarks at once makes both measure each other.
package bench
