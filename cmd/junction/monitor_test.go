package main

import (
	"errors"
	"log/slog"
	"testing"

	"github.com/junction-broker/junction/router"
	"github.com/junction-broker/junction/storage/memstore"
)

func TestMonitorRaisesAndClearsTheDiskAlarm(t *testing.T) {
	rt, err := router.New(router.Config{Store: memstore.New()})
	if err != nil {
		t.Fatal(err)
	}
	free, ferr := uint64(100<<20), error(nil)
	m := &monitor{rt: rt, dir: t.TempDir(), limit: 50 << 20, log: slog.New(slog.DiscardHandler),
		freeSpace: func(string) (uint64, error) { return free, ferr }}
	m.check()
	if rt.Alarms() != 0 {
		t.Fatalf("alarm %v with space to spare", rt.Alarms())
	}
	free = 10 << 20
	m.check()
	if rt.Alarms() != router.AlarmDisk {
		t.Fatalf("alarm %v with 10 MiB free, limit 50 MiB", rt.Alarms())
	}
	ferr = errors.New("statfs failed")
	m.check() // unknown: leave the alarm as it is
	if rt.Alarms() != router.AlarmDisk {
		t.Fatalf("alarm %v after a failed read", rt.Alarms())
	}
	free, ferr = 60<<20, nil
	m.check()
	if rt.Alarms() != 0 {
		t.Fatalf("alarm %v after space was freed", rt.Alarms())
	}
}

func TestStatfsFree(t *testing.T) {
	n, err := statfsFree(t.TempDir())
	if err != nil || n == 0 {
		t.Fatalf("statfsFree = %d, %v", n, err)
	}
}
