package main

import (
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/junction-broker/junction/router"
)

// monitorInterval is how often the resource alarms are re-evaluated.
const monitorInterval = time.Second

// monitor raises and clears the router's resource alarms: the memory alarm
// by the bodies held in memory against the budget and the process's
// resident memory against the high watermark (router.CheckMemory), the
// disk alarm by the free space of the data directory's file system against
// disk_free_limit.
type monitor struct {
	rt        *router.Router
	dir       string
	limit     uint64 // 0: no disk check
	log       *slog.Logger
	freeSpace func(dir string) (uint64, error)
	warned    bool // the free space could not be read (said once)

	memLimit int64        // resident memory high watermark, bytes; 0: none
	rss      func() int64 // the process's resident memory; 0 when unknown
	memOver  bool         // above the watermark at the last check (said once)
}

func (m *monitor) check() {
	var rss int64
	if m.memLimit > 0 && m.rss != nil {
		rss = m.rss()
		if over := rss > m.memLimit; over != m.memOver {
			m.memOver = over
			if over {
				m.log.Warn("resident memory is above memory_high_watermark; publishers are blocked until it is back under 90%",
					"rss_bytes", rss, "watermark_bytes", m.memLimit)
			}
		}
	}
	m.rt.CheckMemory(rss, m.memLimit)
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

// residentMemory returns this process's resident set size in bytes, from
// /proc/self/statm; 0 when it cannot be read.
func residentMemory() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize())
}

// memoryWatermark returns the resident-memory high watermark: absolute if
// set, else fraction of the memory available to the process, the
// machine's or the cgroup's limit, whichever is lower; 0 when neither is
// set or the memory cannot be read.
func memoryWatermark(fraction float64, absolute int64) int64 {
	if absolute > 0 {
		return absolute
	}
	if fraction <= 0 {
		return 0
	}
	total := availableMemory()
	if total <= 0 {
		return 0
	}
	return int64(fraction * float64(total))
}

// availableMemory is the machine's memory (MemTotal), or the cgroup's
// memory limit (v2 memory.max, v1 memory.limit_in_bytes) when lower.
func availableMemory() int64 {
	var total int64
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				f := strings.Fields(rest)
				if len(f) > 0 {
					if kib, err := strconv.ParseInt(f[0], 10, 64); err == nil {
						total = kib << 10
					}
				}
				break
			}
		}
	}
	for _, p := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// "max", or v1's huge number, mean no limit.
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 && (total == 0 || n < total) {
			total = n
		}
		break
	}
	return total
}
