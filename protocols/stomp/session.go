package stomp

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	sf "github.com/go-stomp/stomp/v3/frame"

	"github.com/junction-broker/junction/protocols"
	"github.com/junction-broker/junction/protocols/stomp/frame"
	"github.com/junction-broker/junction/router"
)

const (
	// minHeartBeat is the shortest heart-beat interval the server agrees
	// to, either way.
	minHeartBeat = time.Second
	batchBytes   = 256 << 10
	pauseBytes   = 1 << 20
)

// Reasons a session ends the connection itself.
var (
	errProtocol         = errors.New("stomp: protocol error")
	errMissedHeartbeats = errors.New("stomp: missed heart-beats from client")
	errHandshakeTimeout = errors.New("stomp: no CONNECT in time")
)

type connState uint8

const (
	stConnect   connState = iota // waiting for CONNECT or STOMP
	stConnected                  // CONNECTED sent
	stClosed                     // ERROR or DISCONNECT: nothing more is read
)

type ackMode uint8

const (
	ackAuto ackMode = iota
	ackClient
	ackClientIndividual
)

// sub is one SUBSCRIBE.
type sub struct {
	id      string
	tag     string // consumer tag
	dest    string
	queue   string
	ack     ackMode
	con     *router.Consumer
	pending []router.DeliveryTag // unacknowledged, ascending
	temp    bool                 // a /temp-queue/ subscription: cannot be cancelled
}

// Transaction limits, per connection.
const (
	maxTxOpen   = 64     // open transactions
	maxTxFrames = 10_000 // SEND, ACK and NACK frames held by all of them
	// What they hold together in bytes is Config.MaxTxBytes: per
	// connection, not per transaction, or 64 transactions would multiply it.
)

// stompTx is an open transaction: its frames wait for COMMIT.
type stompTx struct {
	ops   []txOp
	bytes int
}

// txOp is a held SEND (out set) or ACK/NACK (f set).
type txOp struct {
	out *outgoing
	f   *frame.Frame
}

// outgoing is a parsed SEND.
type outgoing struct {
	dest destination
	opts router.QueueOptions // for a /queue/ destination
	m    *router.Message
}

type evKind uint8

const (
	evDeliver evKind = iota + 1
	evCancelled
	evDone
	evAlarm // the resource alarms cleared: the wake re-offers held input
)

// event is a result posted to the loop from router callbacks.
type event struct {
	kind    evKind
	d       router.Delivery // evDeliver
	tag     string          // evCancelled
	receipt string          // evDone
	counted bool            // evDone: counted in session.waiting
	err     error           // evDone
}

// session is one STOMP connection. Apart from the inbox, everything is
// touched only on the connection's event loop.
type session struct {
	a     *Adapter
	cfg   *Config
	conn  protocols.Conn
	log   *slog.Logger
	owner router.Owner

	state   connState
	parser  frame.Parser
	version frame.Version
	user    *router.User
	pub     *router.Publisher // provenance of its SENDs; nil: none
	vhost   *router.VHost
	topics  router.TopicChecker // the user's topic permissions (perm.go)
	ch      *router.Channel

	subs    map[string]*sub // by subscription id
	byTag   map[string]*sub // by consumer tag
	unacked map[router.DeliveryTag]*sub
	txs     map[string]*stompTx
	txOps   int               // frames held by all open transactions
	txBytes int               // and their bytes (heldBytes)
	temps   map[string]string // /temp-queue/ name -> queue
	waiting int               // receipts held back until their commit: Feed pauses
	paused  bool
	held    bool // Feed stopped before a SEND: a resource alarm is raised
	outHeld bool // the last Feed stopped for the output waiting; Output wakes the transport

	cur, prev []byte

	sendEvery, expectEvery time.Duration
	tick0                  time.Time
	lastRecv, lastSent     time.Time
	recv, sent             bool

	hs []string // scratch headers

	work      []event
	head      int
	workBytes int

	mu         sync.Mutex // guards the fields below; below all router locks
	inbox      []event
	inboxBytes int
	dead       bool
}

