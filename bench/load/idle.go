package load

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/junction-broker/junction/bench/proc"
)

// Idle connections are opened by idleDialers goroutines at once, each
// waiting for its CONNACK and SUBACK before the next dial, so a broker never
// has more than idleDialers handshakes pending: its listen backlog is
// never the limit, and no broker is SYN-flooded.
const idleDialers = 32

// idleReserve is the file descriptors a process needs besides its idle
// connections: the broker's listeners, logs, data files and event loops,
// or the generator's own.
const idleReserve = 100

// idleSources is how many loopback source addresses (127.0.0.1 up) the
// connections to a loopback broker spread over: each has its own ~28,000
// ephemeral ports (net.ipv4.ip_local_port_range), so connections in
// TIME_WAIT from an earlier run never run the ports out.
const idleSources = 4

// IdleConns returns how many idle connections a run can hold when every
// process, brokers included, has an open-files limit of limit, and if that
// is fewer than want, why. Each connection is one descriptor in the broker
// and one in the generator; RabbitMQ 3.10's file handle cache admits
// sockets only up to 90 % of its limit, less a reserve, so the ceiling is
// the lower of that and what Junction and Mosquitto can take, rounded down
// to 500 so that the figure reads as a choice.
func IdleConns(want int, limit uint64) (int, string) {
	ceiling := (int(min(limit, 1<<30))-idleReserve)*9/10 - idleReserve
	if want <= ceiling {
		return want, ""
	}
	n := max(ceiling/500*500, 0)
	return n, fmt.Sprintf("%s connections instead of %s: the open-files limit here is %s and could not be raised "+
		"(no CAP_SYS_RESOURCE), and RabbitMQ 3.10 admits sockets only up to about 90 %% of it",
		commas(n), commas(want), commas(int(limit)))
}

