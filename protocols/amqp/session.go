package amqp

import (
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/junction-broker/junction/protocols"
	"github.com/junction-broker/junction/protocols/amqp/frame"
	"github.com/junction-broker/junction/router"
)

// Timeouts RabbitMQ also applies.
const (
	closeOkTimeout = 3 * time.Second // how long a sent connection.close waits for close-ok
	lingerTimeout  = 3 * time.Second // how long after our close-ok the client may take to hang up
)

// Outbound bounds: a pass of Output encodes at most batchBytes of
// deliveries; when more than pauseBytes of delivered bodies wait to be
// encoded, every consumer of the connection is paused until they drain.
const (
	batchBytes = 256 << 10
	pauseBytes = 1 << 20
	// vecMin is the smallest body sent by reference (writev); smaller
	// bodies are copied next to their framing, which is cheaper.
	vecMin = 1024
)

// Reasons a session ends the connection itself.
var (
	errMissedHeartbeats = errors.New("amqp: missed heartbeats from client")
	errHandshakeTimeout = errors.New("amqp: handshake timed out")
	errCloseOkTimeout   = errors.New("amqp: no connection.close-ok in time")
	errAuth             = errors.New("amqp: authentication failed")
	errClientClosed     = errors.New("amqp: client closed the connection")
)

type connState uint8

const (
	stHeader  connState = iota // waiting for the protocol header
	stStartOk                  // connection.start sent
	stTuneOk                   // connection.tune sent
	stOpen                     // tune-ok received, waiting for connection.open
	stOpened                   // channels may be used
	stClosing                  // connection.close sent: only close-ok counts
	stClosed                   // nothing more is read or written
)

// session is one AMQP connection. Apart from the inbox, everything is
// touched only on the connection's event loop.
type session struct {
	a     *Adapter
	cfg   *Config
	conn  protocols.Conn
	log   *slog.Logger
	owner router.Owner

	state      connState
	dec        frame.Decoder
	frameMax   uint32 // negotiated; FrameMinSize until tune-ok
	channelMax uint16
	heartbeat  time.Duration
	user       *router.User
	pub        *router.Publisher // provenance of what it publishes; nil: none
	vhost      *router.VHost
	notifyCanc bool // client takes server-sent basic.cancel
	blockedCap bool // client takes connection.blocked/unblocked

	// Topic permissions (perm.go): the user's, by exchange, and how many
	// publishes and bindings they refused, for logging.
	topics   router.TopicChecker
	refusals int

	// Resource alarms (router.Alarm): a publish is not read while one is
	// raised.
	published bool // the client has published: tell it when blocked
	blockSent bool // connection.blocked sent, unblocked not yet
	held      bool // Feed stopped before a basic.publish
	outHeld   bool // the last Feed stopped for the replies waiting; Output wakes the transport

	channels map[uint16]*channel
	txBytes  int // held by the channels' transactions until commit (Config.MaxTxBytes)
	// waiting counts synchronous replies held back until their storage
	// commit: while non-zero Feed takes no more frames, which keeps every
	// reply in request order.
	waiting int
	paused  bool // consumers paused: too many deliveries waiting

	cur, prev outbuf // cur collects; prev is what the last Output returned

	tick0, closeAt     time.Time
	linger             bool // client closed: wait for it to hang up (Tick)
	lastRecv, lastSent time.Time
	recv, sent         bool

	// Scratch reused for every delivery.
	props   frame.Properties
	headers frame.Table
	deliver frame.BasicDeliver

	work      []event // taken from inbox, processed from head
	head      int
	workBytes int

	mu         sync.Mutex // guards the fields below; below all router locks
	inbox      []event
	inboxBytes int
	dead       bool
}

// outbuf is a batch of output: framing bytes in buf, and vec, the wire
// order of slices of buf and of message bodies.
type outbuf struct {
	buf  []byte
	vec  [][]byte
	mark int // buf[:mark] is already in vec
}