func newSession(a *Adapter, c protocols.Conn) *session {
	s := &session{
		a:       a,
		cfg:     &a.cfg,
		conn:    c,
		subs:    make(map[string]*sub),
		byTag:   make(map[string]*sub),
		unacked: make(map[router.DeliveryTag]*sub),
	}
	s.parser.Limits = a.limits
	s.owner = router.Owner(c.ID())
	s.log = a.cfg.Log.With("conn", c.ID(), "proto", "stomp", "remote", c.RemoteAddr())
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

// Deliver implements router.Handler.
func (s *session) Deliver(d router.Delivery) { s.post(event{kind: evDeliver, d: d}) }

// Cancelled implements router.Handler.
func (s *session) Cancelled(c *router.Consumer) { s.post(event{kind: evCancelled, tag: c.Tag}) }

// Feed implements protocols.Session.
func (s *session) Feed(in []byte) (int, error) {
	n := 0
	s.outHeld = false
	for n < len(in) {
		if s.state == stClosed {
			return len(in), nil
		}
		// Frames answer with RECEIPTs as large as their own receipt
		// headers: a client that sends without reading would have them
		// pile up here. Leave its input unread instead (up to the
		// transport's inbound limit) until Output has handed them on.
		if len(s.cur) >= batchBytes {
			s.outHeld = true
			break
		}
		if s.waiting > 0 {
			s.process(batchBytes)
			if s.waiting > 0 {
				break
			}
		}
		if s.state == stConnected && isSend(in[n:]) && s.holdSend() {
			break
		}
		f, k, err := s.parser.Parse(in[n:])
		if err != nil {
			var fe *frame.Error
			if errors.As(err, &fe) {
				s.fatal(fe.Message, fe.Detail, "")
			} else {
				s.fatal("malformed frame", err.Error(), "")
			}
			return len(in), errProtocol
		}
		if k == 0 {
			break
		}
		n += k
		s.recv = true
		if f == nil {
			continue // heart-beat
		}
		s.frame(f)
		if s.state == stClosed {
			return len(in), nil // an ERROR or DISCONNECT: ignore the rest
		}
	}
	return n, nil
}

// isSend reports whether in starts with a SEND frame's command line. The
// parser keeps its progress through a frame, but the frame's bytes stay
// at the front of in until it is complete, so this holds mid-frame too.
func isSend(in []byte) bool {
	return len(in) > 4 && string(in[:4]) == "SEND" && (in[4] == '\n' || in[4] == '\r')
}

// holdSend reports whether a SEND must wait for the router's resource
// alarms to clear. Until then the connection's input stays unread (up to
// the transport's inbound limit), so no RECEIPT goes out for it, as
// RabbitMQ blocks STOMP publishers under its memory and disk alarms;
// deliveries to the connection go on. Holding is checked at every SEND,
// so connections that only consume cost nothing.
func (s *session) holdSend() bool {
	rt := s.cfg.Router
	a := rt.Alarms()
	if a != 0 {
		s.a.hold(s)
		// Cleared between the two loads: the watcher may have run before
		// s was listed, so s goes on by itself.
		if a = rt.Alarms(); a == 0 {
			s.a.unhold(s)
		}
	}
	if a == 0 {
		if s.held {
			s.held = false
			s.log.Info("publisher resumed: resource alarms cleared")
		}
		return false
	}
	if !s.held {
		s.held = true
		s.log.Info("publisher held back by a resource alarm", "alarm", a.String())
	}
	return true
}

// errorHeaders builds an ERROR frame.
func (s *session) errorFrame(msg, detail, receipt string, extra ...string) []byte {
	hs := []string{"message", msg, "content-type", "text/plain"}
	if receipt != "" {
		hs = append(hs, "receipt-id", receipt)
	}
	hs = append(hs, extra...)
	return frame.Append(nil, s.version, sf.ERROR, hs, []byte(detail))
}

// fatal queues an ERROR frame, releases the subscriptions and asks the
// transport to close once it is written (STOMP: an ERROR ends the
// connection).
func (s *session) fatal(msg, detail, receipt string, extra ...string) {
	if s.state == stClosed {
		return
	}
	s.log.Info("closing connection with ERROR", "message", msg, "detail", detail)
	s.cur = append(s.cur, s.errorFrame(msg, detail, receipt, extra...)...)
	s.state = stClosed
	s.release()
	s.conn.Close(errProtocol)
}

// release drops the subscriptions; unacknowledged deliveries are requeued.
func (s *session) release() {
	if s.ch != nil {
		s.ch.Close()
	}
	clear(s.subs)
	clear(s.byTag)
	clear(s.unacked)
	clear(s.txs) // open transactions abort
	s.txOps, s.txBytes = 0, 0
	clear(s.temps)
}

// frame handles one client frame.
func (s *session) frame(f *frame.Frame) {
	receipt := f.Header.Get(sf.Receipt)
	if s.state == stConnect {
		if f.Command != sf.CONNECT && f.Command != sf.STOMP {
			s.fatal("Illegal command", "You must log in using CONNECT first", receipt)
			return
		}
		s.connect(f)
		return
	}
	switch f.Command {
	case sf.CONNECT, sf.STOMP:
		s.fatal("Illegal command", "already connected", receipt)
	case sf.SEND:
		s.send(f, receipt)
	case sf.SUBSCRIBE:
		s.subscribe(f, receipt)
	case sf.UNSUBSCRIBE:
		s.unsubscribe(f, receipt)
	case sf.ACK, sf.NACK:
		s.ack(f, receipt)
	case sf.BEGIN:
		s.begin(f, receipt)
	case sf.COMMIT:
		s.commit(f, receipt)
	case sf.ABORT:
		if tx := s.tx(f, receipt); tx != nil {
			s.dropTx(f.Header.Get(sf.Transaction), tx)
			if receipt != "" {
				s.receipt(receipt)
			}
		}
	case sf.DISCONNECT:
		if receipt != "" {
			s.receipt(receipt)
		}
		s.state = stClosed
		s.release()
		s.conn.Close(nil)
	}
}

func (s *session) receipt(id string) {
	s.cur = frame.Append(s.cur, s.version, sf.RECEIPT, []string{sf.ReceiptId, id}, nil)
}

// negotiate picks the highest common version; ok is false when there is
// none.
func negotiate(accept string, present bool) (frame.Version, bool) {
	if !present {
		return frame.V10, true
	}
	best, ok := frame.V10, false
	for _, v := range strings.Split(accept, ",") {
		var cand frame.Version
		switch strings.TrimSpace(v) {
		case "1.0":
			cand = frame.V10
		case "1.1":
			cand = frame.V11
		case "1.2":
			cand = frame.V12
		default:
			continue
		}
		if !ok || cand > best {
			best, ok = cand, true
		}
	}
	return best, ok
}

func (s *session) connect(f *frame.Frame) {
	accept, present := f.Header.Contains(sf.AcceptVersion)
	v, ok := negotiate(accept, present)
	if !ok {
		s.fatal("Supported protocol versions are 1.0,1.1,1.2", "Supported protocol versions are 1.0,1.1,1.2", "",
			sf.Version, "1.0,1.1,1.2")
		return
	}
	s.version = v
	if err := s.conn.Refusal(); err != nil {
		s.refuse(err)
		return
	}
	login, hasLogin := f.Header.Contains(sf.Login)
	pass := f.Header.Get(sf.Passcode)
	if !hasLogin {
		login, pass = "guest", "guest" // RabbitMQ's default_user
	}
	user, err := s.cfg.Router.Authenticate(login, pass, s.loopback())
	if err != nil {
		s.log.Warn("login refused", "user", login, "err", err)
		s.fatal("Access refused for user '"+login+"'", "Access refused for user '"+login+"'", "")
		return
	}
	host, ok := f.Header.Contains(sf.Host)
	if !ok || host == "" {
		host = "/"
	}
	vh := s.cfg.Router.VHost(host)
	if vh == nil || !user.CanAccess(host) {
		s.fatal("Virtual host '"+host+"' access denied", "Virtual host '"+host+"' access denied for user '"+login+"'", "")
		return
	}
	if hb, ok := f.Header.Contains(sf.HeartBeat); ok && v >= frame.V11 {
		cx, cy, err := sf.ParseHeartBeat(hb)
		if err != nil {
			s.fatal("Invalid heart-beat header", "heart-beat '"+hb+"' is not 'x,y'", "")
			return
		}
		// The client can send every cx and wants to receive every cy; we
		// can do anything, so we agree with a floor.
		if cy > 0 {
			s.sendEvery = max(cy, minHeartBeat)
		}
		if cx > 0 {
			s.expectEvery = max(cx, minHeartBeat)
		}
	}
	s.user, s.vhost = user, vh
	s.topics = router.NewTopicChecker(vh, user.Name)
	client := f.Header.Get("client-id")
	if client == "" {
		client = s.conn.RemoteAddr()
	}
	s.pub = s.cfg.Router.Publisher("stomp", user.Name, client)
	s.ch = vh.NewChannel(s.owner, s)
	s.state = stConnected
	s.parser.Version = v
	hs := []string{
		sf.Version, v.String(),
		sf.Server, "Junction/" + Version,
		sf.Session, "session-" + strconv.FormatUint(s.conn.ID(), 36),
	}
	if v >= frame.V11 {
		hs = append(hs, sf.HeartBeat, strconv.FormatInt(s.sendEvery.Milliseconds(), 10)+","+strconv.FormatInt(s.expectEvery.Milliseconds(), 10))
	}
	s.cur = frame.Append(s.cur, v, sf.CONNECTED, hs, nil)
	s.log.Debug("connected", "user", login, "vhost", host, "version", v.String())
}

// refuse answers CONNECT on a connection the transport refused
// (protocols.Conn.Refusal: too many connections) with an ERROR, before the
// login, and closes. The transport logs refusals in bursts; this logs only
// at Debug.
func (s *session) refuse(err error) {
	msg := "Connection refused"
	var le *protocols.ConnLimitError
	if errors.As(err, &le) {
		msg = "connection limit (" + strconv.Itoa(le.Limit) + ") is reached"
	}
	s.log.Debug("connection refused", "err", err)
	s.cur = append(s.cur, s.errorFrame(msg, "The broker accepts no more connections now; try again later.", "")...)
	s.state = stClosed
	s.conn.Close(err)
}

func (s *session) loopback() bool {
	host, _, err := net.SplitHostPort(s.conn.RemoteAddr())
	if err != nil {
		host = s.conn.RemoteAddr()
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// destination is a parsed RabbitMQ-style destination.
type destination struct {
	kind     string // "queue", "topic", "exchange", "amq/queue", "temp-queue", "reply-queue"
	exchange string
	key      string
	queue    string
}

func parseDest(d string) (destination, bool) {
	switch {
	case strings.HasPrefix(d, "/queue/"):
		q := d[len("/queue/"):]
		return destination{kind: "queue", exchange: "", key: q, queue: q}, q != ""
	case strings.HasPrefix(d, "/topic/"):
		k := d[len("/topic/"):]
		return destination{kind: "topic", exchange: "amq.topic", key: k}, k != ""
	case strings.HasPrefix(d, "/amq/queue/"):
		q := d[len("/amq/queue/"):]
		return destination{kind: "amq/queue", exchange: "", key: q, queue: q}, q != ""
	case strings.HasPrefix(d, "/exchange/"):
		x, k, _ := strings.Cut(d[len("/exchange/"):], "/")
		return destination{kind: "exchange", exchange: x, key: k}, x != ""
	case strings.HasPrefix(d, "/temp-queue/"):
		n := d[len("/temp-queue/"):]
		return destination{kind: "temp-queue", key: n}, n != ""
	case strings.HasPrefix(d, "/reply-queue/"):
		q := d[len("/reply-queue/"):]
		return destination{kind: "reply-queue", key: q, queue: q}, q != ""
	}
	return destination{}, false
}

// maxName bounds queue names, exchange names and routing keys: they are
// AMQP short strings, which an AMQP peer could not be given whole. It
// also keeps a topic pattern's levels, and the work of matching it, small.
const maxName = 255

// longDest answers a destination with a name or key longer than maxName
// with an ERROR and reports true.
func (s *session) longDest(d destination, receipt string) bool {
	if len(d.queue) <= maxName && len(d.exchange) <= maxName && len(d.key) <= maxName {
		return false
	}
	s.fatal("Invalid destination", "a queue name, exchange name or routing key in the destination is longer than "+
		strconv.Itoa(maxName)+" bytes", receipt)
	return true
}

func (s *session) badDest(d, receipt string) {
	s.fatal("Unknown destination", "'"+d+"' is not a valid destination. Valid destination types are: /exchange/, /topic/, /queue/, /amq/queue/, /temp-queue/, /reply-queue/.", receipt)
}

// routerError answers a router refusal.
func (s *session) routerError(err error, receipt string) {
	if errors.Is(err, errTooManySubs) {
		s.tooManySubs(receipt)
		return
	}
	var re *router.Error
	if errors.As(err, &re) {
		msg := strings.ToLower(strings.ReplaceAll(codeName(re.Code), " ", "_"))
		s.fatal(msg, re.Text, receipt)
		return
	}
	s.fatal("internal_error", err.Error(), receipt)
}

func codeName(c router.Code) string {
	switch c {
	case router.NotFound:
		return "not_found"
	case router.AccessRefused:
		return "access_refused"
	case router.ResourceLocked:
		return "resource_locked"
	case router.PreconditionFailed:
		return "precondition_failed"
	case router.NotAllowed:
		return "not_allowed"
	}
	return "internal_error"
}

// done returns a callback that reports a commit for receipt, counting it
// in waiting when there is a receipt to hold back.
func (s *session) done(receipt string) func(error) {
	counted := receipt != ""
	if counted {
		s.waiting++
	}
	return func(err error) {
		if err != nil || counted {
			s.post(event{kind: evDone, receipt: receipt, counted: counted, err: err})
		}
	}
}

var reservedSend = map[string]bool{
	"destination": true, "content-length": true, "receipt": true, "transaction": true,
	"content-type": true, "content-encoding": true, "correlation-id": true, "reply-to": true,
	"expiration": true, "priority": true, "persistent": true, "message-id": true,
	"amqp-message-id": true, "timestamp": true, "type": true, "app-id": true, "user-id": true,
	"subscription": true, "ack": true, "redelivered": true, "id": true,
}

func (s *session) send(f *frame.Frame, receipt string) {
	o, ok := s.parseSend(f, receipt)
	if !ok {
		return
	}
	if _, inTx := f.Header.Contains(sf.Transaction); inTx {
		tx := s.tx(f, receipt)
		if tx == nil {
			return
		}
		if !s.holdTx(tx, txOp{out: &o}, heldBytes(f), receipt) {
			return
		}
		if receipt != "" {
			s.receipt(receipt) // taken; it is published at COMMIT
		}
		return
	}
	done := s.done(receipt)
	if err := s.publish(&o, done); err != nil {
		if receipt != "" {
			s.waiting--
		}
		s.routerError(err, receipt)
	}
}

// parseSend reads a SEND's destination and message; it answers what is
// wrong with an ERROR and reports false.
func (s *session) parseSend(f *frame.Frame, receipt string) (outgoing, bool) {
	d := f.Header.Get(sf.Destination)
	dest, ok := parseDest(d)
	if !ok {
		s.badDest(d, receipt)
		return outgoing{}, false
	}
	if s.longDest(dest, receipt) {
		return outgoing{}, false
	}
	if limit := s.cfg.MaxMessageSize; limit > 0 && int64(len(f.Body)) > limit {
		s.fatal("Message too large", "message size "+strconv.Itoa(len(f.Body))+" is larger than configured max size "+
			strconv.FormatInt(limit, 10), receipt)
		return outgoing{}, false
	}
	o := outgoing{dest: dest, m: router.NewMessage(f.Body)}
	o.m.RoutingKey = dest.key
	if err := s.props(o.m, f.Header); err != nil {
		s.fatal("Invalid header", err.Error(), receipt)
		return outgoing{}, false
	}
	s.pub.Apply(o.m)
	if dest.kind == "queue" {
		var err error
		if o.opts, err = queueOptions(f.Header, router.QueueOptions{Durable: true}); err != nil {
			s.fatal("Invalid header", err.Error(), receipt)
			return outgoing{}, false
		}
	}
	// reply-to:/temp-queue/name: a private queue of this connection,
	// subscribed at once; the receiver sees where to reply.
	p := &o.m.Properties
	if p.Flags&router.HasReplyTo != 0 && strings.HasPrefix(p.ReplyTo, "/temp-queue/") {
		q, err := s.tempQueue(p.ReplyTo[len("/temp-queue/"):])
		if err != nil {
			s.routerError(err, receipt)
			return outgoing{}, false
		}
		// The bare queue name: an AMQP responder answers through the
		// default exchange with reply_to as the key; STOMP subscribers
		// see /reply-queue/name (encodeMessage).
		p.ReplyTo = q
	}
	return o, true
}

// publish checks the user's topic permissions, declares a /queue/
// destination if needed and publishes.
func (s *session) publish(o *outgoing, done func(error)) error {
	if err := s.topics.Check(o.dest.exchange, o.dest.key, false); err != nil {
		return err
	}
	switch o.dest.kind {
	case "queue":
		if _, err := s.vhost.DeclareQueue(o.dest.queue, o.opts, false, s.owner, nil); err != nil {
			return err
		}
	case "temp-queue":
		q, err := s.tempQueue(o.dest.key)
		if err != nil {
			return err
		}
		o.m.RoutingKey = q
	}
	_, err := s.vhost.Publish(o.dest.exchange, o.m, done)
	return err
}

// tempQueue returns the queue behind /temp-queue/name, creating it and its
// auto-ack subscription "/temp-queue/name" on first use (RabbitMQ's temp
// queues: private to the connection, gone with it).
func (s *session) tempQueue(name string) (string, error) {
	if q, ok := s.temps[name]; ok {
		return q, nil
	}
	if len(s.subs) >= s.cfg.MaxSubscriptions {
		return "", errTooManySubs
	}
	q, err := s.vhost.DeclareQueue("", router.QueueOptions{Exclusive: true, AutoDelete: true}, false, s.owner, nil)
	if err != nil {
		return "", err
	}
	id := "/temp-queue/" + name
	sb := &sub{id: id, tag: "T_" + id, dest: id, queue: q.Name, ack: ackAuto, temp: true}
	con, err := s.ch.Consume(q.Name, sb.tag, router.ConsumeOptions{NoAck: true})
	if err != nil {
		return "", err
	}
	sb.con = con
	if s.paused {
		con.Pause()
	}
	if s.temps == nil {
		s.temps = make(map[string]string)
	}
	s.temps[name] = q.Name
	s.subs[id] = sb
	s.byTag[sb.tag] = sb
	return q.Name, nil
}

// Queue arguments RabbitMQ takes as x-* headers, by type.
var (
	intArgs  = []string{"x-message-ttl", "x-expires", "x-max-length", "x-max-length-bytes", "x-max-priority"}
	strArgs  = []string{"x-dead-letter-exchange", "x-dead-letter-routing-key", "x-overflow", "x-queue-type", "x-queue-mode"}
	boolArgs = []string{"x-single-active-consumer"}
)

// queueOptions reads the durable, auto-delete and exclusive headers and
// the x-* queue arguments, over defaults d.
func queueOptions(h *frame.Header, d router.QueueOptions) (router.QueueOptions, error) {
	flag := func(name string, v *bool) error {
		if x, ok := h.Contains(name); ok {
			switch x {
			case "true":
				*v = true
			case "false":
				*v = false
			default:
				return fmt.Errorf("header '%s' is '%s', not true or false", name, x)
			}
		}
		return nil
	}
	o := d
	if err := errors.Join(flag("durable", &o.Durable), flag("auto-delete", &o.AutoDelete), flag("exclusive", &o.Exclusive)); err != nil {
		return o, err
	}
	for _, k := range intArgs {
		if v, ok := h.Contains(k); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return o, fmt.Errorf("header '%s' is '%s', not an integer", k, v)
			}
			o.Args = append(o.Args, router.Field{Key: k, Value: n})
		}
	}
	for _, k := range strArgs {
		if v, ok := h.Contains(k); ok {
			o.Args = append(o.Args, router.Field{Key: k, Value: v})
		}
	}
	for _, k := range boolArgs {
		if v, ok := h.Contains(k); ok {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return o, fmt.Errorf("header '%s' is '%s', not true or false", k, v)
			}
			o.Args = append(o.Args, router.Field{Key: k, Value: b})
		}
	}
	return o, nil
}

