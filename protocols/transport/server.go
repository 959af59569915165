package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/junction-broker/junction/protocols"
)

// Defaults for zero Config fields.
const (
	DefaultTickInterval = 250 * time.Millisecond
	DefaultCloseTimeout = 5 * time.Second
)

// Config lists the listeners and the loop settings.
type Config struct {
	// Listeners are served by one engine. Entries with an empty Addr are
	// disabled and skipped.
	Listeners []Listener
	// EventLoops is the number of event loops; 0 means one per CPU.
	EventLoops int
	// TickInterval is how often every session's Tick runs; 0 means
	// DefaultTickInterval.
	TickInterval time.Duration
	// CloseTimeout bounds how long a closing connection may take to flush
	// its final bytes; 0 means DefaultCloseTimeout.
	CloseTimeout time.Duration
	// Limits apply to listeners whose own Limits fields are zero; zero
	// fields here mean the protocols package defaults.
	Limits protocols.Limits
	// MaxConns bounds the connections open at once over all listeners; 0
	// or negative: no bound. A connection accepted beyond it still gets a
	// session, whose Conn.Refusal is a *protocols.ConnLimitError, so that
	// the client hears its protocol's refusal rather than a reset; it does
	// not count as open, is cut off after CloseTimeout at the latest, and
	// is logged only in one warning per burst of refusals. While more than
	// a few such refusals are under way (a flood), further connections
	// beyond the limit are closed at once without a session.
	MaxConns int
}

// Listener is one TCP listening address and the adapter that serves it.
type Listener struct {
	// Name identifies the listener in logs and in Server.Addrs ("amqp").
	// Names must be unique.
	Name string
	// Addr is "host:port" ("127.0.0.1:5672", ":1883"; port 0 picks a free
	// port, see Server.Addrs). Empty means disabled. Two enabled listeners
	// may not share a non-zero port: connections are told apart by port.
	Addr string
	// Adapter opens a session for every accepted connection.
	Adapter protocols.Adapter
	// Limits for this listener's connections; zero fields fall back to
	// Config.Limits.
	Limits protocols.Limits
}

// Stats is a snapshot of the server's counters.
type Stats struct {
	Conns         int64 // open connections, those being refused excepted
	Accepted      int64 // connections accepted since Start, refused ones excepted
	Refused       int64 // connections refused since Start: Config.MaxConns was reached
	Panics        int64 // panics recovered in session calls; non-zero is a bug
	Stalls        int64 // times a connection reached its outbound high-water mark
	SlowConsumers int64 // connections closed with ErrSlowConsumer since Start
	OutboundPeak  int64 // largest outbound backlog seen on one connection, bytes
}

// refusalBurstGap separates bursts of refused connections: a refusal
// this long after the previous one is logged, the others only counted.
const refusalBurstGap = 10 * time.Second

// endpoint is an enabled listener. Immutable after OnBoot.
type endpoint struct {
	Listener
	limits   protocols.Limits // with defaults applied
	gnetHost string           // host:port as given to gnet, unique among endpoints
	bound    string           // actual address, from getsockname
}

// Server is a running transport. Create it with New, then Start it once and
// Shutdown it once. Its methods are safe from any goroutine.
type Server struct {
	cfg Config
	log *slog.Logger
	ev  events

	eps    []*endpoint
	byPort map[int]*endpoint // written in OnBoot, before any loop runs; read-only after

	mu        sync.Mutex
	started   bool
	abandoned bool // Start gave up waiting for boot
	booted    bool // OnBoot ran; eng is valid
	eng       gnet.Engine
	bootErr   error
	loops     []*loop                  // every loop that has seen a connection
	loopOf    map[gnet.EventLoop]*loop // same, by gnet loop
	tickLoops []*loop                  // ticker goroutine's scratch copy of loops
	bootCh    chan struct{}            // closed by OnBoot
	doneCh    chan struct{}            // closed when Rotate returns
	runErr    error                    // Rotate's result; read after doneCh is closed
	idleCh    chan struct{}            // signalled when conns drops to 0 while draining
	draining  atomic.Bool              // Shutdown began: refuse new connections
	stopped   atomic.Bool              // engine stop requested: post nothing more to loops

	// Connection limit (Config.MaxConns): refusal is what refused
	// connections' Conn.Refusal returns; maxRefusing bounds how many are
	// being refused at once.
	refusal     *protocols.ConnLimitError
	maxRefusing int64

	ids           atomic.Uint64
	conns         atomic.Int64 // every socket with a gnet connection, for Shutdown
	admitted      atomic.Int64 // open connections counted against MaxConns
	refusing      atomic.Int64 // connections being refused
	accepted      atomic.Int64
	refused       atomic.Int64
	lastRefusal   atomic.Int64 // mono time of the last refusal, ns
	panics        atomic.Int64
	stalls        atomic.Int64
	slowConsumers atomic.Int64
	outboundPeak  atomic.Int64
}