func (o *outbuf) flush() {
	if len(o.buf) > o.mark {
		o.vec = append(o.vec, o.buf[o.mark:len(o.buf):len(o.buf)])
		o.mark = len(o.buf)
	}
}

func (o *outbuf) reset() {
	clear(o.vec)
	o.vec, o.buf, o.mark = o.vec[:0], o.buf[:0], 0
}

type evKind uint8

const (
	evDeliver evKind = iota + 1
	evCancelled
	evConfirm
	evDone
	evAlarm // the router's resource alarms changed
)

// event is a result posted to the loop from router callbacks.
type event struct {
	kind evKind
	ch   *channel
	d    router.Delivery // evDeliver
	tag  string          // evCancelled
	seq  uint64          // evConfirm
	op   *pendingOp      // evDone
	err  error           // evConfirm, evDone
}

// pendingOp is a method whose reply waits for done.
type pendingOp struct {
	ok      frame.Method // nil with nowait
	counted bool         // counted in session.waiting
}

func newSession(a *Adapter, c protocols.Conn) *session {
	s := &session{
		a:        a,
		cfg:      &a.cfg,
		conn:     c,
		frameMax: frame.FrameMinSize,
		channels: make(map[uint16]*channel),
	}
	if c != nil {
		s.owner = router.Owner(c.ID())
		s.log = a.cfg.Log.With("conn", c.ID(), "proto", "amqp", "remote", c.RemoteAddr())
	} else {
		s.log = a.cfg.Log
	}
	return s
}

// post queues e for the loop and wakes it. Safe from any goroutine, also
// under router locks.
func (s *session) post(e event) {
	s.mu.Lock()
	if s.dead {
		s.mu.Unlock()
		return
	}
	wake := len(s.inbox) == 0
	s.inbox = append(s.inbox, e)
	if e.kind == evDeliver {
		s.inboxBytes += len(e.d.Message.Body)
	}
	s.mu.Unlock()
	if wake {
		s.conn.Wake()
	}
}

// Feed implements protocols.Session.
func (s *session) Feed(in []byte) (int, error) {
	n := 0
	if s.state == stHeader {
		ok, k, err := frame.ParseProtocolHeader(in)
		if err != nil {
			return len(in), err
		}
		if !ok {
			return 0, nil
		}
		n = k
		s.cur.buf = append(s.cur.buf, s.a.start...)
		s.state = stStartOk
	}
	s.outHeld = false
	for n < len(in) {
		if s.state == stClosed {
			return len(in), nil
		}
		// Methods are answered (basic.qos-ok, a passive declare's ok,
		// confirms): a client that pipelines them without reading would
		// have the replies pile up here. Leave its input unread instead
		// (up to the transport's inbound limit) until Output has handed
		// them on.
		if len(s.cur.buf) >= batchBytes {
			s.outHeld = true
			break
		}
		if s.waiting > 0 {
			s.process(batchBytes) // done may have run already
			if s.waiting > 0 {
				break
			}
		}
		f, k, err := frame.ParseFrame(in[n:], s.frameMax)
		if err != nil {
			return n, err
		}
		if k == 0 {
			break
		}
		if s.state == stOpened && isPublish(f) && s.blockPublish() {
			break
		}
		n += k
		s.recv = true
		if err := s.frame(f); err != nil {
			return n, err
		}
	}
	return n, nil
}

// isPublish reports whether f is a basic.publish method frame.
func isPublish(f frame.Frame) bool {
	p := f.Payload
	return f.Type == frame.FrameMethod && len(p) >= 4 &&
		binary.BigEndian.Uint16(p) == frame.ClassBasic && binary.BigEndian.Uint16(p[2:]) == frame.MethodBasicPublish
}

// blockPublish reports whether a publish must wait for the resource
// alarms to clear, telling the client it is blocked (RabbitMQ blocks a
// connection when it publishes under an alarm). Until then its input stays
// unread, up to the transport's inbound limit.
func (s *session) blockPublish() bool {
	a := s.cfg.Router.Alarms()
	if a == 0 {
		s.published = true
		return false
	}
	if !s.held {
		s.log.Info("publisher blocked by a resource alarm", "alarm", a.String())
	}
	s.held, s.published = true, true
	s.sendBlocked(a)
	return true
}

