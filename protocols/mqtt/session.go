package mqtt

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/junction-broker/junction/protocols"
	"github.com/junction-broker/junction/router"
)

const (
	connectTimeout = 10 * time.Second // RabbitMQ's handshake timeout
	// maxPendingOps bounds acknowledgements waiting for their work
	// (storage commits); beyond it Feed stops taking packets.
	maxPendingOps = 1024
	// consumerTag is the tag of a session's one consumer.
	consumerTag = "mqtt"
)

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
	stConnected                  // CONNACK sent
	stClosed                     // nothing more is read or sent
)

type evKind uint8

const (
	evDeliver evKind = iota + 1
	evDone
	evCancelled
	evTakeover
)

// event is a result posted to the loop from router callbacks.
type event struct {
	kind evKind
	d    router.Delivery // evDeliver
	op   *op             // evDone
	idx  int             // evDone: the filter of a SUBSCRIBE / UNSUBSCRIBE
	err  error           // evDone
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
	kind    opKind
	id      uint16
	waiting int   // done callbacks outstanding
	err     error // publish failure
	noMatch bool  // publish reached no queue
	rc      byte  // PUBCOMP reason
	codes   []byte
}

// session is one MQTT connection. Apart from the inbox, everything is
// touched only on the connection's event loop.
type session struct {
	a     *Adapter
	cfg   *Config
	conn  protocols.Conn
	log   *slog.Logger
	owner router.Owner

	state    connState
	v5       bool
	clientID string
	clean    bool
	user     *router.User
	vhost    *router.VHost
	queue    string
	ch       *router.Channel
	consumer *router.Consumer
	inflight int             // consumer prefetch
	cliMax   uint32          // the client's Maximum Packet Size (MQTT 5), 0: none
	will     *router.Message // published if the connection ends without DISCONNECT

	subs    map[string]byte               // filter → granted QoS
	pids    map[uint16]router.DeliveryTag // outbound QoS 1 packet ids
	lastPID uint16
	qos2    map[uint16]bool // inbound QoS 2 ids between PUBLISH and PUBREL
	ops     []*op
	blocked bool // Feed stopped taking packets: too many pending ops

	out, prev []byte

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
		a:    a,
		cfg:  &a.cfg,
		conn: c,
		subs: make(map[string]byte),
		pids: make(map[uint16]router.DeliveryTag),
		qos2: make(map[uint16]bool),
		log:  a.cfg.Log,
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

// Cancelled implements router.Handler: the session's queue was deleted.
func (s *session) Cancelled(*router.Consumer) { s.post(event{kind: evCancelled}) }

// Feed implements protocols.Session.
func (s *session) Feed(in []byte) (int, error) {
	n := 0
	for n < len(in) {
		if s.state == stClosed {
			return len(in), nil
		}
		if len(s.ops) >= maxPendingOps {
			s.process()
			if len(s.ops) >= maxPendingOps {
				s.blocked = true
				break
			}
		}
		first, rem, hdr, ok, err := parseHeader(in[n:])
		if err != nil {
			return len(in), malformed("remaining length")
		}
		limit := s.cfg.MaxPacketSize
		if s.state == stConnect {
			limit = min(limit, maxUnauthPacket)
		}
		if rem > limit {
			s.log.Warn("packet too large", "size", rem, "max", limit)
			return len(in), errTooLarge
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
			return n, err
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
	case tPuback:
		id, ok := decodeID(body)
		if !ok {
			return malformed("PUBACK")
		}
		if tag, ok := s.pids[id]; ok {
			delete(s.pids, id)
			if s.ch != nil {
				_ = s.ch.Ack(tag, false)
			}
		}
	case tPubrel:
		id, ok := decodeID(body)
		if !ok {
			return malformed("PUBREL")
		}
		o := &op{kind: opPubcomp, id: id}
		if !s.qos2[id] {
			o.rc = 0x92 // packet identifier not found (MQTT 5 only)
		}
		delete(s.qos2, id)
		s.ops = append(s.ops, o)
	case tPubrec, tPubcomp:
		// The server sends no QoS 2 messages: nothing to settle.
	case tSubscribe:
		id, fs, ok := decodeFilters(body, s.v5, true)
		if !ok {
			return malformed("SUBSCRIBE")
		}
		s.subscribe(id, fs)
	case tUnsubscribe:
		id, fs, ok := decodeFilters(body, s.v5, false)
		if !ok {
			return malformed("UNSUBSCRIBE")
		}
		s.unsubscribe(id, fs)
	case tPingreq:
		s.out = append(s.out, tPingresp<<4, 0)
	case tDisconnect:
		if !s.v5 || len(body) == 0 || body[0] != 0x04 { // 0x04: disconnect with will message
			s.will = nil
		}
		s.state = stClosed
		s.conn.Close(nil)
	case tConnect:
		return protoErr("second CONNECT")
	default:
		return protoErr("unexpected packet type")
	}
	return nil
}

// connack queues a CONNACK in the client's version.
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
// (5.0) and ends the connection.
func (s *session) refuse(v5 bool, rc3, rc5 byte, why string) error {
	s.log.Warn("connection refused", "reason", why)
	if v5 {
		s.connack(true, false, rc5, nil)
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
	if pk.will() && pk.willQoS() > 1 && v5 {
		return s.refuse(true, 0, rcQoSNotSupported, "will QoS 2")
	}
	cid := pk.clientID
	clean := pk.clean()
	assigned := ""
	if cid == "" {
		if v == 3 || (!v5 && !clean) {
			return s.refuse(v5, 0x02, rcBadClientID, "empty client id")
		}
		cid, assigned, clean = genClientID(), "", true
		if v5 {
			assigned = cid
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
	s.v5, s.clientID, s.clean, s.user, s.vhost = v5, cid, clean, u, vh
	if old := s.a.register(cid, s); old != nil {
		// Session takeover (MQTT 3.1.1 §3.1.4): the old connection is
		// closed, and its exclusive queue goes now so this one can have it.
		s.log.Info("session taken over", "client", cid, "old_conn", uint64(old.owner))
		old.post(event{kind: evTakeover})
		vh.OwnerGone(old.owner)
	}
	if pk.will() {
		w := &router.Message{RoutingKey: topicToKey(pk.willTopic), Body: pk.willPayload}
		w.Properties.Flags = router.HasDeliveryMode
		w.Properties.DeliveryMode = router.Transient
		if pk.willQoS() > 0 {
			w.Properties.DeliveryMode = router.Persistent
		}
		s.will = w
	}
	s.keepalive = time.Duration(pk.keepalive) * time.Second
	s.inflight = s.cfg.MaxInflight
	if v5 {
		if rm := int(pk.props.receiveMax); rm > 0 && rm < s.inflight {
			s.inflight = rm
		}
		s.cliMax = pk.props.maxPacket
	}
	s.queue = "mqtt-subscription-" + cid + "qos1"
	s.ch = vh.NewChannel(s.owner, s)
	present := false
	if q := vh.Queue(s.queue); q != nil {
		if clean {
			if _, err := vh.DeleteQueue(s.queue, false, false, s.owner, nil); err != nil {
				return s.refuse(v5, 0x02, rcBadClientID, "client id in use: "+err.Error())
			}
		} else if err := s.ensureQueue(); err != nil {
			return s.refuse(v5, 0x03, rcImplementation, err.Error())
		} else {
			present = true
		}
	}
	var props []byte
	if v5 {
		if assigned != "" {
			props = appendString(append(props, 0x12), assigned)
		}
		mps := uint32(s.cfg.MaxPacketSize)
		props = append(props,
			0x25, 0, // retain available: no
			0x27, byte(mps>>24), byte(mps>>16), byte(mps>>8), byte(mps), // maximum packet size
			0x29, 0, // subscription identifiers: no
			0x2A, 0, // shared subscriptions: no
		)
	}
	s.connack(v5, present, 0, props)
	s.state = stConnected
	s.log.Debug("connection opened", "client", cid, "user", u.Name, "clean", clean, "version", v)
	return nil
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

// ensureQueue declares the session's queue (exclusive for clean sessions,
// durable otherwise) and consumes it.
func (s *session) ensureQueue() error {
	if s.consumer != nil {
		return nil
	}
	o := router.QueueOptions{Exclusive: s.clean, Durable: !s.clean}
	if _, err := s.vhost.DeclareQueue(s.queue, o, false, s.owner, nil); err != nil {
		return err
	}
	c, err := s.ch.Consume(s.queue, consumerTag, router.ConsumeOptions{Prefetch: s.inflight})
	if err != nil {
		return err
	}
	s.consumer = c
	return nil
}

func (s *session) publish(pk *publishPkt) error {
	switch {
	case pk.topic == "" || strings.ContainsAny(pk.topic, "+#"):
		return &discErr{rcTopicNameInvalid, "invalid topic name"}
	case pk.props.hasTopicAlias:
		return &discErr{0x94, "topic alias invalid"} // Topic Alias Maximum is 0
	case pk.props.subID:
		return protoErr("subscription identifier in PUBLISH")
	case pk.retain && s.v5:
		return &discErr{rcRetainNotSupported, "retain not supported"}
	}
	qos := pk.qos
	m := &router.Message{RoutingKey: topicToKey(pk.topic), Body: pk.payload}
	m.Properties.Flags = router.HasDeliveryMode
	m.Properties.DeliveryMode = router.Transient
	if qos > 0 {
		m.Properties.DeliveryMode = router.Persistent
	}
	if s.v5 && pk.props.contentType != "" {
		m.Properties.Flags |= router.HasContentType
		m.Properties.ContentType = pk.props.contentType
	}
	if qos == 0 {
		if _, err := s.vhost.Publish(s.cfg.Exchange, m, nil); err != nil {
			s.log.Warn("publish failed", "err", err)
		}
		return nil
	}
	o := &op{kind: opPuback, id: pk.id, waiting: 1}
	if qos == 2 {
		o.kind = opPubrec
		if s.qos2[pk.id] {
			// A resent PUBLISH whose PUBREL has not come yet: the message
			// is already routed; acknowledge again without publishing.
			o.waiting = 0
			s.ops = append(s.ops, o)
			return nil
		}
		s.qos2[pk.id] = true
	}
	s.ops = append(s.ops, o)
	routed, err := s.vhost.Publish(s.cfg.Exchange, m, func(err error) {
		s.post(event{kind: evDone, op: o, err: err})
	})
	if err != nil {
		o.waiting, o.err = 0, err
	} else {
		o.noMatch = !routed
	}
	return nil
}

func (s *session) subscribe(id uint16, fs []filter) {
	o := &op{kind: opSuback, id: id, codes: make([]byte, len(fs))}
	qerr := s.ensureQueue()
	if qerr != nil {
		s.log.Warn("cannot declare the session queue", "queue", s.queue, "err", qerr)
	}
	for i, f := range fs {
		filter := f.topic
		switch {
		case qerr != nil:
			o.codes[i] = rcUnspecified
			continue
		case strings.HasPrefix(filter, "$share/"):
			o.codes[i] = rcUnspecified
			if s.v5 {
				o.codes[i] = 0x9E // shared subscriptions not supported
			}
			continue
		case !validFilter(filter):
			o.codes[i] = rcUnspecified
			if s.v5 {
				o.codes[i] = rcTopicFilterInvalid
			}
			continue
		}
		g := min(f.opts&3, 1)
		o.codes[i] = g
		o.waiting++
		idx := i
		err := s.vhost.BindQueue(s.queue, s.cfg.Exchange, topicToKey(filter), nil, s.owner, func(err error) {
			s.post(event{kind: evDone, op: o, idx: idx, err: err})
		})
		if err != nil {
			s.log.Warn("bind failed", "filter", filter, "err", err)
			o.waiting--
			o.codes[i] = rcUnspecified
			continue
		}
		s.subs[filter] = g
	}
	s.ops = append(s.ops, o)
}

func (s *session) unsubscribe(id uint16, fs []filter) {
	o := &op{kind: opUnsuback, id: id, codes: make([]byte, len(fs))}
	for i, f := range fs {
		filter := f.topic
		if _, ok := s.subs[filter]; !ok || s.consumer == nil {
			o.codes[i] = rcNoSubExisted
			continue
		}
		delete(s.subs, filter)
		o.waiting++
		idx := i
		err := s.vhost.UnbindQueue(s.queue, s.cfg.Exchange, topicToKey(filter), nil, s.owner, func(err error) {
			s.post(event{kind: evDone, op: o, idx: idx, err: err})
		})
		if err != nil {
			o.waiting--
			o.codes[i] = rcUnspecified
		}
	}
	s.ops = append(s.ops, o)
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
			s.consumer = nil
		case evTakeover:
			if s.state == stConnected {
				if s.v5 {
					s.out = appendDisconnect(s.out, rcSessionTakenOver)
				}
				s.state = stClosed
				s.conn.Close(errTakenOver)
			}
		case evDone:
			o := e.op
			o.waiting--
			if e.err != nil {
				switch o.kind {
				case opPuback, opPubrec:
					o.err = e.err
				case opSuback, opUnsuback:
					o.codes[e.idx] = rcUnspecified
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
			rc := byte(rcSuccess)
			if o.err != nil {
				s.log.Warn("publish failed", "id", o.id, "err", o.err)
				if !s.v5 {
					// MQTT 3.1.1 has no negative acknowledgement.
					s.state = stClosed
					s.conn.Close(errPublishV3)
					return
				}
				rc = rcUnspecified
			} else if o.noMatch && s.v5 {
				rc = rcNoMatchingSubs
			}
			first := byte(tPuback << 4)
			if o.kind == opPubrec {
				first = tPubrec << 4
				if rc >= 0x80 {
					delete(s.qos2, o.id)
				}
			}
			s.out = appendAck(s.out, first, o.id, s.v5, rc)
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
			n := 2 + len(o.codes)
			if s.v5 {
				n++ // empty properties
			}
			s.out = append(s.out, first)
			s.out = appendVarint(s.out, n)
			s.out = append(s.out, byte(o.id>>8), byte(o.id))
			if s.v5 {
				s.out = append(s.out, 0)
			}
			s.out = append(s.out, o.codes...)
		}
	}
	if s.blocked && len(s.ops) < maxPendingOps {
		s.blocked = false
		s.conn.Wake() // have the transport offer the held-back input again
	}
}

// grant is the highest QoS granted to a subscription matching topic.
func (s *session) grant(topic string) (byte, bool) {
	g, ok := byte(0), false
	for f, q := range s.subs {
		if matchFilter(f, topic) {
			ok = true
			g = max(g, q)
		}
	}
	return g, ok
}

// deliver encodes a PUBLISH for d. QoS 0 deliveries are settled at once,
// QoS 1 ones when the client's PUBACK comes.
func (s *session) deliver(d *router.Delivery) {
	if s.state != stConnected || s.ch == nil {
		return // Closed requeues it
	}
	m := d.Message
	topic := keyToTopic(m.RoutingKey)
	qos := byte(0)
	if m.Persistent() {
		qos = 1
	}
	if g, ok := s.grant(topic); ok && g < qos {
		qos = g
	}
	var props []byte
	if s.v5 && m.Properties.Flags&router.HasContentType != 0 {
		props = appendString([]byte{0x03}, m.Properties.ContentType)
	}
	rem := 2 + len(topic) + len(m.Body)
	if qos > 0 {
		rem += 2
	}
	if s.v5 {
		rem += varintLen(len(props)) + len(props)
	}
	if s.cliMax > 0 && uint64(1+varintLen(rem)+rem) > uint64(s.cliMax) {
		// MQTT 5 §3.1.2.11.4: a packet larger than the client's maximum
		// is discarded as if sent.
		if d.Tag != 0 {
			_ = s.ch.Ack(d.Tag, false)
		}
		return
	}
	first := byte(tPublish<<4) | qos<<1
	var pid uint16
	if qos > 0 {
		if d.Redelivered {
			first |= 0x08
		}
		pid = s.nextPID()
		s.pids[pid] = d.Tag
	} else if d.Tag != 0 {
		_ = s.ch.Ack(d.Tag, false)
	}
	s.out = append(s.out, first)
	s.out = appendVarint(s.out, rem)
	s.out = appendString(s.out, topic)
	if qos > 0 {
		s.out = append(s.out, byte(pid>>8), byte(pid))
	}
	if s.v5 {
		s.out = appendVarint(s.out, len(props))
		s.out = append(s.out, props...)
	}
	s.out = append(s.out, m.Body...)
}

func (s *session) nextPID() uint16 {
	for {
		s.lastPID++
		if s.lastPID == 0 {
			s.lastPID = 1
		}
		if _, used := s.pids[s.lastPID]; !used {
			return s.lastPID
		}
	}
}

// Tick implements protocols.Session: the CONNECT deadline and keepalive
// (1.5 times the client's interval, MQTT 3.1.1 §3.1.2.10).
func (s *session) Tick(now time.Time) error {
	if s.tick0.IsZero() {
		s.tick0 = now
	}
	switch s.state {
	case stConnect:
		if now.Sub(s.tick0) > connectTimeout {
			return errConnectTimeout
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
	var de *discErr
	switch {
	case errors.As(err, &de):
		rc = de.rc
	case errors.Is(err, protocols.ErrShutdown):
		rc = rcServerShutdown
	case errors.Is(err, protocols.ErrInboundLimit):
		rc = rcPacketTooLarge
	case errors.Is(err, protocols.ErrInternal):
		rc = rcImplementation
	}
	return appendDisconnect(nil, rc)
}

// Closed implements protocols.Session: unacknowledged deliveries go back
// to the queue, and a clean session's queue is deleted.
func (s *session) Closed(err error) {
	s.mu.Lock()
	s.dead = true
	s.inbox = nil
	s.mu.Unlock()
	s.work = nil
	s.state = stClosed
	if s.ch != nil {
		s.ch.Close()
	}
	if s.vhost != nil {
		if s.will != nil {
			if _, err := s.vhost.Publish(s.cfg.Exchange, s.will, nil); err != nil {
				s.log.Warn("will not published", "err", err)
			}
			s.will = nil
		}
		s.vhost.OwnerGone(s.owner)
		s.a.unregister(s.clientID, s)
	}
	s.log.Debug("connection closed", "client", s.clientID, "err", err)
}