// tx returns the open transaction the frame names, or answers an ERROR
// and returns nil.
func (s *session) tx(f *frame.Frame, receipt string) *stompTx {
	id, ok := f.Header.Contains(sf.Transaction)
	if !ok {
		s.fatal("Missing transaction", f.Command+" requires a transaction header", receipt)
		return nil
	}
	tx := s.txs[id]
	if tx == nil {
		s.fatal("Bad transaction", "Invalid transaction identifier: "+id, receipt)
	}
	return tx
}

func (s *session) begin(f *frame.Frame, receipt string) {
	id, ok := f.Header.Contains(sf.Transaction)
	switch {
	case !ok:
		s.fatal("Missing transaction", "BEGIN requires a transaction header", receipt)
		return
	case s.txs[id] != nil:
		s.fatal("Bad transaction", "Transaction "+id+" is already open", receipt)
		return
	case len(s.txs) >= maxTxOpen:
		s.fatal("Too many transactions", "a connection may have at most "+strconv.Itoa(maxTxOpen)+" open transactions", receipt)
		return
	}
	if s.txs == nil {
		s.txs = make(map[string]*stompTx)
	}
	s.txs[id] = &stompTx{}
	if receipt != "" {
		s.receipt(receipt)
	}
}

// holdTx adds op, of the given size, to tx within the connection's limits.
func (s *session) holdTx(tx *stompTx, op txOp, bytes int, receipt string) bool {
	if s.txOps >= maxTxFrames || s.txBytes+bytes > s.cfg.MaxTxBytes {
		s.fatal("Transaction too large", "the open transactions of a connection may hold at most "+strconv.Itoa(maxTxFrames)+
			" frames and "+strconv.Itoa(s.cfg.MaxTxBytes>>10)+" KiB of frames; commit more often", receipt)
		return false
	}
	tx.ops = append(tx.ops, op)
	tx.bytes += bytes
	s.txOps++
	s.txBytes += bytes
	return true
}