func (s *session) sendBlocked(a router.Alarm) {
	if s.blockedCap && !s.blockSent {
		s.cur.buf = frame.AppendMethodFrame(s.cur.buf, 0, &frame.ConnectionBlocked{Reason: a.String()})
		s.blockSent = true
	}
}

// alarmChanged blocks a publishing connection when an alarm is raised and
// unblocks it once none is.
func (s *session) alarmChanged() {
	if s.state != stOpened {
		return
	}
	a := s.cfg.Router.Alarms()
	if a != 0 {
		if s.published {
			s.sendBlocked(a)
		}
		return
	}
	if s.blockSent {
		s.cur.buf = frame.AppendMethodFrame(s.cur.buf, 0, &frame.ConnectionUnblocked{})
		s.blockSent = false
	}
	if s.held {
		s.held = false
		s.log.Info("publisher unblocked")
		s.conn.Wake() // offer the held-back input again
	}
}

// frame handles one frame. A returned error ends the connection through
// Fail; protocol errors that allow a goodbye go through closeConn instead.
func (s *session) frame(f frame.Frame) error {
	if f.Type == frame.FrameHeartbeat {
		if f.Channel != 0 {
			return &frame.Error{Code: frame.FrameError, Text: "heartbeat frame on channel " + strconv.Itoa(int(f.Channel))}
		}
		return nil
	}
	if s.state == stClosing {
		if f.Type == frame.FrameMethod && f.Channel == 0 {
			if m, err := s.dec.DecodeMethod(f.Payload); err == nil {
				switch m.(type) {
				case *frame.ConnectionCloseOk:
					s.state = stClosed
					s.conn.Close(nil)
				case *frame.ConnectionClose:
					s.cur.buf = frame.AppendMethodFrame(s.cur.buf, 0, &frame.ConnectionCloseOk{})
					s.state = stClosed
					s.conn.Close(nil)
				}
			}
		}
		return nil
	}
	if s.state < stOpened {
		if f.Type != frame.FrameMethod || f.Channel != 0 {
			return &frame.Error{Code: frame.UnexpectedFrame, Text: "unexpected frame during the connection handshake"}
		}
	}
	if f.Type == frame.FrameMethod {
		m, err := s.dec.DecodeMethod(f.Payload)
		if err != nil {
			s.fault(nil, err)
			return nil
		}
		if f.Channel == 0 {
			if err := s.connMethod(m); err != nil {
				cls, mid := m.ID()
				s.fault(nil, protoErr(err, cls, mid))
			}
			return nil
		}
		s.chanMethod(f.Channel, m)
		return nil
	}
	if f.Channel == 0 {
		s.closeConn(&frame.Error{Code: frame.UnexpectedFrame, Text: "content frame on channel 0"})
		return nil
	}
	c := s.channels[f.Channel]
	switch {
	case c == nil:
		// RabbitMQ's 505: a channel not open expects a method frame.
		s.closeConn(&frame.Error{Code: frame.UnexpectedFrame, Text: "expected method frame, got non method frame instead"})
	case c.closing:
	default:
		if err := c.content(f); err != nil {
			s.fault(c, protoErr(err, frame.ClassBasic, frame.MethodBasicPublish))
		}
	}
	return nil
}

// protoErr turns err into the error the peer is told: router refusals keep
// their code and text, anything else is 541 INTERNAL_ERROR.
func protoErr(err error, classID, methodID uint16) *frame.Error {
	var fe *frame.Error
	if errors.As(err, &fe) {
		if fe.ClassID == 0 && fe.MethodID == 0 {
			c := *fe
			c.ClassID, c.MethodID = classID, methodID
			return &c
		}
		return fe
	}
	var re *router.Error
	if errors.As(err, &re) {
		return &frame.Error{Code: uint16(re.Code), Text: re.Text, ClassID: classID, MethodID: methodID}
	}
	return &frame.Error{Code: frame.InternalError, Text: err.Error(), ClassID: classID, MethodID: methodID}
}

