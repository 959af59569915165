package mqtt

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/junction-broker/junction/protocols"
	"github.com/junction-broker/junction/router"
	"github.com/junction-broker/junction/storage"
)

const (
	connectTimeout = 10 * time.Second // RabbitMQ's handshake timeout
	// maxPendingOps bounds acknowledgements waiting for their work
	// (storage commits); beyond it Feed stops taking packets.
	maxPendingOps = 1024

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
type session struct {
	a     *Adapter
	cfg   *Config
	conn  protocols.Conn
	log   *slog.Logger
	owner router.Owner

	state       connState
	v5          bool
	clientID    string
	registered  bool // in the adapter's session maps
	holding     bool // CONNACK sent: the session state is this connection's
	closed      bool
	user        *router.User
	vhost       *router.VHost
	topics      *router.TopicAccess // the user's topic permissions; nil: all allowed
	refusals    int                 // publishes and filters refused by topics, for logging
	queue       string
	ch          *router.Channel
	consumer    *router.Consumer
	window      int    // Receive Maximum towards the client
	cliMax      uint32 // the client's Maximum Packet Size (MQTT 5), 0: none
	problemInfo bool   // MQTT 5 Request Problem Information
	pk          *connectPkt
	will        *willMsg // published if the connection ends without DISCONNECT

	st         *sessState
	persistent bool   // the session outlives the connection
	stored     bool   // st is in the adapter's states (and maybe the store)
	expiry     uint32 // Session Expiry Interval in effect
	reqExpiry  uint32 // as the CONNECT asked
	plain      []*subscription
	sharedQ    map[string]*subscription // shared subscriptions by queue
	sharedCons map[string]*router.Consumer
	noLocal    int // subscriptions with No Local
	hdrCache   [3][2]router.Table

	aliases     []string          // inbound topic aliases, [1, TopicAliasMax]
	outAliasMax int               // the client's Topic Alias Maximum (MQTT 5)
	outAliases  map[string]uint16 // outbound topic aliases by routing key

	lingerErr error     // stLinger: why the DISCONNECT was sent
	lingerAt  time.Time // stLinger: the first tick since

	pids       map[uint16]outMsg // outbound QoS 1 and 2 packet ids
	resend     map[resendKey]uint16
	relPending int // restored released QoS 2 ids: window the router does not see
	lastPID    uint16
	qos2       map[uint16]bool // inbound QoS 2 ids between PUBLISH and PUBREL
	inQoS1     int             // inbound QoS 1 publishes not yet PUBACKed
	ops        []*op
	blocked    bool // Feed stopped taking packets: too many pending ops
	warned     bool // retained quota warning logged

	out, prev []byte
	pbuf      []byte // PUBLISH properties scratch
	ids       []int  // subscription identifiers scratch
	rscratch  []*retainedMsg

	keepalive time.Duration
	tick0     time.Time
	lastRecv  time.Time
	recv      bool

	work []event

	mu    sync.Mutex // guards the fields below; below all router locks
	inbox []event
	dead  bool
}

func newSession(a *Adapter, c protocols.Conn) *session {
	s := &session{
		a:          a,
		cfg:        &a.cfg,
		conn:       c,
		pids:       make(map[uint16]outMsg),
		qos2:       make(map[uint16]bool),
		sharedQ:    make(map[string]*subscription),
		sharedCons: make(map[string]*router.Consumer),
		log:        a.cfg.Log,
	}
	if c != nil {
		s.owner = router.Owner(c.ID())
		s.log = a.cfg.Log.With("conn", c.ID(), "proto", "mqtt", "remote", c.RemoteAddr())
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
		if s.state == stConnect && in[n] != tConnect<<4 {
			// [MQTT-3.1.0-1]: the first packet is CONNECT. One byte tells;
			// waiting for the rest of, say, an HTTP request that reads as a
			// long packet would hold the connection until connectTimeout.
			return len(in), errNotConnect
		}
		first, rem, hdr, ok, err := parseHeader(in[n:])
		if err != nil {
			return len(in), s.linger(malformed("remaining length"))
		}
		limit := s.cfg.MaxPacketSize
		if s.state == stConnect {
			limit = min(limit, maxUnauthPacket)
		}
		if rem > limit {
			s.log.Warn("packet too large", "size", rem, "max", limit)
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
		s.recv = true
		if err := s.packet(first, body); err != nil {
			return len(in), s.linger(err)
		}
	}
	return n, nil
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
			return malformed("PUBLISH")
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
		if !s.qos2[id] {
			o.rc = rcPacketIDNotFound // MQTT 5 only
		}
		delete(s.qos2, id)
		s.ops = append(s.ops, o)
	case tSubscribe:
		var p props
		id, fs, ok := decodeFilters(body, s.v5, true, &p)
		if !ok {
			return malformed("SUBSCRIBE")
		}
		return s.subscribe(id, fs, &p)
	case tUnsubscribe:
		var p props
		id, fs, ok := decodeFilters(body, s.v5, false, &p)
		if !ok {
			return malformed("UNSUBSCRIBE")
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
	s.lingerErr = err
	s.log.Info("disconnecting", "reason", de.text)
	return nil
}

func (s *session) disconnect(body []byte) error {
	rc := byte(0)
	if s.v5 {
		var p props
		var ok bool
		if rc, p, ok = decodeDisconnect(body); !ok {
			return malformed("DISCONNECT")
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
	s.log.Warn("connection refused", "reason", why)
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

func (s *session) connect(body []byte) error {
	pk, ok := decodeConnect(body)
	v := pk.level
	v5 := v == 5
	if pk.name != "" && !pk.supported() {
		return s.refuse(v5, 0x01, rcUnsupportedVersion, "unsupported protocol "+pk.name+" level "+strconv.Itoa(int(v)))
	}
	if !ok {
		if v5 {
			return s.refuse(true, 0, rcMalformed, "malformed CONNECT")
		}
		return errRefused
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
	u, err := s.cfg.Router.Authenticate(user, pass, s.loopback())
	if err != nil {
		return s.refuse(v5, 0x04, rcBadCredentials, err.Error())
	}
	vh := s.cfg.Router.VHost(s.cfg.VHost)
	if vh == nil || !u.CanAccess(s.cfg.VHost) {
		return s.refuse(v5, 0x05, rcNotAuthorized, "no access to vhost "+s.cfg.VHost)
	}
	if cid == "" {
		cid = genClientID()
	}
	s.v5, s.clientID, s.user, s.vhost, s.pk = v5, cid, u, vh, &pk
	s.topics = vh.TopicAccess(u.Name, s.cfg.Exchange, cid)
	if pk.will() {
		if err := s.topics.Check(topicToKey(pk.willTopic), false); err != nil {
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
		s.log.Info("session taken over", "client", cid, "old_conn", uint64(prev.owner))
		prev.post(event{kind: evTakeover})
	}
	if wait {
		s.state = stWaiting
		return nil
	}
	return s.resume()
}

// resume finishes the CONNECT once the session is this connection's: it
// sets up the session queue and state and sends the CONNACK.
func (s *session) resume() error {
	pk := s.pk
	s.pk = nil
	cid, vh, v5 := s.clientID, s.vhost, s.v5
	s.a.cancelWill(cid) // MQTT 5 §3.1.3.2.2: a delayed will waits no more
	if pk.will() {
		w := &willMsg{topic: pk.willTopic, qos: pk.willQoS(), retain: pk.willRetain(), app: pk.willProps.app, payload: pk.willPayload}
		if v5 {
			w.delay = pk.willProps.willDelay
		}
		s.will = w
	}
	s.keepalive = time.Duration(pk.keepalive) * time.Second
	var props []byte
	if v5 && s.cfg.MaxKeepAlive > 0 && (s.keepalive == 0 || s.keepalive > s.cfg.MaxKeepAlive) {
		s.keepalive = max(s.cfg.MaxKeepAlive.Truncate(time.Second), time.Second)
		ka := uint16(min(s.keepalive/time.Second, 65535))
		props = append(props, 0x13, byte(ka>>8), byte(ka))
	}
	s.window = s.cfg.MaxInflight
	s.problemInfo = true
	if v5 {
		if rm := int(pk.props.receiveMax); rm > 0 && rm < s.window {
			s.window = rm
		}
		s.cliMax = pk.props.maxPacket
		s.problemInfo = !pk.props.hasReqProblem || pk.props.reqProblem == 1
		s.outAliasMax = int(pk.props.topicAliasMax)
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
	s.queue = sessionQueue(cid)
	s.ch = vh.NewChannel(s.owner, s)
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
	if reExpire {
		// The CONNECT's interval is the session's from now on (MQTT 5
		// §3.1.2.11.2); RabbitMQ updates the queue's x-expires likewise.
		q.SetExpires(expiryDuration(s.expiry))
	}
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
			return s.refuse(v5, 0x03, rcImplementation, err.Error())
		}
	}
	if present && len(st.subs) == 0 {
		s.adoptBindings()
	}
	s.restore()
	s.ch.SetPrefetch(max(1, s.window-s.relPending))

	if v5 {
		if cid != pk.clientID {
			props = appendPropStr(props, 0x12, cid) // assigned client identifier
		}
		if pk.props.reqResponse == 1 {
			props = appendPropStr(props, 0x1A, "response/"+cid) // Response Information
		}
		mps := uint32(s.cfg.MaxPacketSize)
		props = append(props,
			0x21, byte(receiveMaximum>>8), byte(receiveMaximum&0xff), // receive maximum
			0x25, 1, // retain available
			0x27, byte(mps>>24), byte(mps>>16), byte(mps>>8), byte(mps), // maximum packet size
			0x29, 1, // subscription identifiers available
			0x2A, 1, // shared subscriptions available
		)
		if tam := s.cfg.TopicAliasMax; tam > 0 {
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
	s.holding = true
	s.log.Debug("connection opened", "client", cid, "user", s.user.Name, "clean", cleanStart, "version", pk.level, "expiry", s.expiry)
	return nil
}

// restore takes up the session's subscriptions and outbound QoS 2
// messages from its previous connection.
func (s *session) restore() {
	s.rebuildSubs()
	for _, sb := range s.st.subs {
		if sb.group != "" {
			if err := s.consumeShared(sb, nil, 0); err != nil {
				s.log.Warn("cannot resume shared subscription", "filter", sb.filter, "err", err)
			}
		}
	}
	for pid, rec := range s.st.out2 {
		e := outMsg{qos: 2, released: rec.released, counted: rec.released, queue: rec.queue, seq: rec.seq}
		s.pids[pid] = e
		if rec.released {
			s.relPending++
			continue
		}
		if s.resend == nil {
			s.resend = make(map[resendKey]uint16)
		}
		s.resend[resendKey{rec.queue, rec.seq}] = pid
	}
}

// adoptBindings makes subscriptions of the session queue's bindings on the
// MQTT exchange: a session kept by a broker that did not record
// subscriptions (or whose record was lost) goes on receiving what it is
// bound to, at QoS 1, the most that broker granted.
func (s *session) adoptBindings() {
	x := s.vhost.Exchange(s.cfg.Exchange)
	if x == nil {
		return
	}
	for _, b := range x.Bindings() {
		if b.Queue == nil || b.Queue.Name != s.queue {
			continue
		}
		f := keyToFilter(b.Key)
		if sb, ok := newSubscription(f, 1, 0); ok && sb.group == "" {
			s.st.subs[f] = sb
		}
	}
	if len(s.st.subs) > 0 {
		s.log.Info("subscriptions taken from the session queue's bindings", "client", s.clientID, "count", len(s.st.subs))
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
		if _, err := s.vhost.DeclareQueue(s.queue, o, false, s.owner, nil); err != nil {
			return err
		}
	}
	c, err := s.ch.Consume(s.queue, consumerTag, router.ConsumeOptions{})
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
		cid = s.clientID
	}
	var h router.Table
	if plainApp(ap) {
		r := 0
		if retain {
			r = 1
		}
		if h = s.hdrCache[qos][r]; h == nil {
			h = buildHeaders(qos, retain, cid, ap)
			s.hdrCache[qos][r] = h
		}
	} else {
		h = buildHeaders(qos, retain, cid, ap)
	}
	return newMessage(topic, qos, ap, body, h)
}

func (s *session) publish(pk *publishPkt) error {
	topic := pk.topic
	if pk.props.hasTopicAlias {
		a := int(pk.props.topicAlias)
		if a == 0 || a > s.cfg.TopicAliasMax {
			return &discErr{rcTopicAliasInvalid, "topic alias invalid"}
		}
		if s.aliases == nil {
			s.aliases = make([]string, s.cfg.TopicAliasMax+1)
		}
		if topic == "" {
			if topic = s.aliases[a]; topic == "" {
				return protoErr("unknown topic alias")
			}
		} else if validTopic(topic) {
			s.aliases[a] = topic
		}
	}
	switch {
	case !validTopic(topic):
		return &discErr{rcTopicNameInvalid, "invalid topic name"}
	case pk.props.hasSubID:
		return protoErr("subscription identifier in PUBLISH")
	}
	qos := pk.qos
	var o *op
	if qos > 0 && len(s.qos2)+s.inQoS1 >= receiveMaximum && !(qos == 2 && s.qos2[pk.id]) {
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
			if s.qos2[pk.id] {
				// A resent PUBLISH whose PUBREL has not come yet: the message
				// is already routed; acknowledge again without publishing.
				s.ops = append(s.ops, o)
				return nil
			}
			s.qos2[pk.id] = true
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
	if retain {
		rm := &retainedMsg{topic: topic, qos: qos, app: pk.props.app, payload: pk.payload}
		rm.app.hasExpiry = false
		if ap := &pk.props.app; ap.hasExpiry && ap.expiry > 0 {
			rm.expiresAt = s.cfg.Now().UnixNano() + min(int64(ap.expiry)*1000, maxExpiryMs)*1e6
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
				s.log.Warn("retained message not kept", "topic", topic, "err", err)
			}
		}
	}
	if o == nil {
		if _, err := s.vhost.Publish(s.cfg.Exchange, m, nil); err != nil {
			s.log.Warn("publish failed", "err", err)
		}
		return nil
	}
	o.waiting++
	routed, err := s.vhost.Publish(s.cfg.Exchange, m, func(err error) {
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

// Output implements protocols.Session.
func (s *session) Output(dst [][]byte) [][]byte {
	s.process()
	if len(s.out) == 0 {
		return dst
	}
	dst = append(dst, s.out)
	s.out, s.prev = s.prev[:0], s.out
	return dst
}

// process handles posted events and sends the acknowledgements that are
// ready.
func (s *session) process() {
	s.mu.Lock()
	s.work, s.inbox = s.inbox, s.work[:0]
	s.mu.Unlock()
	for i := range s.work {
		e := &s.work[i]
		switch e.kind {
		case evDeliver:
			s.deliver(&e.d)
		case evCancelled:
			if e.c == s.consumer {
				s.consumer = nil
			}
			for q, c := range s.sharedCons {
				if c == e.c {
					delete(s.sharedCons, q)
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
		case evResume:
			if s.state == stWaiting {
				if err := s.resume(); err != nil {
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
				s.log.Warn("publish failed", "id", o.id, "err", o.err)
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
					delete(s.qos2, o.id)
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

// Tick implements protocols.Session: the CONNECT deadline and keepalive
// (1.5 times the client's interval, MQTT 3.1.1 §3.1.2.10).
func (s *session) Tick(now time.Time) error {
	if s.tick0.IsZero() {
		s.tick0 = now
	}
	switch s.state {
	case stConnect, stWaiting:
		if now.Sub(s.tick0) > connectTimeout {
			return errConnectTimeout
		}
	case stLinger:
		if s.lingerAt.IsZero() {
			s.lingerAt = now
		} else if now.Sub(s.lingerAt) >= lingerTimeout {
			return s.lingerErr
		}
	case stConnected:
		if s.keepalive <= 0 {
			return nil
		}
		if s.recv || s.lastRecv.IsZero() {
			s.lastRecv, s.recv = now, false
		} else if now.Sub(s.lastRecv) > s.keepalive*3/2 {
			s.log.Info("keepalive timeout", "keepalive", s.keepalive)
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
	if s.holding {
		// A released QoS 2 message is the client's: only its PUBREL is
		// left to do, so it leaves its queue instead of being requeued.
		for _, e := range s.pids {
			if e.released && e.tag != 0 {
				_ = s.ch.Ack(e.tag, false)
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
				s.a.scheduleWill(s.vhost, s.clientID, w, delay)
			} else {
				s.a.publishWill(s.vhost, s.clientID, w)
			}
		}
		if !s.persistent {
			if q := s.vhost.Queue(s.queue); q != nil && !q.Exclusive {
				_, _ = s.vhost.DeleteQueue(s.queue, false, false, s.owner, nil)
			}
			s.a.discardState(s.vhost, s.clientID, s.st, s.stored)
		}
	}
	if s.vhost != nil {
		s.vhost.OwnerGone(s.owner)
	}
	if s.registered {
		if next := s.a.release(s.clientID, s); next != nil {
			next.post(event{kind: evResume})
		}
	}
	s.log.Debug("connection closed", "client", s.clientID, "err", err)
}