func commas(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// BytesPerConn is the broker's resident memory per idle connection: the
// growth from before to after, over n connections; 0 without connections.
// It may be negative when the broker returned more memory than the
// connections took, which a report shows as it is.
func BytesPerConn(before, after int64, n int) float64 {
	if n <= 0 {
		return 0
	}
	return float64(after-before) / float64(n)
}

// steady reports whether the last window samples lie within tol of each
// other.
func steady(samples []int64, window int, tol int64) bool {
	if window < 2 || len(samples) < window {
		return false
	}
	last := samples[len(samples)-window:]
	lo, hi := last[0], last[0]
	for _, v := range last[1:] {
		lo, hi = min(lo, v), max(hi, v)
	}
	return hi-lo <= tol
}

// settleRSS polls the resident memory of pids every interval until it is
// steady: the last window samples within max(1 MiB, 1 % of their growth
// over base), or limit passes. It returns the last sample and whether it
// was steady.
func settleRSS(ctx context.Context, pids []int, base int64, interval time.Duration, window int, limit time.Duration) (int64, bool) {
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var samples []int64
	for {
		v := proc.RSS(pids)
		samples = append(samples, v)
		if steady(samples, window, max(1<<20, (v-base)/100)) {
			return v, true
		}
		if time.Now().After(deadline) {
			return v, false
		}
		select {
		case <-ctx.Done():
			return v, false
		case <-tick.C:
		}
	}
}

// idleConn is one held connection.
type idleConn struct{ nc net.Conn }

// runIdle runs an idle-connections scenario: it opens the connections,
// waits for the broker's memory to settle and measures it.
func runIdle(ctx context.Context, sc Scenario, t Target, o Options) (Result, error) {
	res := Result{Scenario: sc.Name, Broker: t.Broker}
	n := sc.Conns
	if o.Conns > 0 {
		n = o.Conns
	}
	if o.Settle <= 0 {
		o.Settle = 60 * time.Second
	}
	if sc.Proto != MQTT {
		return res, fmt.Errorf("load: %s: idle connections are MQTT only", sc.Name)
	}
	limit, err := proc.RaiseFileLimit(uint64(n + idleReserve))
	if err != nil {
		return res, err
	}
	if limit < uint64(n+idleReserve) {
		return res, fmt.Errorf("load: %s: %d connections need an open-files limit of %d, and it is %d here (ulimit -Hn; or fewer with -conns)",
			sc.Name, n, n+idleReserve, limit)
	}
	var pids []int
	for _, p := range t.PIDs {
		pids = append(pids, proc.Tree(p)...)
	}
	if len(pids) == 0 {
		return res, fmt.Errorf("load: %s: the broker's PIDs are needed to measure its memory (-pids)", sc.Name)
	}
	id := strconv.FormatInt(time.Now().UnixNano()%1e12, 36)
	before, _ := settleRSS(ctx, pids, 0, 250*time.Millisecond, 4, 15*time.Second)
	res.RSSBefore = before
	res.PeakIsRunOnly = proc.ResetPeak(pids) == nil
	cpu0, self0 := proc.CPU(pids), proc.SelfCPU()

	conns := make([]idleConn, n)
	var (
		wg       sync.WaitGroup
		next     atomic.Int64
		failOnce sync.Once
		failErr  error
		stop     atomic.Bool
	)
	fail := func(err error) {
		failOnce.Do(func() { failErr = err })
		stop.Store(true)
	}
	started := time.Now()
	for range min(idleDialers, n) {
		wg.Go(func() {
			for !stop.Load() && ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				nc, err := dialIdle(ctx, t.MQTT, i, id, &sc)
				if err != nil {
					fail(fmt.Errorf("connection %d of %d: %w", i+1, n, err))
					return
				}
				conns[i].nc = nc
			}
		})
	}
	wg.Wait()
	res.ConnectSeconds = time.Since(started).Seconds()
	defer closeIdle(conns)
	for _, c := range conns {
		if c.nc != nil {
			res.Conns++
		}
	}
	if failErr == nil && ctx.Err() != nil {
		failErr = ctx.Err()
	}

	settleStart := time.Now()
	after, ok := settleRSS(ctx, pids, before, 500*time.Millisecond, 6, o.Settle)
	res.SettleSeconds = time.Since(settleStart).Seconds()
	res.Unsettled = !ok
	res.RSSAfter = after
	res.BytesPerConn = BytesPerConn(before, after, int(res.Conns))
	res.BrokerCPU = (proc.CPU(pids) - cpu0).Seconds()
	res.BrokerPeakRSS = proc.PeakRSS(pids)
	res.LoadgenCPU = (proc.SelfCPU() - self0).Seconds()
	res.Seconds = time.Since(started).Seconds()
	if failErr != nil {
		return res, failErr
	}
	if closed, unexpected := checkIdle(conns); closed > 0 || unexpected > 0 {
		return res, fmt.Errorf("after settling, the broker had closed %d of the %d idle connections and sent %d something unasked",
			closed, res.Conns, unexpected)
	}
	return res, nil
}