// replyText is RabbitMQ's reply-text: "NOT_FOUND - no queue 'q' in vhost '/'",
// cut to a short string.
func replyText(e *frame.Error) string {
	t := e.Text
	if n := frame.ReplyName(e.Code); n != "" {
		t = n + " - " + t
	}
	if len(t) > 255 {
		t = t[:255]
	}
	return t
}

// fault answers err: soft errors close channel c (when there is one), the
// rest the connection.
func (s *session) fault(c *channel, err error) {
	e := protoErr(err, 0, 0)
	if e.Soft() && c != nil {
		c.fail(e)
		return
	}
	s.closeConn(e)
}

// closeConn sends connection.close for e and waits for close-ok (AMQP 0-9-1
// §4.2.2: after sending close, a peer discards everything but close and
// close-ok). Channels are released now, so no delivery follows the close.
func (s *session) closeConn(e *frame.Error) {
	if s.state >= stClosing {
		return
	}
	if e.Code != frame.ReplySuccess {
		s.log.Warn("closing connection", "code", e.Code, "text", e.Text)
	}
	s.cur.buf = frame.AppendMethodFrame(s.cur.buf, 0, &frame.ConnectionClose{
		ReplyCode: e.Code, ReplyText: replyText(e), ClassID: e.ClassID, MethodID: e.MethodID,
	})
	before := s.state
	s.state = stClosing
	s.releaseChannels()
	if before < stOpened {
		// During the handshake RabbitMQ closes the socket right after the
		// close (authentication_failure_close); so do we.
		s.state = stClosed
		s.conn.Close(errAuth)
	}
}

func (s *session) releaseChannels() {
	for id, c := range s.channels {
		c.release()
		delete(s.channels, id)
	}
}

// connMethod handles a method on channel 0.
func (s *session) connMethod(m frame.Method) error {
	switch s.state {
	case stStartOk:
		if so, ok := m.(*frame.ConnectionStartOk); ok {
			return s.startOk(so)
		}
	case stTuneOk:
		if t, ok := m.(*frame.ConnectionTuneOk); ok {
			return s.tuneOk(t)
		}
	case stOpen:
		if o, ok := m.(*frame.ConnectionOpen); ok {
			return s.open(o)
		}
	case stOpened:
		switch m := m.(type) {
		case *frame.ConnectionClose:
			// The client initiated the close, so it closes the socket once it
			// has our close-ok (AMQP 0-9-1 §2.2.4). Closing first would cut
			// off frames it may still be flushing (amqplib writes channel
			// frames queued behind its close and gets EPIPE); anything more
			// it sends is discarded, and Tick closes if it never hangs up.
			// Exclusive queues go before close-ok, as in RabbitMQ, so a
			// client that reconnects at once can declare them again.
			s.releaseChannels()
			s.cfg.Router.OwnerGone(s.owner)
			s.cur.buf = frame.AppendMethodFrame(s.cur.buf, 0, &frame.ConnectionCloseOk{})
			s.state = stClosed
			s.linger = true
			return nil
		case *frame.ConnectionBlocked, *frame.ConnectionUnblocked:
			return nil // a client has nothing to tell us here; ignore as RabbitMQ does
		case *frame.ConnectionUpdateSecret:
			return s.updateSecret(m)
		}
		if cls, _ := m.ID(); cls != frame.ClassConnection {
			// A channel method on channel 0: RabbitMQ's 504.
			return &frame.Error{Code: frame.ChannelError, Text: "unexpected method " + m.Name() + " in connection state running (channel 0 is for connection methods)"}
		}
		return &frame.Error{Code: frame.CommandInvalid, Text: "unexpected method " + m.Name() + " on channel 0"}
	}
	return &frame.Error{Code: frame.CommandInvalid, Text: "unexpected method " + m.Name() + " during the handshake"}
}

