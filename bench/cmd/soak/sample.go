package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/junction-broker/junction/bench/proc"
)

// Sample is the broker process's state at one moment of the soak.
type Sample struct {
	At         time.Duration // since the load began; 0: the baseline, before it
	RSS        int64         // resident memory, bytes (VmRSS)
	Goroutines int           // from the debug listener's goroutine profile
	FDs        int           // open file descriptors: store files, listeners, connections
	During     string        // the scenario running when it was taken; "" if none was
}

// goroutineHeader starts the text form (debug=1) of Go's goroutine profile:
// "goroutine profile: total 21".
const goroutineHeader = "goroutine profile: total "

// parseGoroutines returns the goroutine count from the first line of a
// /debug/pprof/goroutine?debug=1 response.
func parseGoroutines(r io.Reader) (int, error) {
	first, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, err
	}
	first = strings.TrimRight(first, "\r\n")
	rest, ok := strings.CutPrefix(first, goroutineHeader)
	if !ok {
		return 0, fmt.Errorf("goroutine profile: first line %q lacks %q", first, goroutineHeader)
	}
	n, err := strconv.Atoi(strings.TrimSpace(rest))
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("goroutine profile: first line %q: no goroutine count", first)
	}
	return n, nil
}

// sampler samples one broker process: its memory and descriptors from
// /proc, its goroutines from its debug listener.
type sampler struct {
	pid    int
	debug  string // the debug listener's base URL: http://127.0.0.1:PORT
	client *http.Client
}

func newSampler(pid int, debugAddr string) *sampler {
	return &sampler{pid: pid, debug: "http://" + debugAddr, client: &http.Client{Timeout: 10 * time.Second}}
}

// goroutines fetches the broker's goroutine count.
func (s *sampler) goroutines(ctx context.Context) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.debug+"/debug/pprof/goroutine?debug=1", nil)
	if err != nil {
		return 0, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("goroutine profile: %s", resp.Status)
	}
	n, err := parseGoroutines(resp.Body)
	_, _ = io.Copy(io.Discard, resp.Body) // so the connection is reused
	return n, err
}

// take samples the broker now.
func (s *sampler) take(ctx context.Context, at time.Duration, during string) (Sample, error) {
	g, err := s.goroutines(ctx)
	if err != nil {
		return Sample{}, fmt.Errorf("sample at %s: %w", clock(at), err)
	}
	fds, err := proc.OpenFiles(s.pid)
	if err != nil {
		return Sample{}, fmt.Errorf("sample at %s: %w", clock(at), err)
	}
	rss := proc.RSS([]int{s.pid})
	if rss == 0 {
		return Sample{}, fmt.Errorf("sample at %s: no resident memory for pid %d: the broker is gone", clock(at), s.pid)
	}
	return Sample{At: at, RSS: rss, Goroutines: g, FDs: fds, During: during}, nil
}

// waitReady polls the debug listener until it answers, for at most limit.
func (s *sampler) waitReady(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		_, err := s.goroutines(ctx)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("debug listener %s not answering after %v: %w", s.debug, limit, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// clock formats d as m:ss, or h:mm:ss from an hour on.
func clock(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}
