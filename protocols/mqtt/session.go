package mqtt

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/junction-broker/junction/protocols"
	"github.com/junction-broker/junction/router"
	"github.com/junction-broker/junction/storage"
)

const (
	// maxPendingOps bounds acknowledgements waiting for their work
	// (storage commits); beyond it Feed stops taking packets.
	maxPendingOps = 1024
	// maxUnsent bounds the output a session holds: beyond it Feed stops
	// taking packets until Output takes the output. The transport stops
	// asking for output while the connection's backlog is full, so a
	// client that does not read what it asks for (PINGRESPs,
	// acknowledgements) would otherwise grow it without end; its input
	// waits instead, up to the transport's inbound limit.
	maxUnsent = 64 << 10

	// consumerTag is the tag of the consumer on a session's own queue;
	// shared subscriptions consume with sharedTag and the queue's name.
	consumerTag = "mqtt"
	sharedTag   = "mqtt-share:"
)

// maxSubscriptions bounds a session's subscriptions; more are refused
// (MQTT 5: 0x97 quota exceeded). A variable for tests.
var maxSubscriptions = 10000

// discErr ends a connection; MQTT 5 clients are told rc in a DISCONNECT.
type discErr struct {
	rc   byte
	text string
}

func (e *discErr) Error() string { return "mqtt: " + e.text }

var (
	errKeepalive      = &discErr{rcKeepAliveTimeout, "keepalive timeout"}
	errTooLarge       = &discErr{rcPacketTooLarge, "packet too large"}
	errConnectTimeout = errors.New("mqtt: no CONNECT in time")
	errNotConnect     = errors.New("mqtt: first packet is not CONNECT")
	// errRefused: a refusing CONNACK (or nothing) is already queued.
	errRefused   = errors.New("mqtt: connection refused")
	errPublishV3 = errors.New("mqtt: publish failed")
	errTakenOver = errors.New("mqtt: session taken over by a new connection with the same client id")
)

func malformed(text string) error { return &discErr{rcMalformed, "malformed packet: " + text} }
func protoErr(text string) error  { return &discErr{rcProtocolError, "protocol error: " + text} }

// badPacket is the error for a packet the decoder rejected: a protocol
// error if its properties p broke a rule, else malformed.
func badPacket(what string, p *props) error {
	if p.proto {
		return protoErr(what + " properties")
	}
	return malformed(what)
}

type connState uint8

const (
	stConnect   connState = iota // waiting for CONNECT
	stWaiting                    // CONNECT read; waiting for the session's previous holder to close
	stConnected                  // CONNACK sent
	stLinger                     // MQTT 5 DISCONNECT sent; input is discarded until the peer closes or lingerTimeout
	stClosed                     // nothing more is read or sent
)

// lingerTimeout bounds how long a connection the server sent an MQTT 5
// DISCONNECT stays open reading (and discarding) what the client still
// sends. Closing a socket with unread input makes the kernel send a reset,
// which can destroy the DISCONNECT before the client reads it, and the
// client's next write fails: a client that pipelined publishes past the
// Receive Maximum would never learn why it was disconnected.
const lingerTimeout = 2 * time.Second

type evKind uint8

const (
	evDeliver evKind = iota + 1
	evDone
	evCancelled
	evTakeover
	evResume
	evAlarm // the resource alarms cleared: the wake re-offers held input
)

// event is a result posted to the loop from router callbacks.
type event struct {
	kind evKind
	d    router.Delivery  // evDeliver
	c    *router.Consumer // evCancelled
	op   *op              // evDone
	idx  int              // evDone: the filter of a SUBSCRIBE / UNSUBSCRIBE
	err  error            // evDone
}

type opKind uint8

const (
	opPuback opKind = iota + 1
	opPubrec
	opPubcomp
	opSuback
	opUnsuback
)

// op is an acknowledgement to send once its work is done. Acks leave in
// the order their packets arrived.
type op struct {
	kind     opKind
	id       uint16
	waiting  int    // done callbacks outstanding
	err      error  // publish failure
	noMatch  bool   // publish reached no queue
	rc       byte   // PUBCOMP reason; PUBACK/PUBREC refusal (quota, permission)
	reason   string // MQTT 5 Reason String of a refusal; "" none
	codes    []byte
	retained []*subscription // SUBACK: subscriptions to send retained messages to, after it
}

// outMsg is an outbound QoS 1 or 2 PUBLISH awaiting its acknowledgement.
type outMsg struct {
	tag      router.DeliveryTag // 0: not a delivery of this connection
	qos      byte
	released bool // QoS 2: PUBREC came, PUBREL sent
	counted  bool // restored released: counted in relPending
	queue    string
	seq      storage.SeqNum
}

// resendKey names a message a persistent session had in flight at QoS 2
// before it reconnected.
type resendKey struct {
	queue string
	seq   storage.SeqNum
}

// session is one MQTT connection. Apart from the inbox, everything is
// touched only on the connection's event loop.
//
// An idle connection costs little more than this struct, so it holds only
// what most connections use: maps, buffers, the router channel and the
// logger are made on first use, and state that few connections need (MQTT
// 5 aliases, shared subscriptions, restored QoS 2 ids) waits in rare.
type session struct {
	a     *Adapter
	conn  protocols.Conn
	owner router.Owner
	x     *rare               // nil until needed; see more
	hdr   *[3][2]router.Table // header tables of plain publishes by QoS and retain; nil until the first

	vhost    *router.VHost
	topics   *router.TopicAccess // the user's topic permissions; nil: all allowed
	user     *router.User
	pub      *router.Publisher // provenance; nil until the first publish, see publisher
	queue    string            // the session queue's name, set with the client id; see clientID
	ch       *router.Channel   // nil until the session consumes; see channel
	consumer *router.Consumer
	pk       *connectPkt // stWaiting: the CONNECT to resume with
	will     *willMsg    // published if the connection ends without DISCONNECT
	st       *sessState
	pids     map[uint16]outMsg // outbound QoS 1 and 2 packet ids; nil until the first
	ops      []*op

	out, prev []byte
	work      []event

	// tickAt is a Tick's time: in stConnect and stWaiting the first one,
	// in stConnected the last one after input, in stLinger the first one
	// since the DISCONNECT. Zero until the first Tick in the state.
	tickAt time.Time

	keepalive   uint32 // seconds; 0: none
	window      int32  // Receive Maximum towards the client
	relPending  int32  // restored released QoS 2 ids: window the router does not see
	noLocal     int32  // subscriptions with No Local
	refusals    int32  // publishes and filters refused by topics, for logging
	inQoS1      int32  // inbound QoS 1 publishes not yet PUBACKed
	expiry      uint32 // Session Expiry Interval in effect
	reqExpiry   uint32 // as the CONNECT asked
	cliMax      uint32 // the client's Maximum Packet Size (MQTT 5), 0: none
	outAliasMax uint16 // the client's Topic Alias Maximum (MQTT 5)
	lastPID     uint16
	state       connState
	v5          bool
	registered  bool // in the adapter's session maps
	holding     bool // CONNACK sent: the session state is this connection's
	closed      bool
	persistent  bool  // the session outlives the connection
	stored      bool  // st is in the adapter's states (and maybe the store)
	problemInfo bool  // MQTT 5 Request Problem Information
	blocked     bool  // Feed stopped taking packets: too many pending ops
	unsent      bool  // Feed stopped taking packets: maxUnsent bytes of output wait
	held        bool  // Feed stopped before a PUBLISH: a resource alarm is raised
	warned      bool  // retained quota warning logged
	recv        bool  // input since the last Tick
	quiet       uint8 // Ticks since the last events or output; see trim

	mu    sync.Mutex // guards dead and inbox; below all router locks
	dead  bool
	inbox []event
}