// dropTx forgets transaction id, committed or aborted.
func (s *session) dropTx(id string, tx *stompTx) {
	delete(s.txs, id)
	s.txOps -= len(tx.ops)
	s.txBytes -= tx.bytes
}

// heldBytes is what holding f for a transaction costs, near enough: its
// body and headers.
func heldBytes(f *frame.Frame) int {
	n := len(f.Body)
	for i := 0; i < f.Header.Len(); i++ {
		k, v := f.Header.GetAt(i)
		n += len(k) + len(v)
	}
	return n
}

// commit publishes the transaction's SENDs and applies its ACKs and NACKs
// in order; the receipt waits until every persistent copy is on disk.
func (s *session) commit(f *frame.Frame, receipt string) {
	tx := s.tx(f, receipt)
	if tx == nil {
		return
	}
	s.dropTx(f.Header.Get(sf.Transaction), tx)
	done := s.done(receipt)
	// One call per held frame, one for this function itself.
	one := protocols.JoinDone(len(tx.ops)+1, done)
	for _, op := range tx.ops {
		if s.state != stConnected {
			one(nil)
			continue
		}
		if op.out == nil {
			s.settle(op.f, "")
			one(nil)
			continue
		}
		if err := s.publish(op.out, one); err != nil {
			one(nil)
			s.routerError(err, receipt)
		}
	}
	one(nil)
}