// New returns a server for cfg; it listens only after Start. A nil log
// discards. Configuration errors are reported by Start.
func New(cfg Config, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.TickInterval <= 0 {
		cfg.TickInterval = DefaultTickInterval
	}
	if cfg.CloseTimeout <= 0 {
		cfg.CloseTimeout = DefaultCloseTimeout
	}
	s := &Server{
		cfg:    cfg,
		log:    log,
		loopOf: make(map[gnet.EventLoop]*loop),
		bootCh: make(chan struct{}),
		doneCh: make(chan struct{}),
		idleCh: make(chan struct{}, 1),
	}
	s.ev.s = s
	if cfg.MaxConns > 0 {
		s.refusal = &protocols.ConnLimitError{Limit: cfg.MaxConns}
		// Each refusal holds a descriptor for up to CloseTimeout; the
		// limit is meant to keep descriptors in reserve, so only a small
		// share of it may go to refusals.
		s.maxRefusing = int64(max(4, min(cfg.MaxConns/32, 1024)))
	}
	return s
}

// Start binds every enabled listener and starts the event loops. It returns
// once the engine is listening, or the first error (a bad address, a port in
// use), or ctx's error if booting takes longer than ctx allows. ctx bounds
// only the start; Shutdown stops the server.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("transport: Start called twice")
	}
	s.started = true
	s.mu.Unlock()

	if err := s.prepare(); err != nil {
		close(s.doneCh)
		return err
	}
	addrs := make([]string, len(s.eps))
	for i, ep := range s.eps {
		addrs[i] = "tcp://" + ep.gnetHost
	}
	opts := []gnet.Option{
		gnet.WithMulticore(true),
		gnet.WithNumEventLoop(s.cfg.EventLoops),
		gnet.WithReusePort(false),
		gnet.WithReuseAddr(true), // restart while old connections sit in TIME_WAIT
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
		gnet.WithTicker(true),
		gnet.WithLogger(gnetLogger{s.log}),
	}
	go func() {
		s.runErr = gnet.Rotate(&s.ev, addrs, opts...)
		if s.runErr != nil && s.isBooted() {
			s.log.Error("transport engine stopped", "err", s.runErr)
		}
		close(s.doneCh)
	}()

	select {
	case <-s.bootCh:
		if s.bootErr != nil {
			return s.bootErr
		}
		return nil
	case <-s.doneCh:
		if s.bootErr != nil {
			return s.bootErr
		}
		if s.runErr != nil {
			return fmt.Errorf("transport: start: %w", s.runErr)
		}
		return errors.New("transport: start: engine stopped while booting")
	case <-ctx.Done():
		s.mu.Lock()
		s.abandoned = true
		booted, eng := s.booted, s.eng
		s.mu.Unlock()
		if booted {
			s.stopEngine(eng)
		}
		return fmt.Errorf("transport: start: %w", ctx.Err())
	}
}

