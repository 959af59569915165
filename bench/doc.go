// Package bench holds Junction's end-to-end load scenarios and their
// baselines: the real broker driven over loopback by load generators, next
// to RabbitMQ and Mosquitto run on the same machine in the same run, with
// results reported as ratios and the machine described beside them.
// Micro-benchmarks live beside the code they measure, not here.
//
// It is its own module so load tools and client libraries stay out of the
// broker's go.mod. No scenario exists yet.
package bench