// props fills m's properties from SEND headers (first occurrence wins).
func (s *session) props(m *router.Message, h *frame.Header) error {
	p := &m.Properties
	seen := make(map[string]bool, h.Len())
	for i := 0; i < h.Len(); i++ {
		k, v := h.GetAt(i)
		if seen[k] {
			continue
		}
		seen[k] = true
		switch k {
		case "content-type":
			p.ContentType, p.Flags = v, p.Flags|router.HasContentType
		case "content-encoding":
			p.ContentEncoding, p.Flags = v, p.Flags|router.HasContentEncoding
		case "correlation-id":
			p.CorrelationID, p.Flags = v, p.Flags|router.HasCorrelationID
		case "reply-to":
			p.ReplyTo, p.Flags = v, p.Flags|router.HasReplyTo
		case "expiration":
			p.Expiration, p.Flags = v, p.Flags|router.HasExpiration
		case "priority":
			n, err := strconv.ParseUint(v, 10, 8)
			if err != nil {
				return fmt.Errorf("priority '%s' is not a number from 0 to 255", v)
			}
			p.Priority, p.Flags = uint8(n), p.Flags|router.HasPriority
		case "persistent":
			if v == "true" {
				p.DeliveryMode, p.Flags = router.Persistent, p.Flags|router.HasDeliveryMode
			}
		case "message-id", "amqp-message-id":
			if p.Flags&router.HasMessageID == 0 {
				p.MessageID, p.Flags = v, p.Flags|router.HasMessageID
			}
		case "timestamp":
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				p.Timestamp, p.Flags = n, p.Flags|router.HasTimestamp
			}
		case "type":
			p.Type, p.Flags = v, p.Flags|router.HasType
		case "app-id":
			p.AppID, p.Flags = v, p.Flags|router.HasAppID
		case "user-id":
			if v != s.user.Name {
				return fmt.Errorf("user-id '%s' is not the connected user", v)
			}
			p.UserID, p.Flags = v, p.Flags|router.HasUserID
		default:
			if !reservedSend[k] {
				p.Headers = append(p.Headers, router.Field{Key: k, Value: v})
				p.Flags |= router.HasHeaders
			}
		}
	}
	return nil
}