// prepare validates the listeners and probes fixed ports.
func (s *Server) prepare() error {
	var errs []error
	names := map[string]bool{}
	ports := map[int]string{}
	zeros := 0
	for _, l := range s.cfg.Listeners {
		if l.Addr == "" {
			continue
		}
		switch {
		case l.Name == "":
			errs = append(errs, fmt.Errorf("transport: listener on %s: empty name", l.Addr))
			continue
		case names[l.Name]:
			errs = append(errs, fmt.Errorf("transport: listener %q: duplicate name", l.Name))
			continue
		case l.Adapter == nil:
			errs = append(errs, fmt.Errorf("transport: listener %q: nil adapter", l.Name))
			continue
		}
		names[l.Name] = true
		host, portStr, err := net.SplitHostPort(l.Addr)
		if err != nil {
			errs = append(errs, fmt.Errorf("transport: listener %q: %w", l.Name, err))
			continue
		}
		port, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil {
			errs = append(errs, fmt.Errorf("transport: listener %q: bad port %q", l.Name, portStr))
			continue
		}
		ep := &endpoint{Listener: l, gnetHost: l.Addr}
		ep.limits = l.Limits
		if ep.limits.MaxInbound <= 0 {
			ep.limits.MaxInbound = s.cfg.Limits.MaxInbound
		}
		if ep.limits.OutboundHighWater <= 0 {
			ep.limits.OutboundHighWater = s.cfg.Limits.OutboundHighWater
		}
		if ep.limits.SlowConsumerTimeout <= 0 {
			ep.limits.SlowConsumerTimeout = s.cfg.Limits.SlowConsumerTimeout
		}
		ep.limits = ep.limits.WithDefaults()
		if port == 0 {
			// gnet finds a listener's fd (DupListener) by its address
			// string, so ephemeral listeners need distinct strings:
			// "h:0", "h:00", ... all mean port 0.
			zeros++
			ep.gnetHost = net.JoinHostPort(host, strings.Repeat("0", zeros))
		} else {
			if other, dup := ports[int(port)]; dup {
				errs = append(errs, fmt.Errorf("transport: listeners %q and %q share port %d", other, l.Name, port))
				continue
			}
			ports[int(port)] = l.Name
			// gnet leaks the listeners it bound before a later bind fails;
			// find a port in use before gnet does.
			ln, err := net.Listen("tcp", l.Addr)
			if err != nil {
				errs = append(errs, fmt.Errorf("transport: listener %q: %w", l.Name, err))
				continue
			}
			_ = ln.Close()
		}
		s.eps = append(s.eps, ep)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if len(s.eps) == 0 {
		return errors.New("transport: no listener enabled")
	}
	return nil
}

// bind learns the address each listener is bound to. Runs in OnBoot.
func (s *Server) bind(eng gnet.Engine) (map[int]*endpoint, error) {
	byPort := make(map[int]*endpoint, len(s.eps))
	for _, ep := range s.eps {
		fd, err := eng.DupListener("tcp", ep.gnetHost)
		if err != nil {
			return nil, fmt.Errorf("transport: listener %q: find socket: %w", ep.Name, err)
		}
		sa, err := syscall.Getsockname(fd)
		_ = syscall.Close(fd)
		if err != nil {
			return nil, fmt.Errorf("transport: listener %q: getsockname: %w", ep.Name, err)
		}
		addr, port := sockaddrString(sa)
		ep.bound = addr
		byPort[port] = ep
	}
	return byPort, nil
}

func sockaddrString(sa syscall.Sockaddr) (string, int) {
	ap, ok := sockaddrAddrPort(sa)
	if !ok {
		return "", 0
	}
	return ap.String(), int(ap.Port())
}

func sockaddrAddrPort(sa syscall.Sockaddr) (netip.AddrPort, bool) {
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)), true
	case *syscall.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), uint16(a.Port)), true
	}
	return netip.AddrPort{}, false
}

// addrPort is a connection's remote address as a value: net.Addr's String
// would allocate a string every connection keeps. IPv4-mapped addresses
// are unmapped, as net.TCPAddr.String prints them.
func addrPort(a net.Addr) netip.AddrPort {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}
	}
	ap := ta.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func (s *Server) isBooted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.booted
}

