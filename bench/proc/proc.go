// Package proc reads what the comparison and the soak report about a
// process from Linux's /proc: CPU time (utime+stime from /proc/PID/stat),
// resident and peak resident memory (VmRSS and VmHWM from /proc/PID/status;
// /proc/PID/clear_refs resets the peak), open file descriptors
// (/proc/PID/fd), and the process tree under a PID, so a broker started
// through a wrapper script (RabbitMQ's rabbitmq-server runs beam.smp as a
// child) is measured whole. It also raises this process's open-files
// limit, which the brokers it starts inherit.
package proc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// Tree returns root and all its descendants, root first.
func Tree(root int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return []int{root}
	}
	children := map[int][]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readStat(pid)
		if err != nil {
			continue
		}
		children[st.ppid] = append(children[st.ppid], pid)
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

type stat struct {
	ppid         int
	utime, stime int64 // clock ticks
}

// readStat parses /proc/PID/stat; the command name (field 2) is in
// parentheses and may hold spaces, so fields are counted after its last ')'.
func readStat(pid int) (stat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return stat{}, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return stat{}, errors.New("proc: malformed stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
	if len(f) < 13 {
		return stat{}, errors.New("proc: short stat")
	}
	var s stat
	s.ppid, _ = strconv.Atoi(f[1])
	s.utime, _ = strconv.ParseInt(f[11], 10, 64)
	s.stime, _ = strconv.ParseInt(f[12], 10, 64)
	return s, nil
}

// CPU is the user plus system CPU time of pids, summed; processes that are
// gone count as 0.
func CPU(pids []int) time.Duration {
	var ticks int64
	for _, pid := range pids {
		if s, err := readStat(pid); err == nil {
			ticks += s.utime + s.stime
		}
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// SelfCPU is this process's user plus system CPU time, at nanosecond
// resolution (getrusage), all threads included.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// PeakRSS is the sum of the pids' VmHWM, in bytes: each one's peak resident
// set since it started or since ResetPeak.
func PeakRSS(pids []int) int64 {
	var sum int64
	for _, pid := range pids {
		sum += statusKB(pid, "VmHWM:") * 1024
	}
	return sum
}

// RSS is the sum of the pids' current VmRSS, in bytes.
func RSS(pids []int) int64 {
	var sum int64
	for _, pid := range pids {
		sum += statusKB(pid, "VmRSS:") * 1024
	}
	return sum
}

func statusKB(pid int, key string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// ResetPeak sets each pid's VmHWM back to its current resident set (writes
// 5 to /proc/PID/clear_refs; Linux ≥ 4.0, and it needs the right to write
// there, which the process's owner and root have), so that PeakRSS then
// measures one run.
func ResetPeak(pids []int) error {
	var errs []error
	for _, pid := range pids {
		if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// OpenFiles is the number of pid's open file descriptors, the entries of
// /proc/PID/fd: files, sockets, pipes and epoll and event descriptors alike.
// Reading another user's process needs the right to (its owner, or root).
func OpenFiles(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0, fmt.Errorf("proc: open files: %w", err)
	}
	return len(ents), nil
}

// Alive reports whether pid exists and is not a zombie.
func Alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] != 'Z'
}

// RaiseFileLimit raises this process's open-files limit (RLIMIT_NOFILE) to
// want: the soft limit up to the hard one, and the hard one too if the
// process may (root with CAP_SYS_RESOURCE). It returns the soft limit it
// ends with, which processes started afterwards inherit (the Go runtime
// restores the limit it found for children only while nothing has called
// Setrlimit), and an error only if the limit could not be read or set.
func RaiseFileLimit(want uint64) (uint64, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, fmt.Errorf("proc: getrlimit: %w", err)
	}
	if l.Cur >= want {
		return l.Cur, nil
	}
	if l.Max < want {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: want, Max: want}); err == nil {
			return want, nil
		}
	}
	l.Cur = min(want, l.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, fmt.Errorf("proc: setrlimit: %w", err)
	}
	return l.Cur, nil
}
