package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseGoroutines(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     int // 0: an error
	}{
		{"profile", "goroutine profile: total 21\n3 @ 0x43e5ae 0x40a\n#\t0x43e5ad\truntime.gopark+0xcd\n", 21},
		{"only the line", "goroutine profile: total 7", 7},
		{"crlf", "goroutine profile: total 1234\r\n", 1234},
		{"empty", "", 0},
		{"html", "<html><body>404 page not found</body></html>\n", 0},
		{"heap profile", "heap profile: 4: 1024 [8: 2048] @ heap/1048576\n", 0},
		{"no number", "goroutine profile: total \n", 0},
		{"not a number", "goroutine profile: total many\n", 0},
		{"zero", "goroutine profile: total 0\n", 0},
		{"count on the second line", "\ngoroutine profile: total 21\n", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseGoroutines(strings.NewReader(tc.in))
			if tc.want == 0 {
				if err == nil {
					t.Fatalf("parseGoroutines(%q) = %d, want an error", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parseGoroutines(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestClock(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0:00", 1500 * time.Millisecond: "0:02", 90 * time.Second: "1:30", 30 * time.Minute: "30:00",
		time.Hour + 2*time.Minute + 3*time.Second: "1:02:03",
	} {
		if got := clock(d); got != want {
			t.Errorf("clock(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestSamplerTake samples this test process against a stand-in debug
// listener: memory and descriptors from /proc, goroutines from HTTP.
func TestSamplerTake(t *testing.T) {
	profile := "goroutine profile: total 42\n1 @ 0x1\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/debug/pprof/goroutine" || r.URL.Query().Get("debug") != "1" {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, profile)
	}))
	defer srv.Close()
	smp := newSampler(os.Getpid(), strings.TrimPrefix(srv.URL, "http://"))
	ctx := context.Background()
	if err := smp.waitReady(ctx, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	s, err := smp.take(ctx, time.Minute, "amqp-1to1")
	if err != nil {
		t.Fatal(err)
	}
	if s.Goroutines != 42 || s.RSS <= 0 || s.FDs < 3 || s.At != time.Minute || s.During != "amqp-1to1" {
		t.Fatalf("sample = %+v; want 42 goroutines, some memory, at least 3 descriptors, at 1:00 during amqp-1to1", s)
	}

	profile = "goroutine profile: total x\n"
	if _, err := smp.take(ctx, time.Minute, ""); err == nil || !strings.Contains(err.Error(), "sample at 1:00") {
		t.Errorf("a bad profile: err = %v", err)
	}
	gone := newSampler(1<<30, strings.TrimPrefix(srv.URL, "http://"))
	profile = "goroutine profile: total 1\n"
	if _, err := gone.take(ctx, 0, ""); err == nil {
		t.Error("a process that is gone: no error")
	}
	srv.Close()
	if err := smp.waitReady(ctx, 200*time.Millisecond); err == nil {
		t.Error("waitReady on a closed listener: no error")
	}
}