// Addrs returns the bound address of every enabled listener by name, with
// the real port for listeners configured with port 0. Empty before Start.
func (s *Server) Addrs() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]string, len(s.eps))
	if !s.booted {
		return m
	}
	for _, ep := range s.eps {
		m[ep.Name] = ep.bound
	}
	return m
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	return Stats{
		Conns:         s.admitted.Load(),
		Accepted:      s.accepted.Load(),
		Refused:       s.refused.Load(),
		Panics:        s.panics.Load(),
		Stalls:        s.stalls.Load(),
		SlowConsumers: s.slowConsumers.Load(),
		OutboundPeak:  s.outboundPeak.Load(),
	}
}

// Panics returns how many panics the fence has recovered; tests assert 0.
func (s *Server) Panics() int64 { return s.panics.Load() }

// Shutdown stops accepting, closes every connection after writing its
// session's remaining output and Fail(ErrShutdown) bytes, and waits until
// the engine has stopped and the listening sockets are closed. If ctx ends
// first, the remaining connections are cut off and Shutdown returns ctx's
// error once the engine has been told to stop (it finishes in the
// background). Calling it again waits for the same stop.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	booted, eng := s.booted, s.eng
	loops := slices.Clone(s.loops)
	s.mu.Unlock()
	if !booted {
		return nil
	}
	if s.draining.CompareAndSwap(false, true) {
		s.log.Info("transport shutting down", "conns", s.conns.Load())
		// Phase 1: close every connection through the normal path.
		for _, l := range loops {
			_ = l.el.Execute(context.Background(), l.shutdownTask)
		}
	drain:
		for s.conns.Load() > 0 {
			select {
			case <-s.idleCh:
			case <-ctx.Done():
				s.log.Warn("transport shutdown: cutting off connections", "conns", s.conns.Load())
				break drain
			}
		}
		// Phase 2: stop the engine; gnet closes what is left.
		s.stopEngine(eng)
	}
	select {
	case <-s.doneCh:
		if s.runErr != nil {
			return fmt.Errorf("transport: engine: %w", s.runErr)
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("transport: shutdown: %w", err)
		}
		s.log.Info("transport stopped")
		return nil
	case <-ctx.Done():
		return fmt.Errorf("transport: shutdown: %w", ctx.Err())
	}
}

