package main

import (
	"io"
	"slices"
	"testing"
	"time"

	"github.com/junction-broker/junction/bench/load"
)

func TestParse(t *testing.T) {
	c, err := parse(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, sc := range c.scenarios {
		names = append(names, sc.Name)
	}
	if !slices.Equal(names, defaultScenarios) || c.duration != 30*time.Minute || c.interval != time.Minute || c.runFor != 20*time.Second {
		t.Fatalf("defaults: scenarios %v, duration %v, interval %v, run %v", names, c.duration, c.interval, c.runFor)
	}
	c, err = parse([]string{"-duration", "3m", "-interval", "30s", "-scenarios", "amqp-1to1, x-stomp-mqtt", "-amqp-port", "5999"}, io.Discard)
	if err != nil || c.duration != 3*time.Minute || c.interval != 30*time.Second || len(c.scenarios) != 2 || c.ports.AMQP != 5999 {
		t.Fatalf("parse = %+v, %v", c, err)
	}
	for _, args := range [][]string{
		{"-scenarios", "nope"},
		{"-scenarios", "mqtt-idle"}, // not a message flow
		{"-scenarios", ","},
		{"-interval", "0s"},
		{"-duration", "-1m"},
		{"stray"},
		{"-bogus"},
	} {
		if _, err := parse(args, io.Discard); err == nil {
			t.Errorf("parse(%q): no error", args)
		}
	}
}

// TestDefaultScenariosCoverTheMix: every protocol, persistent and
// transient, every MQTT QoS, and the three cross-protocol flows.
func TestDefaultScenariosCoverTheMix(t *testing.T) {
	var persistent, transient, cross int
	qos := map[byte]bool{}
	protos := map[load.Protocol]bool{}
	for _, name := range defaultScenarios {
		sc, ok := load.Lookup(name)
		if !ok {
			t.Fatalf("unknown scenario %s", name)
		}
		protos[sc.Proto], protos[sc.ConsumerProto()] = true, true
		if sc.Persistent || sc.PersistentSession {
			persistent++
		} else {
			transient++
		}
		if sc.Proto == load.MQTT {
			qos[sc.QoS] = true
		}
		if sc.Cross() {
			cross++
		}
	}
	if len(protos) != 3 || persistent == 0 || transient == 0 || len(qos) != 3 || cross != 3 {
		t.Fatalf("mix: protocols %v, persistent %d, transient %d, MQTT QoS %v, cross-protocol %d", protos, persistent, transient, qos, cross)
	}
}

func TestFDSlack(t *testing.T) {
	var scs []load.Scenario
	for _, name := range defaultScenarios {
		sc, _ := load.Lookup(name)
		scs = append(scs, sc)
	}
	// mqtt-fanout-qos0: 1 publisher, 16 subscribers, and one more.
	if got := fdSlack(scs); got != 18 {
		t.Fatalf("fdSlack = %d, want 18", got)
	}
}
