// Package bench holds Junction's end-to-end load scenarios and their
// baselines: the real broker driven over loopback by load generators, next
// to RabbitMQ and Mosquitto run on the same machine in the same run, with
// results reported as ratios and the machine described beside them.
// Micro-benchmarks live beside the code they measure, not here, except the
// in-process router and store benchmarks in this package.
//
// It is its own module so load tools and client libraries stay out of the
// broker's go.mod:
//
//   - load: the scenarios and the load generator (one goroutine per
//     connection, reused buffers, a send timestamp in every payload);
//   - proc: CPU time, memory and open files of a process tree, from /proc;
//   - broker: starting and stopping Junction, RabbitMQ and Mosquitto, each
//     from a fresh data directory on its own ports;
//   - report: medians, the Markdown report and the PNG charts;
//   - cmd/loadgen: one scenario, one run, one broker;
//   - cmd/compare: the whole comparison (`make bench-compare`), written to
//     results/;
//   - cmd/soak: a long mixed load on one Junction, sampling its memory,
//     goroutines and open files (`make soak`), written to results/.
package bench