func (s *session) subscribe(f *frame.Frame, receipt string) {
	d := f.Header.Get(sf.Destination)
	id, ok := f.Header.Contains(sf.Id)
	if !ok {
		if s.version >= frame.V11 {
			s.fatal("Missing 'id' header", "SUBSCRIBE requires an id header in STOMP 1.1 and 1.2", receipt)
			return
		}
		id = d
	}
	if _, dup := s.subs[id]; dup {
		s.fatal("Duplicated subscription identifier", "There already is a subscription with id '"+id+"'", receipt)
		return
	}
	if len(s.subs) >= s.cfg.MaxSubscriptions {
		s.tooManySubs(receipt)
		return
	}
	mode := ackAuto
	switch a := f.Header.Get(sf.Ack); a {
	case "", "auto":
	case "client":
		mode = ackClient
	case "client-individual":
		mode = ackClientIndividual
	default:
		s.fatal("Invalid ack mode", "ack mode '"+a+"' is not auto, client or client-individual", receipt)
		return
	}
	prefetch := 0
	if v, ok := f.Header.Contains("prefetch-count"); ok {
		n, err := strconv.ParseUint(v, 10, 31)
		if err != nil {
			s.fatal("Invalid prefetch-count", "prefetch-count '"+v+"' is not a number", receipt)
			return
		}
		prefetch = int(n)
	}
	dest, ok := parseDest(d)
	if !ok {
		s.badDest(d, receipt)
		return
	}
	if s.longDest(dest, receipt) {
		return
	}
	if dest.kind == "temp-queue" || dest.kind == "reply-queue" {
		s.fatal("Invalid destination", "cannot SUBSCRIBE to '"+d+"': temp queues are subscribed through reply-to", receipt)
		return
	}
	done := s.done(receipt)
	queue, err := s.subscriptionQueue(f.Header, dest, id, done)
	if err != nil {
		if receipt != "" {
			s.waiting--
		}
		var bad badHeader
		if errors.As(err, &bad) {
			s.fatal("Invalid header", err.Error(), receipt)
			return
		}
		s.routerError(err, receipt)
		return
	}
	sb := &sub{id: id, tag: "T_" + id, dest: d, queue: queue, ack: mode}
	con, err := s.ch.Consume(queue, sb.tag, router.ConsumeOptions{NoAck: mode == ackAuto, Prefetch: prefetch})
	if err != nil {
		s.routerError(err, receipt)
		return
	}
	sb.con = con
	if s.paused {
		con.Pause()
	}
	s.subs[id] = sb
	s.byTag[sb.tag] = sb
}

// errTooManySubs: a /temp-queue/ would exceed Config.MaxSubscriptions.
var errTooManySubs = errors.New("stomp: too many subscriptions")

// tooManySubs answers a subscription beyond Config.MaxSubscriptions.
func (s *session) tooManySubs(receipt string) {
	s.fatal("Too many subscriptions", "a connection may have at most "+strconv.Itoa(s.cfg.MaxSubscriptions)+
		" subscriptions, temp queues included", receipt)
}

// badHeader is a header a SUBSCRIBE cannot use.
type badHeader struct{ error }

// durableSub reports whether a SUBSCRIBE or UNSUBSCRIBE asks for a durable
// topic subscription (RabbitMQ: durable:true, or the older persistent:true).
func durableSub(h *frame.Header) bool {
	return h.Get("durable") == "true" || h.Get("persistent") == "true"
}

// durableQueueName names the queue of durable subscription id to dest:
// x-queue-name if given, else stable for the pair, so that a client
// reconnecting with the same id finds what arrived meanwhile.
func durableQueueName(h *frame.Header, dest, id string) string {
	if h != nil {
		if n := h.Get("x-queue-name"); n != "" {
			return n
		}
	}
	sum := sha256.Sum256([]byte(dest + "\n" + id))
	return "stomp-subscription-" + base64.RawURLEncoding.EncodeToString(sum[:16])
}

// subscriptionQueue declares (or checks) the queue a SUBSCRIBE consumes:
// /queue/q itself (durable by default), an existing /amq/queue/q, or for
// /topic/ and /exchange/ a queue of the subscription's own bound to the
// exchange: exclusive and auto-deleted, or durable and kept across
// disconnects when the subscription is durable.
func (s *session) subscriptionQueue(h *frame.Header, dest destination, id string, done func(error)) (string, error) {
	v := s.vhost
	switch dest.kind {
	case "queue":
		o, err := queueOptions(h, router.QueueOptions{Durable: true})
		if err != nil {
			return "", badHeader{err}
		}
		_, err = v.DeclareQueue(dest.queue, o, false, s.owner, done)
		return dest.queue, err
	case "amq/queue":
		_, err := v.DeclareQueue(dest.queue, router.QueueOptions{}, true, s.owner, done)
		return dest.queue, err
	}
	// Before any queue is declared, so that a refusal leaves none behind.
	if err := s.topics.Check(dest.exchange, dest.key, true); err != nil {
		return "", err
	}
	name, o := "", router.QueueOptions{Exclusive: true, AutoDelete: true}
	if durableSub(h) {
		if _, ok := h.Contains(sf.Id); !ok {
			return "", badHeader{errors.New("a durable subscription needs an id header")}
		}
		name, o = durableQueueName(h, h.Get(sf.Destination), id), router.QueueOptions{Durable: true}
	} else if n := h.Get("x-queue-name"); n != "" {
		name = n
	}
	o, err := queueOptions(h, o)
	if err != nil {
		return "", badHeader{err}
	}
	q, err := v.DeclareQueue(name, o, false, s.owner, nil)
	if err != nil {
		return "", err
	}
	var args router.Table
	if h.Get(router.RetainedArg) == "true" {
		// The MQTT retained messages the key matches come first.
		args = router.Table{{Key: router.RetainedArg, Value: true}}
	}
	return q.Name, v.BindQueue(q.Name, dest.exchange, dest.key, args, s.owner, done)
}