// stopEngine asks gnet to stop without waiting. Engine.Stop requests the
// stop and then polls every 500 ms until it is done; with a cancelled
// context it returns right after the request, and doneCh tells when the
// engine is down.
func (s *Server) stopEngine(eng gnet.Engine) {
	if s.stopped.Swap(true) {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = eng.Stop(ctx)
}

// loopFor returns the state of gnet loop el, creating it on first use.
func (s *Server) loopFor(el gnet.EventLoop) *loop {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.loopOf[el]
	if l == nil {
		l = newLoop(s, el)
		s.loopOf[el] = l
		s.loops = append(s.loops, l)
	}
	return l
}

// admit counts a new connection against Config.MaxConns and reports
// whether it is within the limit; one beyond it is not counted.
func (s *Server) admit() bool {
	n := s.admitted.Add(1)
	if limit := s.cfg.MaxConns; limit > 0 && n > int64(limit) {
		s.admitted.Add(-1)
		return false
	}
	return true
}

// noteRefusal counts a connection refused at time now (mono) and logs the
// first refusal of a burst: a flood of connections must not become a flood
// of log lines.
func (s *Server) noteRefusal(now time.Duration) {
	n := s.refused.Add(1)
	prev := time.Duration(s.lastRefusal.Swap(int64(now)))
	if prev != 0 && now-prev < refusalBurstGap {
		return
	}
	s.log.Warn("connection limit reached: refusing new connections", "limit", s.cfg.MaxConns,
		"conns", s.admitted.Load(), "refused_total", n)
}

// connGone updates the gauge for a closed connection.
func (s *Server) connGone() {
	if s.conns.Add(-1) == 0 && s.draining.Load() {
		select {
		case s.idleCh <- struct{}{}:
		default:
		}
	}
}

// storeMax raises a to v if v is larger.
func storeMax(a *atomic.Int64, v int64) {
	for {
		old := a.Load()
		if v <= old || a.CompareAndSwap(old, v) {
			return
		}
	}
}

// events is the gnet.EventHandler; a separate type keeps gnet's callbacks
// out of Server's API.
type events struct {
	gnet.BuiltinEventEngine
	s *Server
}

func (e *events) OnBoot(eng gnet.Engine) gnet.Action {
	s := e.s
	byPort, err := s.bind(eng)
	s.mu.Lock()
	s.booted = true
	s.eng = eng
	s.byPort = byPort
	s.bootErr = err
	abandoned := s.abandoned
	s.mu.Unlock()
	close(s.bootCh)
	if err != nil || abandoned {
		return gnet.Shutdown
	}
	for _, ep := range s.eps {
		s.log.Info("listening", "listener", ep.Name, "proto", ep.Adapter.Name(), "addr", ep.bound)
	}
	return gnet.None
}

// OnShutdown runs when the engine begins to stop, whoever stopped it: from
// here on nothing may be posted to the loops.
func (e *events) OnShutdown(gnet.Engine) { e.s.stopped.Store(true) }

func (e *events) OnOpen(gc gnet.Conn) ([]byte, gnet.Action) {
	s := e.s
	l := s.loopFor(gc.EventLoop())
	// Count before checking draining, so Shutdown either sees this
	// connection in the gauge or this call sees draining (see Shutdown).
	s.conns.Add(1)
	if s.draining.Load() {
		return nil, gnet.Close // no session; OnClose settles the gauge
	}
	sa, err := syscall.Getsockname(gc.Fd())
	if err != nil {
		s.log.Warn("getsockname failed", "err", err)
		return nil, gnet.Close
	}
	local, _ := sockaddrAddrPort(sa)
	ep := s.byPort[int(local.Port())]
	if ep == nil {
		s.log.Error("connection on unknown listener", "local", local.String())
		return nil, gnet.Close
	}
	now := mono(time.Now())
	refused := !s.admit()
	if refused {
		s.noteRefusal(now)
		if s.refusing.Add(1) > s.maxRefusing {
			s.refusing.Add(-1)
			return nil, gnet.Close // a flood: no session; OnClose settles the gauge
		}
	}
	c := &conn{
		ep:      ep,
		gc:      gc,
		l:       l,
		id:      s.ids.Add(1),
		remote:  addrPort(gc.RemoteAddr()),
		local:   local,
		since:   now,
		refused: refused,
	}
	if !refused {
		s.accepted.Add(1)
	}
	gc.SetContext(c)
	l.add(c)
	if !refused && s.log.Enabled(context.Background(), slog.LevelInfo) { // spares formatting the addresses
		s.log.Info("connection opened", "conn", c.id, "proto", ep.Adapter.Name(),
			"listener", ep.Name, "remote", c.RemoteAddr(), "local", c.LocalAddr())
	}
	if c.sess = c.open(); c.sess == nil {
		c.beginClose(protocols.ErrInternal, false)
		return nil, gnet.Close
	}
	return nil, c.action(c.advance())
}

func (e *events) OnTraffic(gc gnet.Conn) gnet.Action {
	c, _ := gc.Context().(*conn)
	if c == nil {
		discardInbound(gc)
		return gnet.None
	}
	if c.closing {
		discardInbound(gc)
	} else {
		c.feedInbound()
	}
	return c.action(c.advance())
}

func (e *events) OnClose(gc gnet.Conn, err error) gnet.Action {
	c, _ := gc.Context().(*conn)
	if c != nil {
		c.onClose(err)
		gc.SetContext(nil)
	}
	e.s.connGone()
	return gnet.None
}

func (e *events) OnTick() (time.Duration, gnet.Action) {
	s := e.s
	if !s.stopped.Load() {
		s.mu.Lock()
		s.tickLoops = append(s.tickLoops[:0], s.loops...)
		loops := s.tickLoops
		s.mu.Unlock()
		for _, l := range loops {
			l.postTick()
		}
	}
	return s.cfg.TickInterval, gnet.None
}

func discardInbound(gc gnet.Conn) {
	// Discard(n) with n <= 0 also discards everything; be explicit.
	if n := gc.InboundBuffered(); n > 0 {
		_, _ = gc.Discard(n)
	}
}
