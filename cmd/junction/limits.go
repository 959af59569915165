package main

import (
	"log/slog"
	"syscall"

	"github.com/junction-broker/junction/conf"
)

// connectionLimit returns the transport's connection limit for t:
// transport.max_connections, or 0 there, 90% of the process's open-files
// soft limit. Go raises the soft limit to the hard one when the process
// starts, so this is the limit the broker actually runs under. A limit set
// above it is kept (the operator's word), with a warning: connections
// beyond the descriptors fail at accept, without their protocol's refusal.
func connectionLimit(t conf.Transport, log *slog.Logger) int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		// Nothing to take 90% of: 1024, the usual default soft limit.
		log.Warn("cannot read the open-files limit; assuming 1024", "err", err)
		rl.Cur = 1024
	}
	limit := t.ConnectionLimit(rl.Cur)
	if t.MaxConnections > 0 && uint64(t.MaxConnections) >= rl.Cur {
		log.Warn("transport.max_connections is not below the open-files limit: connections beyond the descriptors are reset, not refused",
			"max_connections", t.MaxConnections, "nofile", rl.Cur)
	}
	log.Info("connection limit", "max_connections", limit, "nofile", rl.Cur)
	return limit
}