// rare is the part of a session few connections need.
type rare struct {
	log        *slog.Logger                // the connection's logger; see logger
	sharedQ    map[string]*subscription    // shared subscriptions by queue
	sharedCons map[string]*router.Consumer // their consumers by queue
	resend     map[resendKey]uint16        // restored QoS 2 ids by message; 0: completed, drop a redelivery
	outAliases map[string]uint16           // outbound topic aliases by routing key
	aliases    []string                    // inbound topic aliases, [1, TopicAliasMax]
	pbuf       []byte                      // PUBLISH properties scratch
	ids        []int                       // subscription identifiers scratch
	lingerErr  error                       // stLinger: why the DISCONNECT was sent
}

func newSession(a *Adapter, c protocols.Conn) *session {
	s := &session{a: a, conn: c}
	if c != nil {
		s.owner = router.Owner(c.ID())
	}
	return s
}

// clientID returns the client identifier, "" before CONNECT. The session
// queue's name holds it, so the session keeps no copy of its own.
func (s *session) clientID() string {
	if s.queue == "" {
		return ""
	}
	return s.queue[len(queuePrefix) : len(s.queue)-len(queueSuffix)]
}

// publisher returns the provenance of the session's publishes, made on
// first use (most devices that only listen never need it); nil when the
// router sets none.
func (s *session) publisher() *router.Publisher {
	if s.pub == nil && s.user != nil {
		s.pub = s.a.cfg.Router.Publisher("mqtt", s.user.Name, s.clientID())
	}
	return s.pub
}

// more returns the session's rare part, allocating it on first use.
func (s *session) more() *rare {
	if s.x == nil {
		s.x = new(rare)
	}
	return s.x
}

// logger returns the connection's logger, with the connection's conn,
// proto and remote attributes. It is built on the first line logged: the
// attributes, formatted in advance, would cost every connection some
// hundreds of bytes, and most connections log nothing but what the
// transport logs for them.
func (s *session) logger() *slog.Logger {
	x := s.more()
	if x.log == nil {
		x.log = s.a.cfg.Log
		if s.conn != nil {
			x.log = x.log.With("conn", s.conn.ID(), "proto", "mqtt", "remote", s.conn.RemoteAddr())
		}
	}
	return x.log
}

// debug reports whether debug lines are logged, so that a connection logs
// its lifecycle at debug level without building its logger otherwise.
func (s *session) debug() bool { return s.a.cfg.Log.Enabled(context.Background(), slog.LevelDebug) }

// channel returns the session's router channel, opening it on first use:
// a connection that never subscribes needs none. Opened once the session
// is connected, it gets the window at once; while resuming, resume sets
// it after restoring.
func (s *session) channel() *router.Channel {
	if s.ch == nil {
		s.ch = s.vhost.NewChannel(s.owner, s)
		if s.state == stConnected {
			s.ch.SetPrefetch(s.prefetch())
		}
	}
	return s.ch
}

// prefetch is the channel's window: the client's, less the restored
// released QoS 2 messages the router does not count.
func (s *session) prefetch() int { return max(1, int(s.window-s.relPending)) }

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
	s.mu.Unlock()
	if wake {
		s.conn.Wake()
	}
}

// Deliver implements router.Handler.
func (s *session) Deliver(d router.Delivery) { s.post(event{kind: evDeliver, d: d}) }

// Cancelled implements router.Handler: a queue the session consumes was
// deleted.
func (s *session) Cancelled(c *router.Consumer) { s.post(event{kind: evCancelled, c: c}) }

// Feed implements protocols.Session.
func (s *session) Feed(in []byte) (int, error) {
	n := 0
	for n < len(in) {
		switch s.state {
		case stClosed, stLinger:
			return len(in), nil
		case stWaiting:
			return n, nil // read on once the session is ours
		}
		if len(s.ops) >= maxPendingOps {
			s.process()
			if len(s.ops) >= maxPendingOps {
				s.blocked = true
				break
			}
		}
		if len(s.out) >= maxUnsent {
			s.unsent = true
			break
		}
		if s.state == stConnected && in[n]>>4 == tPublish && s.holdPublish() {
			break
		}
		if s.state == stConnect && in[n] != tConnect<<4 {
			// [MQTT-3.1.0-1]: the first packet is CONNECT. One byte tells;
			// waiting for the rest of, say, an HTTP request that reads as a
			// long packet would hold the connection until Config.HandshakeTimeout.
			return len(in), errNotConnect
		}
		first, rem, hdr, ok, err := parseHeader(in[n:])
		if err != nil {
			return len(in), s.linger(malformed("remaining length"))
		}
		limit := s.a.cfg.MaxPacketSize
		if s.state == stConnect {
			limit = min(limit, maxUnauthPacket)
		}
		if rem > limit {
			s.logger().Warn("packet too large", "size", rem, "max", limit)
			return len(in), s.linger(errTooLarge)
		}
		if !ok || len(in)-n < hdr+rem {
			break
		}
		// The decoder aliases its input (strings and payloads point into
		// it), so every packet gets its own copy of the borrowed bytes.
		body := make([]byte, rem)
		copy(body, in[n+hdr:n+hdr+rem])
		n += hdr + rem
		s.recv, s.quiet = true, 0
		if err := s.packet(first, body); err != nil {
			return len(in), s.linger(err)
		}
	}
	return n, nil
}

