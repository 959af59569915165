package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// debugServer is the opt-in debug listener (debug_listen): Go's
// net/http/pprof handlers on a mux of their own, so nothing registered on
// http.DefaultServeMux by any package is served with them.
type debugServer struct {
	srv  *http.Server
	addr net.Addr // the bound address: the port a ":0" got
	done chan struct{}
}

// startDebug listens on addr and serves /debug/pprof/ until stop. The
// profiles are served without authentication; conf/default.toml says to
// bind them to loopback, and a warning is logged when addr is not.
func startDebug(addr string, log *slog.Logger) (*debugServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("debug listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index) // the named profiles: goroutine, heap, allocs, ...
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	d := &debugServer{
		// No write timeout: a CPU profile or trace streams for as long as
		// its ?seconds= asks.
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)},
		addr: ln.Addr(),
		done: make(chan struct{}),
	}
	go func() {
		defer close(d.done)
		if err := d.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("debug listener failed", "err", err)
		}
	}()
	if ip, ok := ln.Addr().(*net.TCPAddr); !ok || !ip.IP.IsLoopback() {
		log.Warn("debug_listen is not a loopback address: whoever reaches it can read the broker's profiles", "addr", d.addr.String())
	}
	log.Info("debug listening", "addr", d.addr.String())
	return d, nil
}

// stop closes the listener and every connection at once: a profile being
// taken is cut short rather than holding up the broker's shutdown.
func (d *debugServer) stop() error {
	err := d.srv.Close()
	<-d.done
	return err
}