// dialIdle opens idle connection i of run id: TCP (from one of
// idleSources loopback addresses to a loopback broker), CONNECT with a
// clean session and sc.KeepAlive, CONNACK, and if sc.Subscribe a SUBSCRIBE
// at QoS 1 to bench/ID/dev/I/cmd and its SUBACK.
func dialIdle(ctx context.Context, addr string, i int, id string, sc *Scenario) (net.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	if host, _, err := net.SplitHostPort(addr); err == nil && host == "127.0.0.1" {
		d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i%idleSources))}
		d.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				// Take the port at connect, not at bind, so that ports are
				// shared between destinations as without a bind.
				serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
			})
			return errors.Join(err, serr)
		}
	}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			_ = nc.Close()
		}
	}()
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	client := "i" + id + "-" + strconv.Itoa(i) // ≤ 23 bytes [MQTT-3.1.3-5]
	if _, err := nc.Write(appendConnect(nil, client, "guest", "guest", sc.KeepAlive)); err != nil {
		return nil, err
	}
	var ack [5]byte
	if _, err := io.ReadFull(nc, ack[:4]); err != nil {
		return nil, fmt.Errorf("CONNACK: %w", err)
	}
	if ack[0] != 0x20 || ack[1] != 2 {
		return nil, fmt.Errorf("CONNACK expected, got % x", ack[:4])
	}
	if ack[3] != 0 {
		return nil, fmt.Errorf("CONNACK refused, return code %d", ack[3])
	}
	if sc.Subscribe {
		topic := "bench/" + id + "/dev/" + strconv.Itoa(i) + "/cmd"
		if _, err := nc.Write(appendSubscribe(nil, 1, topic, 1)); err != nil {
			return nil, err
		}
		if _, err := io.ReadFull(nc, ack[:]); err != nil {
			return nil, fmt.Errorf("SUBACK: %w", err)
		}
		if ack[0] != 0x90 || ack[1] != 3 || binary.BigEndian.Uint16(ack[2:]) != 1 {
			return nil, fmt.Errorf("SUBACK expected, got % x", ack[:])
		}
		if ack[4] == 0x80 {
			return nil, errors.New("SUBSCRIBE refused (0x80)")
		}
	}
	_ = nc.SetDeadline(time.Time{})
	ok = true
	return nc, nil
}

// ipBindAddressNoPort is Linux's IP_BIND_ADDRESS_NO_PORT (linux/in.h),
// which the syscall package lacks.
const ipBindAddressNoPort = 24

// checkIdle looks at every held connection without blocking (recv with
// MSG_PEEK|MSG_DONTWAIT): closed ones read end-of-file; any other answer
// than "nothing to read" means the broker sent something unasked.
func checkIdle(conns []idleConn) (closed, unexpected int) {
	var b [1]byte
	for _, c := range conns {
		sc, ok := c.nc.(syscall.Conn)
		if !ok {
			continue
		}
		raw, err := sc.SyscallConn()
		if err != nil {
			closed++
			continue
		}
		var n int
		var rerr error
		err = raw.Read(func(fd uintptr) bool {
			n, _, rerr = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			return true // never wait
		})
		switch {
		case err != nil:
			closed++
		case errors.Is(rerr, syscall.EAGAIN):
		case rerr != nil || n == 0:
			closed++
		default:
			unexpected++
		}
	}
	return closed, unexpected
}

// closeIdle sends DISCONNECT on every held connection and closes it.
func closeIdle(conns []idleConn) {
	for _, c := range conns {
		if c.nc != nil {
			_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = c.nc.Write([]byte{0xe0, 0})
			_ = c.nc.Close()
		}
	}
}

// appendConnect appends an MQTT 3.1.1 CONNECT with a clean session, a
// user name and password (RabbitMQ's default user; Mosquitto allows
// anonymous clients and ignores them) and keepAlive in seconds.
func appendConnect(b []byte, client, user, pass string, keepAlive time.Duration) []byte {
	rem := 10 + 2 + len(client) + 2 + len(user) + 2 + len(pass)
	b = append(b, 0x10)
	b = appendVarint(b, rem)
	b = appendString(b, "MQTT")
	b = append(b, 4, 0xc2) // level 4 (3.1.1); flags: user name, password, clean session
	b = binary.BigEndian.AppendUint16(b, uint16(min(keepAlive/time.Second, 65535)))
	b = appendString(b, client)
	b = appendString(b, user)
	return appendString(b, pass)
}

// appendSubscribe appends an MQTT SUBSCRIBE of one filter.
func appendSubscribe(b []byte, pid uint16, filter string, qos byte) []byte {
	b = append(b, 0x82)
	b = appendVarint(b, 2+2+len(filter)+1)
	b = binary.BigEndian.AppendUint16(b, pid)
	b = appendString(b, filter)
	return append(b, qos)
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func appendVarint(b []byte, n int) []byte {
	for {
		c := byte(n % 128)
		n /= 128
		if n > 0 {
			c |= 0x80
		}
		b = append(b, c)
		if n == 0 {
			return b
		}
	}
}