// holdPublish reports whether a PUBLISH must wait for the router's
// resource alarms to clear. Until then the connection's input stays
// unread (up to the transport's inbound limit), so no PUBACK or PUBREC
// goes out and a client stops at its Receive Maximum, as RabbitMQ holds
// MQTT publishers back under its memory and disk alarms; deliveries to
// the connection go on. Holding is checked at every PUBLISH, not pushed
// to every connection, so connections that never publish cost nothing.
func (s *session) holdPublish() bool {
	rt := s.a.cfg.Router
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
			s.logger().Info("publisher resumed: resource alarms cleared")
		}
		return false
	}
	if !s.held {
		s.held = true
		s.logger().Info("publisher held back by a resource alarm", "alarm", a.String())
	}
	return true
}

// packet handles one complete packet; body is owned by the session.
func (s *session) packet(first byte, body []byte) error {
	typ := first >> 4
	if s.state == stConnect {
		if typ != tConnect || !validFlags(first) {
			return errNotConnect
		}
		return s.connect(body)
	}
	if !validFlags(first) {
		return malformed("fixed header flags")
	}
	switch typ {
	case tPublish:
		p, ok := decodePublish(first, body, s.v5)
		if !ok {
			return badPacket("PUBLISH", &p.props)
		}
		return s.publish(&p)
	case tPuback, tPubrec, tPubcomp:
		id, rc, ok := decodeAck(body)
		if !ok {
			return malformed("acknowledgement")
		}
		switch typ {
		case tPuback:
			s.puback(id)
		case tPubrec:
			s.pubrec(id, rc)
		default:
			s.pubcomp(id)
		}
	case tPubrel:
		id, _, ok := decodeAck(body)
		if !ok {
			return malformed("PUBREL")
		}
		o := &op{kind: opPubcomp, id: id}
		if !s.st.hasIn2(id) {
			o.rc = rcPacketIDNotFound // MQTT 5 only
		}
		s.delIn2(id)
		s.ops = append(s.ops, o)
	case tSubscribe:
		var p props
		id, fs, ok := decodeFilters(body, s.v5, true, &p)
		if !ok {
			return badPacket("SUBSCRIBE", &p)
		}
		return s.subscribe(id, fs, &p)
	case tUnsubscribe:
		var p props
		id, fs, ok := decodeFilters(body, s.v5, false, &p)
		if !ok {
			return badPacket("UNSUBSCRIBE", &p)
		}
		s.unsubscribe(id, fs)
	case tPingreq:
		s.out = append(s.out, tPingresp<<4, 0)
	case tDisconnect:
		return s.disconnect(body)
	case tConnect:
		return protoErr("second CONNECT")
	default:
		return protoErr("unexpected packet type")
	}
	return nil
}

// linger answers err, a reason to end a connected MQTT 5 session, with a
// DISCONNECT and keeps reading what the client still sends until it
// closes or lingerTimeout passes (see lingerTimeout); it returns nil then.
// Other errors, and every error of 3.1.1 sessions, come back to end the
// connection at once.
func (s *session) linger(err error) error {
	var de *discErr
	if !s.v5 || s.state != stConnected || !errors.As(err, &de) {
		return err
	}
	s.process() // the acknowledgements that are ready go first
	if s.state != stConnected {
		return err // taken over meanwhile: that close is under way
	}
	s.out = appendDisconnect(s.out, de.rc, de.text, s.cliMax)
	s.state = stLinger
	s.tickAt = time.Time{}
	s.more().lingerErr = err
	s.logger().Info("disconnecting", "reason", de.text)
	return nil
}

func (s *session) disconnect(body []byte) error {
	rc := byte(0)
	if s.v5 {
		var p props
		var ok bool
		if rc, p, ok = decodeDisconnect(body); !ok {
			return badPacket("DISCONNECT", &p)
		}
		if p.hasSessionExpiry {
			switch {
			case s.reqExpiry == 0 && p.sessionExpiry != 0:
				return protoErr("session expiry set on DISCONNECT after 0 on CONNECT") // [MQTT-3.14.2-2]
			case p.sessionExpiry == 0:
				s.persistent = false // the session ends with this connection
			case p.sessionExpiry != s.expiry && s.persistent:
				// MQTT 5 §3.14.2.2.2: the new interval applies from now on.
				s.expiry = min(p.sessionExpiry, maxSessionExpiry)
				if p.sessionExpiry == expiryNever {
					s.expiry = expiryNever
				}
				if q := s.vhost.Queue(s.queue); q != nil {
					q.SetExpires(expiryDuration(s.expiry))
				}
				s.st.expiry = s.expiry
				s.storeState()
			}
		}
	}
	if rc != 0x04 { // 0x04: disconnect with will message
		s.will = nil
	}
	s.state = stClosed
	s.conn.Close(nil)
	return nil
}

// connack queues a CONNACK in the client's version.
// receiveMaximum is the Receive Maximum announced to MQTT 5 clients: the
// most QoS 1 and 2 publishes a client may have unacknowledged; more ends
// the connection with 0x93 (for 3.1.1, a plain close).
const receiveMaximum = 1024

func (s *session) connack(v5 bool, sp bool, rc byte, props []byte) {
	flags := byte(0)
	if sp {
		flags = 1
	}
	if !v5 {
		s.out = append(s.out, tConnack<<4, 2, flags, rc)
		return
	}
	s.out = append(s.out, tConnack<<4)
	s.out = appendVarint(s.out, 2+varintLen(len(props))+len(props))
	s.out = append(s.out, flags, rc)
	s.out = appendVarint(s.out, len(props))
	s.out = append(s.out, props...)
}

// refuse answers CONNECT with return code rc3 (3.1/3.1.1) or reason rc5
// (5.0, with why as Reason String unless it is "") and ends the
// connection.
func (s *session) refuse(v5 bool, rc3, rc5 byte, why string) error {
	s.logger().Warn("connection refused", "reason", why)
	if v5 {
		var props []byte
		if why != "" && len(why) <= 1024 {
			props = appendPropStr(nil, 0x1F, why)
		}
		s.connack(true, false, rc5, props)
	} else {
		s.connack(false, false, rc3, nil)
	}
	s.state = stClosed
	return errRefused
}

