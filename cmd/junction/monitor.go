package main

import (
	"log/slog"
	"syscall"
	"time"

	"github.com/junction-broker/junction/router"
)

// monitorInterval is how often the resource alarms are re-evaluated.
const monitorInterval = time.Second

// monitor raises and clears the router's resource alarms: the memory alarm
// by the bodies held in memory against the budget (router.CheckMemory),
// the disk alarm by the free space of the data directory's file system
// against disk_free_limit.
type monitor struct {
	rt        *router.Router
	dir       string
	limit     uint64 // 0: no disk check
	log       *slog.Logger
	freeSpace func(dir string) (uint64, error)
	warned    bool // the free space could not be read (said once)
}

func (m *monitor) check() {
	m.rt.CheckMemory()
	if m.limit == 0 {
		return
	}
	free, err := m.freeSpace(m.dir)
	if err != nil {
		if !m.warned {
			m.log.Warn("cannot read the free disk space; the disk alarm is not checked", "dir", m.dir, "err", err)
			m.warned = true
		}
		return
	}
	m.warned = false
	low := free < m.limit
	if low != (m.rt.Alarms()&router.AlarmDisk != 0) {
		if low {
			m.log.Warn("free disk space is below disk_free_limit", "dir", m.dir, "free_bytes", free, "limit_bytes", m.limit)
		}
		m.rt.SetAlarm(router.AlarmDisk, low)
	}
}

// run checks every interval until stop is closed.
func (m *monitor) run(interval time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		m.check()
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

// statfsFree returns the bytes available to an unprivileged user on dir's
// file system.
func statfsFree(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}