func (s *session) startOk(m *frame.ConnectionStartOk) error {
	if caps, ok := m.ClientProperties.Get("capabilities"); ok {
		if t, ok := caps.(frame.Table); ok {
			if v, ok := t.Get("consumer_cancel_notify"); ok {
				s.notifyCanc, _ = v.(bool)
			}
			if v, ok := t.Get("connection.blocked"); ok {
				s.blockedCap, _ = v.(bool)
			}
		}
	}
	if m.Mechanism != "PLAIN" && m.Mechanism != "AMQPLAIN" {
		// Not a login that failed but a mechanism we did not offer:
		// RabbitMQ's 503 (rabbit_reader, auth_mechanism_to_module).
		s.log.Warn("login refused: unknown mechanism", "mechanism", m.Mechanism)
		s.closeConn(&frame.Error{Code: frame.CommandInvalid, ClassID: frame.ClassConnection, MethodID: frame.MethodConnectionStartOk,
			Text: "unknown authentication mechanism '" + m.Mechanism + "'"})
		return nil
	}
	user, pass, ok := parseAuth(m.Mechanism, m.Response)
	if !ok {
		s.log.Warn("login refused: malformed response", "mechanism", m.Mechanism)
		s.closeConn(&frame.Error{Code: frame.SyntaxError, ClassID: frame.ClassConnection, MethodID: frame.MethodConnectionStartOk,
			Text: "the " + m.Mechanism + " response of connection.start-ok is malformed"})
		return nil
	}
	var err error
	if s.user, err = s.cfg.Router.Authenticate(user, pass, s.loopback()); err != nil {
		s.log.Warn("login refused", "user", user, "mechanism", m.Mechanism, "err", err)
		s.closeConn(&frame.Error{Code: frame.AccessRefused, ClassID: frame.ClassConnection, MethodID: frame.MethodConnectionStartOk,
			Text: "Login was refused using authentication mechanism " + m.Mechanism + ". For details see the broker logfile."})
		return nil
	}
	client := s.conn.RemoteAddr()
	if v, ok := m.ClientProperties.Get("connection_name"); ok {
		if name, ok := textOf(v); ok && name != "" {
			client = name
		}
	}
	s.pub = s.cfg.Router.Publisher("amqp", s.user.Name, client)
	hb := uint16(min(s.cfg.Heartbeat/time.Second, 65535))
	s.cur.buf = frame.AppendMethodFrame(s.cur.buf, 0, &frame.ConnectionTune{
		ChannelMax: s.cfg.ChannelMax, FrameMax: s.cfg.FrameMax, Heartbeat: hb,
	})
	s.state = stTuneOk
	return nil
}

// parseAuth reads a PLAIN ("\x00user\x00pass") or AMQPLAIN (a field table
// without its length prefix, LOGIN and PASSWORD) response.
func parseAuth(mech, resp string) (user, pass string, ok bool) {
	switch mech {
	case "PLAIN":
		// authzid \0 authcid \0 password
		first := strings.IndexByte(resp, 0)
		if first < 0 {
			return "", "", false
		}
		rest := resp[first+1:]
		second := strings.IndexByte(rest, 0)
		if second < 0 {
			return "", "", false
		}
		return rest[:second], rest[second+1:], true
	case "AMQPLAIN":
		t, err := frame.DecodeTable([]byte(resp))
		if err != nil {
			return "", "", false
		}
		u, ok1 := t.Get("LOGIN")
		p, ok2 := t.Get("PASSWORD")
		us, ok3 := textOf(u)
		ps, ok4 := textOf(p)
		return us, ps, ok1 && ok2 && ok3 && ok4
	}
	return "", "", false
}

func textOf(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case []byte:
		return string(x), true
	}
	return "", false
}