// refuseConn answers CONNECT on a connection the transport refused
// (protocols.Conn.Refusal: too many connections) before anything else is
// done for it, no login and no session takeover: MQTT 3.1.1's 0x03 Server
// unavailable, MQTT 5's 0x97 Quota exceeded ("an implementation or
// administrative imposed limit has been exceeded") with the limit as
// Reason String. The transport logs refusals in bursts, so this does not.
func (s *session) refuseConn(v5 bool, err error) error {
	if v5 {
		var props []byte
		var le *protocols.ConnLimitError
		if errors.As(err, &le) {
			props = appendPropStr(nil, 0x1F, "connection limit ("+strconv.Itoa(le.Limit)+") is reached")
		}
		s.connack(true, false, rcQuotaExceeded, props)
	} else {
		s.connack(false, false, 0x03, nil)
	}
	s.state = stClosed
	return err
}

func (s *session) connect(body []byte) error {
	pk, ok := decodeConnect(body)
	v := pk.level
	v5 := v == 5
	if pk.name != "" && !pk.supported() {
		return s.refuse(v5, 0x01, rcUnsupportedVersion, "unsupported protocol "+pk.name+" level "+strconv.Itoa(int(v)))
	}
	if !ok {
		if v5 {
			if pk.props.proto || pk.willProps.proto {
				return s.refuse(true, 0, rcProtocolError, "protocol error in CONNECT properties")
			}
			return s.refuse(true, 0, rcMalformed, "malformed CONNECT")
		}
		return errRefused
	}
	if s.conn != nil {
		if err := s.conn.Refusal(); err != nil {
			return s.refuseConn(v5, err)
		}
	}
	if v5 && pk.props.authMethod {
		return s.refuse(true, 0, rcBadAuthMethod, "enhanced authentication is not supported")
	}
	cid := pk.clientID
	if cid == "" {
		if v == 3 || (!v5 && !pk.clean()) {
			return s.refuse(v5, 0x02, rcBadClientID, "empty client id")
		}
	}
	user, pass := "guest", "guest" // RabbitMQ's default for anonymous clients
	if pk.hasUser() {
		user, pass = string(pk.user), string(pk.pass)
	}
	u, err := s.a.cfg.Router.Authenticate(user, pass, s.loopback())
	if err != nil {
		return s.refuse(v5, 0x04, rcBadCredentials, err.Error())
	}
	vh := s.a.cfg.Router.VHost(s.a.cfg.VHost)
	if vh == nil || !u.CanAccess(s.a.cfg.VHost) {
		return s.refuse(v5, 0x05, rcNotAuthorized, "no access to vhost "+s.a.cfg.VHost)
	}
	if cid == "" {
		cid = genClientID()
	}
	s.v5, s.vhost, s.user = v5, vh, u
	s.queue = sessionQueue(cid)
	cid = s.clientID() // the decoded copy can go
	s.topics = vh.TopicAccess(u.Name, s.a.cfg.Exchange, cid)
	if pk.will() {
		if err := s.topics.Check(s.a.topics.key(pk.willTopic), false); err != nil {
			// As Mosquitto does: a will that could not be published refuses
			// the connection, rather than being dropped when it is due.
			rc, reason := s.refusal(err, "will", pk.willTopic)
			return s.refuse(v5, 0x05, rc, reason)
		}
	}
	prev, wait := s.a.register(cid, s)
	s.registered = true
	if prev != nil {
		// Session takeover (MQTT 3.1.1 §3.1.4, 5.0 §3.1.4): the old
		// connection is closed; this one goes on once it has released the
		// session.
		s.logger().Info("session taken over", "client", cid, "old_conn", uint64(prev.owner))
		prev.post(event{kind: evTakeover})
	}
	if wait {
		// A copy waits with the session: pk itself stays off the heap
		// for the usual CONNECT, which does not wait.
		s.pk = new(connectPkt)
		*s.pk = pk
		s.state = stWaiting
		return nil
	}
	return s.resume(&pk)
}