func (s *session) unsubscribe(f *frame.Frame, receipt string) {
	id, ok := f.Header.Contains(sf.Id)
	if !ok && s.version == frame.V10 {
		id, ok = f.Header.Contains(sf.Destination)
	}
	sb := s.subs[id]
	if !ok || sb == nil {
		s.fatal("Subscription not found", "There is no subscription with id '"+id+"'", receipt)
		return
	}
	if sb.temp {
		s.fatal("Invalid subscription", "the subscription of a temp queue cannot be cancelled", receipt)
		return
	}
	s.dropSub(sb)
	s.ch.Cancel(sb.tag, true)
	if durableSub(f.Header) {
		// Ending a durable subscription deletes its queue (RabbitMQ).
		if _, err := s.vhost.DeleteQueue(sb.queue, false, false, s.owner, nil); err != nil && router.CodeOf(err) != router.NotFound {
			s.routerError(err, receipt)
			return
		}
	}
	if receipt != "" {
		s.receipt(receipt)
	}
}

func (s *session) dropSub(sb *sub) {
	delete(s.subs, sb.id)
	delete(s.byTag, sb.tag)
	for _, t := range sb.pending {
		delete(s.unacked, t)
	}
	sb.pending = nil
}

func (s *session) ack(f *frame.Frame, receipt string) {
	if _, inTx := f.Header.Contains(sf.Transaction); inTx {
		tx := s.tx(f, receipt)
		if tx == nil || s.ackTarget(f, receipt) == nil || !s.holdTx(tx, txOp{f: f}, heldBytes(f), receipt) {
			return
		}
		if receipt != "" {
			s.receipt(receipt) // applied at COMMIT; ABORT leaves it unacknowledged
		}
		return
	}
	s.settle(f, receipt)
}

// ackTarget returns the subscription of the message an ACK or NACK names,
// or answers an ERROR and returns nil.
func (s *session) ackTarget(f *frame.Frame, receipt string) *sub {
	key := sf.MessageId
	if s.version >= frame.V12 {
		key = sf.Id
	}
	v := f.Header.Get(key)
	n, err := strconv.ParseUint(v, 10, 64)
	sb := s.unacked[router.DeliveryTag(n)]
	if err != nil || sb == nil {
		s.fatal("Invalid "+key, f.Command+" of unknown message '"+v+"'", receipt)
		return nil
	}
	return sb
}

// settle applies an ACK or NACK.
func (s *session) settle(f *frame.Frame, receipt string) {
	sb := s.ackTarget(f, receipt)
	if sb == nil {
		return
	}
	key := sf.MessageId
	if s.version >= frame.V12 {
		key = sf.Id
	}
	n, _ := strconv.ParseUint(f.Header.Get(key), 10, 64)
	tag := router.DeliveryTag(n)
	requeue := f.Header.Get("requeue") != "false"
	settle := func(t router.DeliveryTag) {
		delete(s.unacked, t)
		if f.Command == sf.ACK {
			_ = s.ch.Ack(t, false)
		} else {
			_ = s.ch.Nack(t, false, requeue)
		}
	}
	i := slices.Index(sb.pending, tag)
	if sb.ack == ackClient {
		// Cumulative within the subscription.
		for _, t := range sb.pending[:i+1] {
			settle(t)
		}
		sb.pending = slices.Delete(sb.pending, 0, i+1)
	} else {
		settle(tag)
		sb.pending = slices.Delete(sb.pending, i, i+1)
	}
	if receipt != "" {
		s.receipt(receipt)
	}
}

