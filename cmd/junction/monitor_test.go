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

// TestMonitorRaisesAndClearsTheMemoryAlarmOnResidentMemory: above the
// high watermark the memory alarm is raised; it clears under 90% of it.
func TestMonitorRaisesAndClearsTheMemoryAlarmOnResidentMemory(t *testing.T) {
	rt, err := router.New(router.Config{Store: memstore.New()})
	if err != nil {
		t.Fatal(err)
	}
	rss := int64(500 << 20)
	m := &monitor{rt: rt, log: slog.New(slog.DiscardHandler), memLimit: 1 << 30, rss: func() int64 { return rss }}
	m.check()
	if rt.Alarms() != 0 {
		t.Fatalf("alarm %v at 500 MiB of 1 GiB", rt.Alarms())
	}
	rss = 1100 << 20
	m.check()
	if rt.Alarms() != router.AlarmMemory {
		t.Fatalf("alarm %v at 1100 MiB of 1 GiB", rt.Alarms())
	}
	rss = 1000 << 20
	m.check()
	if rt.Alarms() != router.AlarmMemory {
		t.Fatalf("alarm %v cleared above 90%% of the watermark", rt.Alarms())
	}
	rss = 900 << 20
	m.check()
	if rt.Alarms() != 0 {
		t.Fatalf("alarm %v under 90%% of the watermark", rt.Alarms())
	}
}

func TestMemoryWatermark(t *testing.T) {
	if rss := residentMemory(); rss <= 0 {
		t.Fatalf("residentMemory() = %d", rss)
	}
	avail := availableMemory()
	if avail <= 0 {
		t.Fatalf("availableMemory() = %d", avail)
	}
	if got := memoryWatermark(0.5, 0); got != avail/2 {
		t.Fatalf("memoryWatermark(0.5, 0) = %d, want %d", got, avail/2)
	}
	if got := memoryWatermark(0.5, 123<<20); got != 123<<20 {
		t.Fatalf("the absolute watermark is not used: %d", got)
	}
	if got := memoryWatermark(0, 0); got != 0 {
		t.Fatalf("memoryWatermark(0, 0) = %d, want 0 (off)", got)
	}
}

func TestStatfsFree(t *testing.T) {
	n, err := statfsFree(t.TempDir())
	if err != nil || n == 0 {
		t.Fatalf("statfsFree = %d, %v", n, err)
	}
}