// resume finishes the CONNECT once the session is this connection's: it
// sets up the session queue and state and sends the CONNACK.
func (s *session) resume(pk *connectPkt) error {
	cid, vh, v5 := s.clientID(), s.vhost, s.v5
	s.a.cancelWill(cid) // MQTT 5 §3.1.3.2.2: a delayed will waits no more
	if pk.will() {
		w := &willMsg{topic: pk.willTopic, qos: pk.willQoS(), retain: pk.willRetain(), app: pk.willProps.app, payload: pk.willPayload}
		w.app.user = s.publisher().Stamp(slices.Clone(w.app.user))
		if v5 {
			w.delay = pk.willProps.willDelay
		}
		s.will = w
	}
	keepalive := time.Duration(pk.keepalive) * time.Second
	var props []byte
	if v5 && s.a.cfg.MaxKeepAlive > 0 && (keepalive == 0 || keepalive > s.a.cfg.MaxKeepAlive) {
		keepalive = max(s.a.cfg.MaxKeepAlive.Truncate(time.Second), time.Second)
		ka := uint16(min(keepalive/time.Second, 65535))
		props = append(props, 0x13, byte(ka>>8), byte(ka))
	}
	s.keepalive = uint32(min(keepalive/time.Second, math.MaxUint32))
	s.window = int32(s.a.cfg.MaxInflight)
	s.problemInfo = true
	if v5 {
		if rm := int32(pk.props.receiveMax); rm > 0 && rm < s.window {
			s.window = rm
		}
		s.cliMax = pk.props.maxPacket
		s.problemInfo = !pk.props.hasReqProblem || pk.props.reqProblem == 1
		s.outAliasMax = pk.props.topicAliasMax
	}

	// Session lifetime: MQTT 3.1.1 clean session 0 never expires; MQTT 5
	// lives Session Expiry Interval seconds after the connection ends.
	cleanStart := pk.clean()
	if v5 {
		s.reqExpiry = pk.props.sessionExpiry
		s.expiry = s.reqExpiry
		if s.expiry != expiryNever && s.expiry > maxSessionExpiry {
			s.expiry = maxSessionExpiry
		}
	} else if !cleanStart {
		s.reqExpiry, s.expiry = expiryNever, expiryNever
	}
	s.persistent = s.expiry > 0
	q := vh.Queue(s.queue)
	st := s.a.takeState(cid)
	if cleanStart || q == nil || q.Exclusive {
		if q != nil {
			if _, err := vh.DeleteQueue(s.queue, false, false, s.owner, nil); err != nil {
				return s.refuse(v5, 0x02, rcBadClientID, "client id in use: "+err.Error())
			}
			q = nil
		}
		if st != nil {
			s.a.discardState(vh, cid, st, true)
			st = nil
		}
	}
	present := q != nil
	reExpire := present && s.persistent && q.Expires() != expiryDuration(s.expiry)
	if v5 && s.expiry != s.reqExpiry {
		props = append(props, 0x11, byte(s.expiry>>24), byte(s.expiry>>16), byte(s.expiry>>8), byte(s.expiry))
	}
	s.stored = st != nil
	if st == nil {
		st = newState()
		st.expiry = s.expiry
	}
	s.st = st
	if reExpire || present && s.persistent && st.expiry != s.expiry {
		st.expiry = s.expiry
		s.storeState() // for recover: SetExpires is not stored
	}
	if s.persistent && !s.stored {
		s.a.keepState(cid, st)
		s.stored = true
	}
	if s.persistent || present {
		if err := s.ensureQueue(); err != nil {
			if s.stored && !present {
				// Kept just now for a queue that could not be made: an
				// entry per refused client id would pile up.
				s.a.discardState(vh, cid, st, true)
				s.stored = false
			}
			if errors.Is(err, router.ErrQueueLimit) {
				return s.refuse(v5, 0x03, rcQuotaExceeded, err.Error())
			}
			return s.refuse(v5, 0x03, rcImplementation, err.Error())
		}
	}
	if reExpire {
		// The CONNECT's interval is the session's from now on (MQTT 5
		// §3.1.2.11.2); RabbitMQ updates the queue's x-expires likewise.
		// Only now that the session consumes its queue: SetExpires counts
		// from the queue's last use, so a shorter interval set on an
		// unused queue could expire the session being resumed at once.
		q.SetExpires(expiryDuration(s.expiry))
	}
	if present && st.subs.len() == 0 {
		s.adoptBindings()
	}
	s.restore()
	if s.ch != nil {
		s.ch.SetPrefetch(s.prefetch())
	}

	if v5 {
		if cid != pk.clientID {
			props = appendPropStr(props, 0x12, cid) // assigned client identifier
		}
		if pk.props.reqResponse == 1 {
			props = appendPropStr(props, 0x1A, "response/"+cid) // Response Information
		}
		mps := uint32(s.a.cfg.MaxPacketSize)
		props = append(props,
			0x21, byte(receiveMaximum>>8), byte(receiveMaximum&0xff), // receive maximum
			0x25, 1, // retain available
			0x27, byte(mps>>24), byte(mps>>16), byte(mps>>8), byte(mps), // maximum packet size
			0x29, 1, // subscription identifiers available
			0x2A, 1, // shared subscriptions available
		)
		if tam := s.a.cfg.TopicAliasMax; tam > 0 {
			props = append(props, 0x22, byte(tam>>8), byte(tam))
		}
	}
	s.connack(v5, present, 0, props)
	for pid, e := range s.pids {
		if e.released {
			s.out = appendAck(s.out, tPubrel<<4|2, pid, false, 0)
		}
	}
	s.state = stConnected
	s.tickAt = time.Time{}
	s.holding = true
	if s.debug() {
		user := "guest"
		if pk.hasUser() {
			user = string(pk.user)
		}
		s.logger().Debug("connection opened", "client", cid, "user", user, "clean", cleanStart, "version", pk.level, "expiry", s.expiry)
	}
	return nil
}

// restore takes up the session's subscriptions and outbound QoS 2
// messages from its previous connection.
func (s *session) restore() {
	s.rebuildSubs()
	for _, sb := range s.st.subs.list {
		if sb.shared() {
			if err := s.consumeShared(sb, nil, 0); err != nil {
				s.logger().Warn("cannot resume shared subscription", "filter", sb.filter, "err", err)
			}
		}
	}
	for pid, rec := range s.st.out2 {
		e := outMsg{qos: 2, released: rec.released, counted: rec.released, queue: rec.queue, seq: rec.seq}
		s.setPID(pid, e)
		if rec.released {
			s.relPending++
		}
		// A released message is normally gone from its queue (Closed
		// acknowledged it), but after a crash that acknowledgement may be
		// lost and the queue delivers it again: assignPID then ties the
		// delivery to the id, so it is settled with the PUBCOMP instead of
		// being sent as a new PUBLISH.
		x := s.more()
		if x.resend == nil {
			x.resend = make(map[resendKey]uint16)
		}
		x.resend[resendKey{rec.queue, rec.seq}] = pid
	}
}

// adoptBindings makes subscriptions of the session queue's bindings on the
// MQTT exchange: a session kept by a broker that did not record
// subscriptions (or whose record was lost) goes on receiving what it is
// bound to, at QoS 1, the most that broker granted.
func (s *session) adoptBindings() {
	x := s.vhost.Exchange(s.a.cfg.Exchange)
	if x == nil {
		return
	}
	for _, b := range x.Bindings() {
		if b.Queue == nil || b.Queue.Name != s.queue {
			continue
		}
		f := s.a.topics.filter(b.Key)
		if sb, ok := newSubscription(s.a.topics, f, 1, 0); ok && !sb.shared() {
			s.st.subs.put(sb)
		}
	}
	if s.st.subs.len() > 0 {
		s.logger().Info("subscriptions taken from the session queue's bindings", "client", s.clientID(), "count", s.st.subs.len())
	}
}

func genClientID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "junction-" + hex.EncodeToString(b[:])
}