// Output implements protocols.Session.
func (s *session) Output(dst [][]byte) [][]byte {
	s.process(batchBytes)
	if len(s.cur) == 0 {
		return dst
	}
	dst = append(dst, s.cur)
	s.cur, s.prev = s.prev[:0], s.cur
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
			limit -= n + 128
			if s.state == stConnected {
				if sb := s.byTag[e.d.Consumer.Tag]; sb != nil {
					s.encodeMessage(sb, &e.d)
				}
			}
		case evCancelled:
			if sb := s.byTag[e.tag]; sb != nil && s.state == stConnected {
				s.dropSub(sb)
				s.log.Info("subscription cancelled by the broker", "id", sb.id, "destination", sb.dest)
			}
		case evAlarm:
			// Nothing to do: the wake that brought the event re-offers the
			// held input to Feed, which looks at the alarms again.
		case evDone:
			if e.counted {
				s.waiting--
				unblocked = true
			}
			switch {
			case s.state != stConnected:
			case errors.Is(e.err, router.ErrRejected):
				s.fatal("Message rejected", "the broker could not take the message: "+e.err.Error(), e.receipt)
			case e.err != nil:
				// The store could not make it durable (a disk error): an
				// ERROR instead of the RECEIPT; the client may send again
				// on a new connection.
				s.fatal("Storage failed", "the broker could not store this: "+e.err.Error(), e.receipt)
			case e.receipt != "":
				s.receipt(e.receipt)
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
	for _, sb := range s.subs {
		f(sb.con)
	}
}

// reconstruct gives a message's destination as RabbitMQ does.
func reconstruct(m *router.Message) string {
	switch m.Exchange {
	case "":
		return "/queue/" + m.RoutingKey
	case "amq.topic":
		return "/topic/" + m.RoutingKey
	}
	return "/exchange/" + m.Exchange + "/" + m.RoutingKey
}

// encodeMessage appends a MESSAGE frame for d.
func (s *session) encodeMessage(sb *sub, d *router.Delivery) {
	m := d.Message
	p := &m.Properties
	id := strconv.FormatUint(uint64(d.Tag), 10)
	hs := append(s.hs[:0],
		sf.Subscription, sb.id,
		sf.Destination, reconstruct(m),
		sf.MessageId, id,
		"redelivered", strconv.FormatBool(d.Redelivered),
	)
	if sb.ack != ackAuto {
		if s.version >= frame.V12 {
			hs = append(hs, sf.Ack, id)
		}
		sb.pending = append(sb.pending, d.Tag)
		s.unacked[d.Tag] = sb
	}
	if p.Flags&router.HasContentType != 0 {
		hs = append(hs, "content-type", p.ContentType)
	}
	if p.Flags&router.HasContentEncoding != 0 {
		hs = append(hs, "content-encoding", p.ContentEncoding)
	}
	if p.Flags&router.HasCorrelationID != 0 {
		hs = append(hs, "correlation-id", p.CorrelationID)
	}
	if p.Flags&router.HasReplyTo != 0 {
		hs = append(hs, "reply-to", s.replyDest(p.ReplyTo))
	}
	if p.Flags&router.HasExpiration != 0 {
		hs = append(hs, "expiration", p.Expiration)
	}
	if p.Flags&router.HasPriority != 0 {
		hs = append(hs, "priority", strconv.Itoa(int(p.Priority)))
	}
	if p.DeliveryMode == router.Persistent {
		hs = append(hs, "persistent", "true")
	}
	if p.Flags&router.HasMessageID != 0 {
		hs = append(hs, "amqp-message-id", p.MessageID)
	}
	if p.Flags&router.HasTimestamp != 0 {
		hs = append(hs, "timestamp", strconv.FormatInt(p.Timestamp, 10))
	}
	if p.Flags&router.HasType != 0 {
		hs = append(hs, "type", p.Type)
	}
	if p.Flags&router.HasAppID != 0 {
		hs = append(hs, "app-id", p.AppID)
	}
	if p.Flags&router.HasUserID != 0 {
		hs = append(hs, "user-id", p.UserID)
	}
	for _, fl := range p.Headers {
		if v, ok := headerValue(fl.Value); ok && !reservedSend[fl.Key] {
			hs = append(hs, fl.Key, v)
		}
	}
	// STOMP headers are UTF-8 text without NUL: what is not (binary MQTT
	// Correlation Data, bytes headers) is left out rather than sent as a
	// frame no client could read.
	n := 0
	for i := 0; i+1 < len(hs); i += 2 {
		if stompText(hs[i]) && stompText(hs[i+1]) {
			hs[n], hs[n+1] = hs[i], hs[i+1]
			n += 2
		}
	}
	clear(hs[n:])
	hs = hs[:n]
	s.cur = frame.Append(s.cur, s.version, sf.MESSAGE, hs, m.Body)
	clear(hs)
	s.hs = hs[:0]
}

// stompText reports whether s may be a STOMP header name or value.
func stompText(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// replyDest presents a reply_to as a STOMP destination a responder can
// SEND to: a destination as it is; the name of a queue (an AMQP
// requester's, a direct reply-to, a temp queue's) as /reply-queue/name,
// which goes to it through the default exchange, as RabbitMQ does; any
// other name, a routing key (an MQTT 5 Response Topic), as /topic/key,
// which reaches the requester's subscription on amq.topic.
func (s *session) replyDest(r string) string {
	if _, ok := parseDest(r); ok {
		return r
	}
	if s.vhost.Queue(r) != nil {
		return "/reply-queue/" + r
	}
	return "/topic/" + r
}

// headerValue is the text of a header value as a STOMP header, the same
// as for an MQTT 5 User Property: strings and bytes as they are (what is
// no UTF-8 text is dropped later), integers in decimal, floats in the
// shortest form that reads back the same, booleans as true or false.
// Tables, arrays, timestamps, decimals and void have no text form: ok is
// false and the header is left out, as RabbitMQ leaves them out.
func headerValue(v any) (text string, ok bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case []byte:
		return string(x), true
	}
	b, ok := router.AppendText(nil, v)
	return string(b), ok
}

// Tick implements protocols.Session: the CONNECT deadline and heart-beats
// (sent every sendEvery/2 of silence; two expectEvery intervals without
// anything from the client end the connection with an ERROR).
func (s *session) Tick(now time.Time) error {
	if s.tick0.IsZero() {
		s.tick0 = now
	}
	switch s.state {
	case stClosed:
		return nil
	case stConnect:
		if now.Sub(s.tick0) > s.cfg.HandshakeTimeout {
			return errHandshakeTimeout // Fail says so in an ERROR
		}
		return nil
	}
	if s.expectEvery > 0 {
		// Held back by a resource alarm, the client's heart-beats are
		// unread behind the SEND: the broker, not the client, is silent.
		if s.recv || s.waiting > 0 || s.held || s.lastRecv.IsZero() {
			s.lastRecv, s.recv = now, false
		} else if now.Sub(s.lastRecv) > 2*s.expectEvery {
			s.fatal("Heart-beat timeout", "no heart-beat or frame from the client in "+(2*s.expectEvery).String(), "")
			return errMissedHeartbeats
		}
	}
	if s.sendEvery > 0 {
		if s.sent || s.lastSent.IsZero() {
			s.lastSent, s.sent = now, false
		} else if now.Sub(s.lastSent) >= s.sendEvery/2 {
			s.cur = append(s.cur, '\n')
			s.lastSent = now
		}
	}
	return nil
}

// Fail implements protocols.Session.
func (s *session) Fail(err error) []byte {
	if s.state == stClosed {
		return nil
	}
	s.state = stClosed
	switch {
	case errors.Is(err, protocols.ErrShutdown):
		return s.errorFrame("Broker shutting down", "broker forced connection closure with reason 'shutdown'", "")
	case errors.Is(err, protocols.ErrInboundLimit) && s.outHeld:
		return s.errorFrame("slow consumer", "the client sent more than the inbound buffer holds without reading the replies to it", "")
	case errors.Is(err, protocols.ErrInboundLimit):
		return s.errorFrame("frame too large", "inbound buffer limit exceeded", "")
	case errors.Is(err, protocols.ErrSlowConsumer):
		return s.errorFrame("slow consumer", "messages to this connection stayed unread at its outbound buffer limit", "")
	case errors.Is(err, errHandshakeTimeout):
		return s.errorFrame("Connection timed out", "no CONNECT frame within "+s.cfg.HandshakeTimeout.String(), "")
	}
	return s.errorFrame("internal error", "internal error", "")
}

// Closed implements protocols.Session: unacknowledged deliveries go back to
// their queues and the connection's exclusive queues are deleted.
func (s *session) Closed(err error) {
	s.mu.Lock()
	s.dead = true
	s.inbox = nil
	s.mu.Unlock()
	s.work, s.head = nil, 0
	s.state = stClosed
	if s.held {
		s.a.unhold(s)
	}
	s.release()
	if s.vhost != nil {
		s.cfg.Router.OwnerGone(s.owner)
	}
	s.log.Debug("connection closed", "err", err)
}

var _ protocols.Session = (*session)(nil)
var _ router.Handler = (*session)(nil)
