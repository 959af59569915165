// Command loadgen runs one load scenario once against one broker and prints
// what it measured, as JSON (for bench-compare) or as text:
//
//	loadgen -scenario amqp-1to1 -amqp amqp://guest:guest@127.0.0.1:5672/ -duration 10s
//	loadgen -list
//
// -pids names the broker's processes (their trees are measured) for its CPU
// time and peak memory; an idle-connections scenario (mqtt-idle) needs it,
// for the broker's memory per connection, and raises this process's
// open-files limit for its connections. The exit status is 1 when the run
// failed, lost an acknowledged message included.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/junction-broker/junction/bench/load"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	var (
		name   = fs.String("scenario", "amqp-1to1", "scenario to run (see -list)")
		list   = fs.Bool("list", false, "list the scenarios and exit")
		broker = fs.String("broker", "junction", "broker name, for the report")
		amqpU  = fs.String("amqp", "amqp://guest:guest@127.0.0.1:5672/", "AMQP URL")
		mqttA  = fs.String("mqtt", "127.0.0.1:1883", "MQTT host:port")
		stompA = fs.String("stomp", "127.0.0.1:61613", "STOMP host:port")
		pids   = fs.String("pids", "", "comma-separated broker PIDs whose process trees are measured")
		dur    = fs.Duration("duration", 10*time.Second, "how long producers publish")
		drain  = fs.Duration("drain", 30*time.Second, "longest wait for deliveries after producers stop")
		conns  = fs.Int("conns", 0, "idle scenarios: connections to open (default the scenario's)")
		settle = fs.Duration("settle", 60*time.Second, "idle scenarios: longest wait for the broker's memory to settle")
		asJSON = fs.Bool("json", false, "print the result as JSON")
	)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *list {
		for _, s := range load.Scenarios {
			fmt.Printf("%-18s %s\n", s.Name, s.Title)
		}
		return 0
	}
	sc, ok := load.Lookup(*name)
	if !ok {
		fmt.Fprintf(os.Stderr, "loadgen: unknown scenario %q (try -list)\n", *name)
		return 2
	}
	t := load.Target{Broker: *broker, AMQP: *amqpU, MQTT: *mqttA, STOMP: *stompA}
	for p := range strings.SplitSeq(*pids, ",") {
		if p == "" {
			continue
		}
		n, err := strconv.Atoi(p)
		if err != nil {
			fmt.Fprintf(os.Stderr, "loadgen: -pids: %v\n", err)
			return 2
		}
		t.PIDs = append(t.PIDs, n)
	}
	res, err := load.Run(ctx, sc, t, load.Options{Duration: *dur, Drain: *drain, Conns: *conns, Settle: *settle})
	if err != nil {
		res.Error = err.Error()
	}
	switch {
	case *asJSON:
		_ = json.NewEncoder(os.Stdout).Encode(res)
	case sc.Idle():
		fmt.Printf("%s on %s: %d connections in %.1f s, %.2f KiB each (RSS %.1f → %.1f MiB, settled: %v after %.1f s); broker CPU %.2f s, peak RSS %.1f MiB; loadgen CPU %.2f s\n",
			res.Scenario, res.Broker, res.Conns, res.ConnectSeconds, res.BytesPerConn/1024,
			float64(res.RSSBefore)/(1<<20), float64(res.RSSAfter)/(1<<20), !res.Unsettled, res.SettleSeconds,
			res.BrokerCPU, float64(res.BrokerPeakRSS)/(1<<20), res.LoadgenCPU)
	default:
		fmt.Printf("%s on %s: %.0f msg/s, %.2f MB/s, p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms; sent %d, received %d, lost %d, dup %d; broker CPU %.2f s, peak RSS %.1f MiB; loadgen CPU %.2f s\n",
			res.Scenario, res.Broker, res.MsgPerSec, res.MBPerSec, res.P50, res.P99, res.P999,
			res.Sent, res.Received, res.Lost, res.Duplicates, res.BrokerCPU, float64(res.BrokerPeakRSS)/(1<<20), res.LoadgenCPU)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: %s on %s: %v\n", sc.Name, *broker, err)
		return 1
	}
	return 0
}