func (s *session) loopback() bool {
	if s.conn == nil {
		return false
	}
	host, _, err := net.SplitHostPort(s.conn.RemoteAddr())
	if err != nil {
		host = s.conn.RemoteAddr()
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ensureQueue declares the session's queue (exclusive for sessions that
// end with the connection, durable with x-expires for the others) unless
// it exists, and consumes it.
func (s *session) ensureQueue() error {
	if s.consumer != nil {
		return nil
	}
	if s.vhost.Queue(s.queue) == nil {
		o := router.QueueOptions{Exclusive: !s.persistent, Durable: s.persistent}
		if s.persistent && s.expiry != expiryNever {
			o.Args = router.Table{{Key: "x-expires", Value: int64(s.expiry) * 1000}}
		}
		if n := s.a.cfg.MaxQueuedMessages; n > 0 {
			o.Args = append(o.Args, router.Field{Key: "x-max-length", Value: int64(n)})
		}
		if _, err := s.vhost.DeclareQueue(s.queue, o, false, s.owner, nil); err != nil {
			return err
		}
	}
	c, err := s.channel().Consume(s.queue, consumerTag, router.ConsumeOptions{})
	if err != nil {
		return err
	}
	s.consumer = c
	return nil
}

// message builds the router message of an inbound publish. Messages
// without headers of their own share one of the session's prebuilt
// header tables, so a publish allocates nothing for them.
func (s *session) message(topic string, qos byte, retain bool, ap *appProps, body []byte) *router.Message {
	cid := ""
	if s.noLocal > 0 {
		cid = s.clientID()
	}
	var h router.Table
	if plainApp(ap) {
		r := 0
		if retain {
			r = 1
		}
		if s.hdr == nil {
			s.hdr = new([3][2]router.Table)
		}
		if h = s.hdr[qos][r]; h == nil {
			h = buildHeaders(qos, retain, cid, ap, s.publisher())
			s.hdr[qos][r] = h
		}
	} else {
		h = buildHeaders(qos, retain, cid, ap, s.publisher())
	}
	m := newMessage(s.a.topics, topic, qos, ap, body, h)
	for _, f := range ap.user {
		if f.Key == upUserID && f.Value == s.user.Name {
			// AMQP's rule: user_id is the publisher's user or nothing.
			m.Properties.UserID, m.Properties.Flags = s.user.Name, m.Properties.Flags|router.HasUserID
		}
	}
	return m
}

func (s *session) publish(pk *publishPkt) error {
	if limit := s.a.cfg.MaxMessageSize; limit > 0 && int64(len(pk.payload)) > limit {
		s.logger().Warn("message too large", "size", len(pk.payload), "max", limit)
		return errTooLarge
	}
	topic := pk.topic
	if pk.props.hasTopicAlias {
		a := int(pk.props.topicAlias)
		if a == 0 || a > s.a.cfg.TopicAliasMax {
			return &discErr{rcTopicAliasInvalid, "topic alias invalid"}
		}
		x := s.more()
		if x.aliases == nil {
			x.aliases = make([]string, s.a.cfg.TopicAliasMax+1)
		}
		if topic == "" {
			if topic = x.aliases[a]; topic == "" {
				return protoErr("unknown topic alias")
			}
		} else if validTopic(topic) {
			x.aliases[a] = topic
		}
	}
	switch {
	case topic == "":
		// MQTT 5 §3.3.2.1: a protocol error, not an invalid name.
		return protoErr("empty topic name without a topic alias")
	case !validTopic(topic):
		return &discErr{rcTopicNameInvalid, "invalid topic name"}
	case pk.props.hasSubID:
		return protoErr("subscription identifier in PUBLISH")
	}
	qos := pk.qos
	var o *op
	if qos > 0 && len(s.st.in2)+int(s.inQoS1) >= receiveMaximum && !(qos == 2 && s.st.hasIn2(pk.id)) {
		// More unacknowledged QoS 1 and 2 publishes than the Receive
		// Maximum we announced (MQTT 5 §3.3.4): for 3.1.1 the same bound
		// keeps a client from growing our state without end.
		return &discErr{rcReceiveMaxExceeded, "more than " + strconv.Itoa(receiveMaximum) + " unacknowledged QoS 1 and 2 publishes"}
	}
	if qos == 1 {
		s.inQoS1++
	}
	if qos > 0 {
		o = &op{kind: opPuback, id: pk.id}
		if qos == 2 {
			o.kind = opPubrec
			if loaded, ok := s.st.in2[pk.id]; ok && (pk.dup || !loaded) {
				// A resent PUBLISH whose PUBREL has not come yet, on this
				// connection or, for a persistent session, an earlier one:
				// the message is already routed; acknowledge again without
				// publishing ([MQTT-4.3.3-9] / 3.1.1 §4.3.3 method B). An
				// id read from the store may be one whose PUBREL's delete
				// a crash lost: only a DUP PUBLISH is a resend for it.
				s.ops = append(s.ops, o)
				return nil
			}
			s.st.putIn2(pk.id, false)
		}
		s.ops = append(s.ops, o)
	}
	retain := pk.retain
	m := s.message(topic, qos, retain, &pk.props.app, pk.payload)
	if s.topics != nil {
		if err := s.topics.Check(m.RoutingKey, false); err != nil {
			// MQTT 5: a negative PUBACK or PUBREC; QoS 0 and MQTT 3.1.1
			// have none, so the publish is acknowledged and dropped, as
			// Mosquitto does (refusal logs it).
			rc, reason := s.refusal(err, "publish", topic)
			if o != nil && s.v5 {
				o.rc, o.reason = rc, reason
			}
			return nil
		}
	}
	if qos == 2 && s.persistent && s.stored {
		// Before the message's own commit, so that it is durable when
		// that commit is (see the 'i' record in state.go).
		s.a.commit([]storage.Op{storage.PutMeta(storage.KindSession, s.a.stateKey(s.clientID(), 'i', pk.id), storage.Bytes(in2Record))}, false, nil)
	}
	if retain {
		rm := &retainedMsg{topic: topic, qos: qos, app: pk.props.app, payload: pk.payload}
		rm.app.user = s.publisher().Stamp(slices.Clone(rm.app.user)) // kept with it
		rm.app.hasExpiry = false
		if ap := &pk.props.app; ap.hasExpiry && ap.expiry > 0 {
			rm.expiresAt = s.a.cfg.Now().UnixNano() + min(int64(ap.expiry)*1000, maxExpiryMs)*1e6
		}
		var done func(error)
		if o != nil {
			o.waiting++
			done = func(err error) { s.post(event{kind: evDone, op: o, err: err}) }
		}
		if err := s.a.retained.set(rm, qos > 0, done); err != nil {
			if o != nil {
				o.waiting--
			}
			if s.v5 && o != nil {
				o.rc = rcQuotaExceeded // refused: not routed either
				return nil
			}
			if !s.warned {
				s.warned = true
				s.logger().Warn("retained message not kept", "topic", topic, "err", err)
			}
		}
	}
	x := s.a.cfg.Exchange
	if strings.HasPrefix(m.RoutingKey, router.ReplyQueuePrefix) {
		// An answer to an AMQP requester's direct reply-to (its
		// reply_to reached us as the Response Topic): to the queue by
		// name, as an AMQP responder's would go.
		x = ""
	}
	if o == nil {
		if _, err := s.vhost.Publish(x, m, nil); err != nil {
			s.logger().Warn("publish failed", "err", err)
		}
		return nil
	}
	o.waiting++
	routed, err := s.vhost.Publish(x, m, func(err error) {
		s.post(event{kind: evDone, op: o, err: err})
	})
	if err != nil {
		o.waiting--
		o.err = err
	} else {
		o.noMatch = !routed
	}
	return nil
}

// in2Record is the value of an inbound QoS 2 id's record; see state.go.
var in2Record = []byte{stateVersion}

// delIn2 forgets inbound QoS 2 packet id pid: its PUBREL came, or its
// PUBREC refused the message (nothing routed, the client may reuse the id).
func (s *session) delIn2(pid uint16) {
	if !s.st.hasIn2(pid) {
		return
	}
	delete(s.st.in2, pid)
	if s.persistent && s.stored {
		s.a.commit([]storage.Op{storage.DeleteMeta(storage.KindSession, s.a.stateKey(s.clientID(), 'i', pid))}, false, nil)
	}
}

// Output implements protocols.Session.
func (s *session) Output(dst [][]byte) [][]byte {
	s.process()
	if len(s.out) == 0 {
		return dst
	}
	s.quiet = 0
	dst = append(dst, s.out)
	s.out, s.prev = s.prev[:0], s.out
	if s.unsent {
		s.unsent = false
		s.conn.Wake() // have the transport offer the held-back input again
	}
	return dst
}

// process handles posted events and sends the acknowledgements that are
// ready.
func (s *session) process() {
	s.mu.Lock()
	s.work, s.inbox = s.inbox, s.work[:0]
	s.mu.Unlock()
	if len(s.work) > 0 {
		s.quiet = 0
	}
	for i := range s.work {
		e := &s.work[i]
		switch e.kind {
		case evDeliver:
			s.deliver(&e.d)
		case evCancelled:
			if e.c == s.consumer {
				s.consumer = nil
			}
			if s.x != nil {
				for q, c := range s.x.sharedCons {
					if c == e.c {
						delete(s.x.sharedCons, q)
					}
				}
			}
		case evTakeover:
			if s.state == stLinger {
				s.state = stClosed
				s.conn.Close(errTakenOver)
			}
			if s.state == stConnected || s.state == stWaiting {
				if s.v5 && s.state == stConnected {
					s.out = appendDisconnect(s.out, rcSessionTakenOver, "", s.cliMax)
				}
				s.state = stClosed
				s.conn.Close(errTakenOver)
			}
		case evAlarm:
			// Nothing to do: the wake that brought the event re-offers the
			// held input to Feed, which looks at the alarms again.
		case evResume:
			if s.state == stWaiting {
				pk := s.pk
				s.pk = nil
				if err := s.resume(pk); err != nil {
					s.state = stClosed
					s.conn.Close(err)
				}
				s.conn.Wake() // read what the client sent meanwhile
			}
		case evDone:
			o := e.op
			o.waiting--
			if e.err != nil {
				switch o.kind {
				case opPuback, opPubrec:
					o.err = e.err
				case opSuback, opUnsuback:
					if e.idx < 0 {
						for i := range o.codes {
							o.codes[i] = rcUnspecified
						}
					} else {
						o.codes[e.idx] = rcUnspecified
					}
				}
			}
		}
		*e = event{}
	}
	s.flushOps()
}

func (s *session) flushOps() {
	for len(s.ops) > 0 && s.ops[0].waiting <= 0 && s.state == stConnected {
		o := s.ops[0]
		s.ops[0] = nil
		s.ops = s.ops[1:]
		switch o.kind {
		case opPuback, opPubrec:
			if o.kind == opPuback {
				s.inQoS1--
			}
			rc, reason := o.rc, o.reason
			switch {
			case o.err != nil:
				s.logger().Warn("publish failed", "id", o.id, "err", o.err)
				if o.kind == opPubrec {
					s.delIn2(o.id) // not routed: a resend must be
				}
				if !s.v5 {
					// MQTT 3.1.1 has no negative acknowledgement.
					s.state = stClosed
					s.conn.Close(errPublishV3)
					return
				}
				rc, reason = rcUnspecified, "message not stored"
			case rc == rcQuotaExceeded:
				reason = "retained message store full"
			case o.noMatch && s.v5:
				rc = rcNoMatchingSubs
			}
			first := byte(tPuback << 4)
			if o.kind == opPubrec {
				first = tPubrec << 4
				if rc >= 0x80 {
					s.delIn2(o.id)
				}
			}
			if s.v5 && s.problemInfo && reason != "" {
				s.out = appendAckReason(s.out, first, o.id, rc, reason, s.cliMax)
			} else {
				s.out = appendAck(s.out, first, o.id, s.v5, rc)
			}
		case opPubcomp:
			s.out = appendAck(s.out, tPubcomp<<4, o.id, s.v5, o.rc)
		case opSuback, opUnsuback:
			first := byte(tSuback << 4)
			if o.kind == opUnsuback {
				first = tUnsuback << 4
			}
			if o.kind == opUnsuback && !s.v5 {
				s.out = append(s.out, first, 2, byte(o.id>>8), byte(o.id))
				break
			}
			var props []byte
			if s.v5 && s.problemInfo && o.reason != "" && len(o.reason) <= 65535 {
				props = appendPropStr(nil, 0x1F, o.reason) // Reason String
			}
			n := 2 + len(o.codes)
			if s.v5 {
				n += varintLen(len(props)) + len(props)
				if s.cliMax > 0 && uint64(1+varintLen(n)+n) > uint64(s.cliMax) {
					props = nil // MQTT 5 §3.1.2.11.4: the Reason String goes first
					n = 3 + len(o.codes)
				}
			}
			s.out = append(s.out, first)
			s.out = appendVarint(s.out, n)
			s.out = append(s.out, byte(o.id>>8), byte(o.id))
			if s.v5 {
				s.out = appendVarint(s.out, len(props))
				s.out = append(s.out, props...)
			}
			s.out = append(s.out, o.codes...)
			for i, sb := range o.retained {
				s.sendRetained(sb)
				o.retained[i] = nil
			}
		}
	}
	if s.blocked && len(s.ops) < maxPendingOps {
		s.blocked = false
		s.conn.Wake() // have the transport offer the held-back input again
	}
}

// trimAfter is how many Ticks without traffic make a connection give back
// its buffers: a whole tick interval without any (1 to 2 s at the
// broker's default tick of 1 s).
const trimAfter = 2

// trim gives back the buffers of a connection that has had no traffic for
// trimAfter Ticks: an idle connection would otherwise keep its largest
// batch of events and output, and its maps of packet ids, for good. A busy
// one keeps them, so steady traffic does not allocate.
func (s *session) trim() {
	if s.quiet < trimAfter {
		s.quiet++
		return
	}
	if s.quiet > trimAfter {
		return // trimmed already
	}
	s.quiet++
	s.work, s.prev = nil, nil
	if len(s.out) == 0 {
		s.out = nil
	}
	if len(s.ops) == 0 {
		s.ops = nil
	}
	if len(s.pids) == 0 {
		s.pids = nil
	}
	if len(s.st.in2) == 0 {
		s.st.in2 = nil
	}
	s.mu.Lock()
	if len(s.inbox) == 0 {
		s.inbox = nil
	}
	s.mu.Unlock()
}

// Tick implements protocols.Session: the CONNECT deadline and keepalive
// (1.5 times the client's interval, MQTT 3.1.1 §3.1.2.10).
func (s *session) Tick(now time.Time) error {
	switch s.state {
	case stConnect, stWaiting:
		if s.tickAt.IsZero() {
			s.tickAt = now
		} else if now.Sub(s.tickAt) > s.a.cfg.HandshakeTimeout {
			return errConnectTimeout
		}
	case stLinger:
		if s.tickAt.IsZero() {
			s.tickAt = now
		} else if now.Sub(s.tickAt) >= lingerTimeout {
			return s.x.lingerErr
		}
	case stConnected:
		s.trim()
		if s.keepalive == 0 {
			return nil
		}
		keepalive := time.Duration(s.keepalive) * time.Second
		// A connection held back by a resource alarm has its PINGREQs
		// unread behind the PUBLISH: the broker, not the client, is silent.
		if s.recv || s.held || s.tickAt.IsZero() {
			s.tickAt, s.recv = now, false
		} else if now.Sub(s.tickAt) > keepalive*3/2 {
			s.logger().Info("keepalive timeout", "keepalive", keepalive)
			return errKeepalive
		}
	}
	return nil
}

// Fail implements protocols.Session: MQTT 5 clients get a DISCONNECT with
// the reason; 3.1.1 has no server DISCONNECT, the connection just closes.
func (s *session) Fail(err error) []byte {
	if s.state != stConnected || !s.v5 {
		s.state = stClosed
		return nil
	}
	s.state = stClosed
	rc := byte(rcUnspecified)
	reason := ""
	var de *discErr
	switch {
	case errors.As(err, &de):
		rc, reason = de.rc, de.text
	case errors.Is(err, protocols.ErrShutdown):
		rc = rcServerShutdown
	case errors.Is(err, protocols.ErrInboundLimit):
		rc = rcPacketTooLarge
	case errors.Is(err, protocols.ErrSlowConsumer):
		// MQTT 5 has no code for a client that does not read; 0x97 Quota
		// exceeded says an administrative limit was passed, here the
		// connection's outbound buffer (transport.max_outbound), and tells
		// the client that reconnecting at once may meet the same fate,
		// which 0x89 Server busy or 0x88 Server unavailable would not.
		rc, reason = rcQuotaExceeded, "slow consumer: outbound buffer limit reached"
	case errors.Is(err, protocols.ErrInternal):
		rc = rcImplementation
	}
	return appendDisconnect(nil, rc, reason, s.cliMax)
}

// Closed implements protocols.Session: unacknowledged deliveries go back
// to their queues, the will is published (or scheduled), and a session
// that ends with the connection is deleted. A taken-over session passes
// the state on to its successor last.
func (s *session) Closed(err error) {
	if s.closed {
		return
	}
	s.closed = true
	s.mu.Lock()
	s.dead = true
	s.inbox = nil
	s.mu.Unlock()
	s.work = nil
	s.state = stClosed
	if s.held {
		s.a.unhold(s)
	}
	if s.holding {
		// A released QoS 2 message is the client's: only its PUBREL is
		// left to do, so it leaves its queue instead of being requeued.
		for _, e := range s.pids {
			if e.released && e.tag != 0 {
				_ = s.ch.Ack(e.tag, false)
			}
		}
		// An inbound QoS 2 message known not to be routed (refused, or
		// its commit failed) before its PUBREC went out must be taken
		// again when the client resends it. One whose commit is still
		// under way keeps its id: it was most likely routed.
		for _, o := range s.ops {
			if o.kind == opPubrec && o.waiting <= 0 && (o.err != nil || o.rc >= 0x80) {
				s.delIn2(o.id)
			}
		}
	}
	if s.ch != nil {
		s.ch.Close()
	}
	if s.holding {
		s.holding = false
		if w := s.will; w != nil {
			s.will = nil
			delay := time.Duration(0)
			if s.persistent {
				// MQTT 5 §3.1.3.2.2: at the delay or when the session
				// ends, whichever comes first.
				delay = time.Duration(min(w.delay, s.expiry)) * time.Second
			}
			if delay > 0 {
				s.a.scheduleWill(s.vhost, s.clientID(), w, delay)
			} else {
				s.a.publishWill(s.vhost, s.clientID(), w)
			}
		}
		if !s.persistent {
			if q := s.vhost.Queue(s.queue); q != nil && !q.Exclusive {
				_, _ = s.vhost.DeleteQueue(s.queue, false, false, s.owner, nil)
			}
			s.a.discardState(s.vhost, s.clientID(), s.st, s.stored)
		}
	}
	if s.vhost != nil {
		s.vhost.OwnerGone(s.owner)
	}
	if s.registered {
		if next := s.a.release(s.clientID(), s); next != nil {
			next.post(event{kind: evResume})
		}
	}
	if s.debug() {
		s.logger().Debug("connection closed", "client", s.clientID(), "err", err)
	}
}