func (s *session) loopback() bool {
	host, _, err := net.SplitHostPort(s.conn.RemoteAddr())
	if err != nil {
		host = s.conn.RemoteAddr()
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (s *session) tuneOk(m *frame.ConnectionTuneOk) error {
	fm := m.FrameMax
	if fm == 0 {
		fm = s.cfg.FrameMax
	}
	switch {
	case fm < frame.FrameMinSize:
		return &frame.Error{Code: frame.NotAllowed, Text: "frame_max=" + strconv.Itoa(int(fm)) + " < " + strconv.Itoa(frame.FrameMinSize) + " min size"}
	case fm > s.cfg.FrameMax:
		return &frame.Error{Code: frame.NotAllowed, Text: "frame_max=" + strconv.Itoa(int(fm)) + " > " + strconv.Itoa(int(s.cfg.FrameMax)) + " max size"}
	}
	cm := m.ChannelMax
	if cm == 0 || cm > s.cfg.ChannelMax {
		cm = s.cfg.ChannelMax
	}
	s.frameMax, s.channelMax = fm, cm
	s.heartbeat = time.Duration(m.Heartbeat) * time.Second
	s.state = stOpen
	return nil
}

func (s *session) open(m *frame.ConnectionOpen) error {
	v := s.cfg.Router.VHost(m.VirtualHost)
	if v == nil {
		return &frame.Error{Code: frame.NotAllowed, Text: "vhost " + m.VirtualHost + " not found"}
	}
	if err := s.conn.Refusal(); err != nil {
		s.refuse(m.VirtualHost, err)
		return nil
	}
	if !s.user.CanAccess(m.VirtualHost) {
		return &frame.Error{Code: frame.NotAllowed, Text: "access to vhost '" + m.VirtualHost + "' refused for user '" + s.user.Name + "'"}
	}
	s.vhost = v
	s.topics = router.NewTopicChecker(v, s.user.Name)
	s.state = stOpened
	s.cur.buf = frame.AppendMethodFrame(s.cur.buf, 0, &frame.ConnectionOpenOk{})
	s.log.Debug("connection opened", "user", s.user.Name, "vhost", v.Name)
	return nil
}

// refuse answers connection.open on a connection the transport refused
// (protocols.Conn.Refusal) and closes it. A connection over the limit gets
// RabbitMQ's answer for its vhost connection limit, connection.close 530
// NOT_ALLOWED "access to vhost '/' refused for user 'guest': connection
// limit (N) is reached", and the socket closes, as for every handshake
// error. The transport logs refusals in bursts; this logs only at Debug.
func (s *session) refuse(vhost string, err error) {
	e := &frame.Error{Code: frame.NotAllowed, ClassID: frame.ClassConnection, MethodID: frame.MethodConnectionOpen,
		Text: "access to vhost '" + vhost + "' refused for user '" + s.user.Name + "'"}
	var le *protocols.ConnLimitError
	if errors.As(err, &le) {
		e.Text += ": connection limit (" + strconv.Itoa(le.Limit) + ") is reached"
	}
	s.log.Debug("connection refused", "err", err)
	s.cur.buf = frame.AppendMethodFrame(s.cur.buf, 0, &frame.ConnectionClose{
		ReplyCode: e.Code, ReplyText: replyText(e), ClassID: e.ClassID, MethodID: e.MethodID,
	})
	s.state = stClosed
	s.conn.Close(err)
}

// Output implements protocols.Session.
func (s *session) Output(dst [][]byte) [][]byte {
	s.process(batchBytes)
	o := &s.cur
	o.flush()
	if len(o.vec) == 0 {
		return dst
	}
	dst = append(dst, o.vec...)
	s.cur, s.prev = s.prev, s.cur
	s.cur.reset()
	s.sent = true
	if s.outHeld {
		s.conn.Wake() // have the transport offer the unread input again
	}
	return dst
}

// process handles posted events, encoding at most limit bytes of
// deliveries, and pauses or resumes the consumers by what is left.
func (s *session) process(limit int) {
	if s.head == len(s.work) {
		s.work, s.head = s.work[:0], 0
		s.mu.Lock()
		s.work, s.inbox = s.inbox, s.work
		s.workBytes += s.inboxBytes
		s.inboxBytes = 0
		s.mu.Unlock()
	}
	unblocked := false
	for s.head < len(s.work) && limit > 0 {
		e := &s.work[s.head]
		s.head++
		switch e.kind {
		case evDeliver:
			n := len(e.d.Message.Body)
			s.workBytes -= n
			limit -= n + 64
			if c := e.ch; s.live(c) {
				s.encodeDelivery(c, &e.d)
			}
		case evCancelled:
			if c := e.ch; s.live(c) {
				delete(c.consumers, e.tag)
				if s.notifyCanc {
					s.cur.buf = frame.AppendMethodFrame(s.cur.buf, c.id, &frame.BasicCancel{ConsumerTag: e.tag, NoWait: true})
				}
			}
		case evConfirm:
			if c := e.ch; s.live(c) {
				c.confirmed(e.seq, e.err)
			}
		case evAlarm:
			s.alarmChanged()
		case evDone:
			if e.op.counted {
				s.waiting--
				unblocked = true
			}
			switch {
			case e.err != nil:
				s.closeConn(&frame.Error{Code: frame.InternalError, Text: "storage: " + e.err.Error()})
			case e.op.ok != nil && s.live(e.ch):
				s.cur.buf = frame.AppendMethodFrame(s.cur.buf, e.ch.id, e.op.ok)
			}
		}
		*e = event{}
	}
	if unblocked && s.waiting == 0 {
		s.conn.Wake() // have the transport offer the held-back input again
	}
	s.mu.Lock()
	pending := s.workBytes + s.inboxBytes
	s.mu.Unlock()
	switch {
	case !s.paused && pending > pauseBytes:
		s.paused = true
		s.eachConsumer((*router.Consumer).Pause)
	case s.paused && pending == 0:
		s.paused = false
		s.eachConsumer((*router.Consumer).Resume)
	}
}

func (s *session) eachConsumer(f func(*router.Consumer)) {
	for _, c := range s.channels {
		for _, con := range c.consumers {
			f(con)
		}
	}
}

// live reports whether c is an open channel of an open connection.
func (s *session) live(c *channel) bool {
	return s.state == stOpened && s.channels[c.id] == c && !c.closing
}

// encodeDelivery appends basic.deliver, its content header and its body
// (by reference when large) to the output.
func (s *session) encodeDelivery(c *channel, d *router.Delivery) {
	m := d.Message
	s.deliver = frame.BasicDeliver{
		ConsumerTag: d.Consumer.Tag,
		DeliveryTag: uint64(d.Tag),
		Redelivered: d.Redelivered,
		Exchange:    m.Exchange,
		RoutingKey:  m.RoutingKey,
	}
	s.cur.buf = frame.AppendMethodFrame(s.cur.buf, c.id, &s.deliver)
	s.appendContent(c.id, &m.Properties, m.Body)
}

// appendContent appends a content header for p and body frames.
func (s *session) appendContent(ch uint16, p *router.Properties, body []byte) {
	s.headers = propsToWire(&s.props, p, s.headers)
	o := &s.cur
	if len(body) < vecMin {
		o.buf = frame.AppendContent(o.buf, ch, frame.ClassBasic, &s.props, body, s.frameMax)
	} else {
		o.flush()
		o.vec, o.buf = frame.AppendContentVec(o.vec, o.buf, ch, frame.ClassBasic, &s.props, body, s.frameMax)
		o.mark = len(o.buf)
	}
	clear(s.headers)
	s.props = frame.Properties{}
}

// Tick implements protocols.Session: handshake and close-ok deadlines,
// heartbeats (sent every heartbeat/2 of silence; two intervals without
// anything from the client close the connection, as RabbitMQ does).
func (s *session) Tick(now time.Time) error {
	if s.tick0.IsZero() {
		s.tick0 = now
	}
	switch {
	case s.state == stClosing:
		if s.closeAt.IsZero() {
			s.closeAt = now
		} else if now.Sub(s.closeAt) > closeOkTimeout {
			return errCloseOkTimeout
		}
		return nil
	case s.state == stClosed:
		if s.linger {
			if s.closeAt.IsZero() {
				s.closeAt = now
			} else if now.Sub(s.closeAt) > lingerTimeout {
				s.linger = false
				s.conn.Close(errClientClosed)
			}
		}
		return nil
	case s.state < stOpen && now.Sub(s.tick0) > s.cfg.HandshakeTimeout:
		return errHandshakeTimeout
	}
	if s.heartbeat <= 0 || s.state < stOpen {
		return nil
	}
	if s.recv || s.waiting > 0 || s.held || s.lastRecv.IsZero() {
		s.lastRecv, s.recv = now, false
	} else if now.Sub(s.lastRecv) > 2*s.heartbeat {
		s.log.Info("missed heartbeats from client", "timeout", 2*s.heartbeat)
		return errMissedHeartbeats
	}
	if s.sent || s.lastSent.IsZero() {
		s.lastSent, s.sent = now, false
	} else if now.Sub(s.lastSent) >= s.heartbeat/2 {
		s.cur.buf = frame.AppendHeartbeat(s.cur.buf)
		s.lastSent = now
	}
	return nil
}

// Fail implements protocols.Session.
func (s *session) Fail(err error) []byte {
	if errors.Is(err, frame.ErrProtocolHeader) {
		return frame.AppendProtocolHeader(nil)
	}
	if s.state == stHeader || s.state >= stClosing {
		return nil
	}
	e := &frame.Error{Code: frame.InternalError, Text: "internal error"}
	var fe *frame.Error
	switch {
	case errors.Is(err, errMissedHeartbeats), errors.Is(err, errHandshakeTimeout):
		return nil // RabbitMQ closes the socket without a word
	case errors.Is(err, protocols.ErrShutdown):
		e = &frame.Error{Code: frame.ConnectionForced, Text: "broker forced connection closure with reason 'shutdown'"}
	case errors.Is(err, protocols.ErrInboundLimit):
		e = &frame.Error{Code: frame.FrameError, Text: "inbound buffer limit exceeded"}
	case errors.Is(err, protocols.ErrSlowConsumer):
		e = &frame.Error{Code: frame.ConnectionForced, Text: "slow consumer: deliveries to this connection stayed unread at its outbound buffer limit"}
	case errors.As(err, &fe):
		e = fe
	}
	s.state = stClosed
	return frame.AppendMethodFrame(nil, 0, &frame.ConnectionClose{
		ReplyCode: e.Code, ReplyText: replyText(e), ClassID: e.ClassID, MethodID: e.MethodID,
	})
}

// Closed implements protocols.Session: every channel's unacknowledged
// deliveries go back to their queues and the connection's exclusive
// queues are deleted.
func (s *session) Closed(err error) {
	s.mu.Lock()
	s.dead = true
	s.inbox = nil
	s.mu.Unlock()
	s.work, s.head = nil, 0
	s.state = stClosed
	s.releaseChannels()
	s.a.forget(s)
	if s.vhost != nil {
		s.cfg.Router.OwnerGone(s.owner)
	}
	s.log.Debug("connection closed", "err", err)
}

// updateSecret checks the new secret as the user's password (RabbitMQ's
// update-secret, meant for expiring tokens): the connection goes on under
// it, or is closed with 530 if it does not authenticate the same user.
func (s *session) updateSecret(m *frame.ConnectionUpdateSecret) error {
	u, err := s.cfg.Router.Authenticate(s.user.Name, m.NewSecret, s.loopback())
	if err != nil || u.Name != s.user.Name {
		s.log.Warn("secret update refused", "user", s.user.Name, "reason", m.Reason, "err", err)
		return &frame.Error{Code: frame.NotAllowed, Text: "New secret was refused by one of the backends"}
	}
	s.log.Info("secret updated", "user", s.user.Name, "reason", m.Reason)
	s.cur.buf = frame.AppendMethodFrame(s.cur.buf, 0, &frame.ConnectionUpdateSecretOk{})
	return nil
}
