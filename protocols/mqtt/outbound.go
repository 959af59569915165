package mqtt

import (
	"github.com/junction-broker/junction/router"
	"github.com/junction-broker/junction/storage"
	"strings"
)

// Outbound messages: router deliveries become PUBLISH packets, and the
// client's PUBACK, PUBREC and PUBCOMP settle them.

// drop settles a delivery that is not sent.
func (s *session) drop(d *router.Delivery) {
	if d.Tag != 0 {
		_ = s.ch.Ack(d.Tag, false)
	}
}

// deliver encodes a PUBLISH for d. QoS 0 deliveries are settled at once,
// QoS 1 ones when the client's PUBACK comes, QoS 2 ones with its PUBCOMP.
func (s *session) deliver(d *router.Delivery) {
	if s.state != stConnected || s.ch == nil {
		return // Closed requeues it
	}
	m := d.Message
	var mi msgInfo
	readInfo(m, &mi)
	var (
		qos     byte
		retain  bool
		topic   = m.RoutingKey // converted while encoding
		ids     []int
		viaMQTT = m.Exchange == s.a.cfg.Exchange
		shared  *subscription
	)
	if s.x != nil {
		ids, shared = s.x.ids[:0], s.x.sharedQ[d.Queue.Name]
	}
	switch sb := shared; {
	case mi.retained:
		rs := s.st.subs.get(mi.retainedFor)
		if rs == nil || rs.shared() || !validTopic(mi.topic) {
			s.drop(d)
			return
		}
		qos, retain, topic = min(mi.qos, rs.qos), true, mi.topic
		if rs.id > 0 {
			ids = append(ids, int(rs.id))
		}
	case sb != nil:
		if viaMQTT && !s.a.topics.matchKey(sb.topic(), m.RoutingKey) {
			s.drop(d) // a '$' topic under a leading wildcard, or AMQP's '*'
			return
		}
		qos, retain = min(mi.qos, sb.qos), sb.rap && mi.retain
		if sb.id > 0 {
			ids = append(ids, int(sb.id))
		}
	default:
		self := mi.publisher != "" && mi.publisher == s.clientID()
		matched, excluded := false, false
		for _, sb := range s.st.subs.list {
			if sb.shared() || !s.a.topics.matchKey(sb.topic(), m.RoutingKey) {
				continue
			}
			if self && sb.noLocal {
				excluded = true // MQTT 5 §3.8.3.1 No Local
				continue
			}
			matched = true
			qos = max(qos, sb.qos)
			retain = retain || sb.rap && mi.retain
			if sb.id > 0 {
				ids = append(ids, int(sb.id))
			}
		}
		switch {
		case matched:
			qos = min(qos, mi.qos)
		case excluded || viaMQTT:
			// No Local; or routed by a binding no subscription stands for
			// any more: a '$' topic under a leading wildcard (AMQP's '#'
			// matches it), a '*' in a filter (a wildcard to AMQP), a
			// message queued before an UNSUBSCRIBE ([MQTT-3.10.4-3] allows
			// dropping it).
			s.drop(d)
			return
		default:
			qos = mi.qos // sent to the queue directly
		}
	}
	if cap(ids) > 0 {
		s.more().ids = ids
	}
	if !s.v5 {
		retain = retain && mi.retained // 3.1.1: only retained messages sent on subscribe
	}
	if !validTopic(topic) || !mqttString(topic) {
		if s.debug() {
			s.logger().Debug("message with a routing key that is no MQTT topic dropped", "key", m.RoutingKey)
		}
		s.drop(d)
		return
	}
	// Topic aliases towards the client (MQTT 5 §3.3.2.3.4), assigned as
	// RabbitMQ assigns them: to the first topics sent, longer than one
	// byte, up to the client's Topic Alias Maximum, for the connection's
	// life. A topic with an alias is sent empty.
	var (
		alias    uint16
		aliasKey string
		newAlias bool
		topicLen = len(topic)
	)
	if !mi.retained {
		topicLen = s.a.topics.topicLen(topic) // the key's length in swap mode
	}
	if s.outAliasMax > 0 {
		aliasKey = m.RoutingKey
		if mi.retained {
			aliasKey = s.a.topics.key(topic)
		}
		aliases := s.more().outAliases
		if a, ok := aliases[aliasKey]; ok {
			alias, topicLen = a, 0
		} else if len(aliases) < int(s.outAliasMax) && topicLen > 1 {
			alias, newAlias = uint16(len(aliases)+1), true
		}
	}
	var pbuf []byte // MQTT 5 properties
	rem := 0
	for lean := false; ; lean = true {
		if s.v5 {
			x := s.more()
			pbuf = s.appendPubProps(x.pbuf[:0], d, &mi, ids, lean)
			if alias != 0 {
				pbuf = append(pbuf, 0x23, byte(alias>>8), byte(alias))
			}
			x.pbuf = pbuf
		}
		rem = 2 + topicLen + len(m.Body)
		if qos > 0 {
			rem += 2
		}
		if s.v5 {
			rem += varintLen(len(pbuf)) + len(pbuf)
		}
		if s.cliMax == 0 || uint64(1+varintLen(rem)+rem) <= uint64(s.cliMax) {
			break
		}
		if !s.v5 || lean {
			// MQTT 5 §3.1.2.11.4: a packet larger than the client's
			// maximum is discarded as if sent.
			s.drop(d)
			return
		}
		// Without what the broker adds (provenance, x-amqp-*) it may fit.
	}
	first := byte(tPublish<<4) | qos<<1
	if retain {
		first |= 1
	}
	var pid uint16
	if qos > 0 {
		var dup, send bool
		pid, dup, send = s.assignPID(d, qos)
		if !send {
			return
		}
		if dup || d.Redelivered {
			first |= 0x08
		}
	} else {
		s.drop(d)
	}
	if newAlias {
		x := s.more()
		if x.outAliases == nil {
			x.outAliases = make(map[string]uint16)
		}
		x.outAliases[aliasKey] = alias
	}
	s.out = append(s.out, first)
	s.out = appendVarint(s.out, rem)
	switch {
	case topicLen == 0:
		s.out = append(s.out, 0, 0)
	case mi.retained:
		s.out = appendString(s.out, topic)
	default:
		s.out = s.a.topics.appendKeyTopic(s.out, topic)
	}
	if qos > 0 {
		s.out = append(s.out, byte(pid>>8), byte(pid))
	}
	if s.v5 {
		s.out = appendVarint(s.out, len(pbuf))
		s.out = append(s.out, pbuf...)
	}
	s.out = append(s.out, m.Body...)
}

// appendPubProps appends the MQTT 5 properties of a delivery.
// lean leaves out the User Properties the broker adds (provenance and the
// x-amqp-* properties), for a client whose Maximum Packet Size the whole
// would pass.
func (s *session) appendPubProps(b []byte, d *router.Delivery, mi *msgInfo, ids []int, lean bool) []byte {
	p := &d.Message.Properties
	if mi.hasPFI {
		b = append(b, 0x01, mi.pfi)
	}
	if p.Flags&router.HasExpiration != 0 && d.ExpiresAt != 0 {
		// MQTT 5 §3.3.2.3.3: what is left of the interval.
		left := (d.ExpiresAt - s.a.cfg.Now().UnixNano() + 999_999_999) / 1e9
		left = min(max(left, 1), 1<<32-1)
		b = append(b, 0x02, byte(left>>24), byte(left>>16), byte(left>>8), byte(left))
	}
	if p.Flags&router.HasContentType != 0 && mqttString(p.ContentType) {
		b = appendPropStr(b, 0x03, p.ContentType)
	}
	rt := mi.response
	if p.Flags&router.HasReplyTo != 0 {
		rt = s.responseTopic(p.ReplyTo)
	}
	if rt != "" && validTopic(rt) && mqttString(rt) {
		b = appendPropStr(b, 0x08, rt)
	}
	if p.Flags&router.HasCorrelationID != 0 && len(p.CorrelationID) <= 65535 {
		b = appendPropStr(b, 0x09, p.CorrelationID)
	} else if mi.correlation != nil && len(mi.correlation) <= 65535 {
		b = append(b, 0x09, byte(len(mi.correlation)>>8), byte(len(mi.correlation)))
		b = append(b, mi.correlation...)
	}
	if mi.user {
		b = appendUserProps(b, p.Headers, lean)
	}
	if !lean {
		b = appendAMQPProps(b, p)
	}
	for _, id := range ids {
		b = appendVarint(append(b, 0x0B), id)
	}
	return b
}

// assignPID gives a QoS 1 or 2 delivery its packet id. A message a
// persistent session had in flight at QoS 2 before it reconnected gets
// its old id back (dup); one whose PUBREC came already is not sent again
// (send false): the delivery waits for the PUBCOMP, or is settled at once
// if that came first.
func (s *session) assignPID(d *router.Delivery, qos byte) (pid uint16, dup, send bool) {
	if qos == 2 && s.x != nil && len(s.x.resend) > 0 {
		k := resendKey{d.Queue.Name, d.Seq}
		if pid, ok := s.x.resend[k]; ok {
			delete(s.x.resend, k)
			e, ok := s.pids[pid]
			if pid == 0 || !ok {
				s.drop(d) // completed before the queue delivered it again
				return 0, false, false
			}
			e.tag = d.Tag
			if e.counted {
				// The router counts it in the window now.
				e.counted = false
				s.relPending--
				s.ch.SetPrefetch(s.prefetch())
			}
			s.pids[pid] = e
			return pid, true, !e.released
		}
		s.dropStale(d.Queue.Name, d.Seq)
	}
	pid = s.nextPID()
	e := outMsg{tag: d.Tag, qos: qos}
	if qos == 2 {
		e.queue, e.seq = d.Queue.Name, d.Seq
		// Only the session's own queue redelivers to this session: a
		// shared queue may hand a released message to another member.
		if s.persistent && d.Queue.Name == s.queue {
			s.putOut2(pid, out2Rec{queue: e.queue, seq: e.seq})
		}
	}
	s.setPID(pid, e)
	return pid, false, true
}

// dropStale forgets restored QoS 2 ids of queue below seq: the queue
// delivers in seq order, so their messages are gone (expired, deleted).
// A released one keeps its id until its PUBCOMP.
func (s *session) dropStale(queue string, seq storage.SeqNum) {
	for k, pid := range s.x.resend {
		if k.queue == queue && k.seq < seq {
			delete(s.x.resend, k)
			if e, ok := s.pids[pid]; pid == 0 || !ok || e.released {
				continue
			}
			delete(s.pids, pid)
			s.delOut2(pid)
		}
	}
}

func (s *session) putOut2(pid uint16, rec out2Rec) {
	s.st.putOut2(pid, rec)
	s.a.commit([]storage.Op{storage.PutMeta(storage.KindSession, s.a.stateKey(s.clientID(), 'p', pid), storage.Bytes(encodeOut2(rec)))}, false, nil)
}

func (s *session) delOut2(pid uint16) {
	if _, ok := s.st.out2[pid]; !ok {
		return
	}
	delete(s.st.out2, pid)
	s.a.commit([]storage.Op{storage.DeleteMeta(storage.KindSession, s.a.stateKey(s.clientID(), 'p', pid))}, false, nil)
}

// setPID records outbound packet id pid, making the map on first use.
func (s *session) setPID(pid uint16, e outMsg) {
	if s.pids == nil {
		s.pids = make(map[uint16]outMsg)
	}
	s.pids[pid] = e
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

func (s *session) puback(id uint16) {
	if e, ok := s.pids[id]; ok && e.qos == 1 {
		delete(s.pids, id)
		if e.tag != 0 {
			_ = s.ch.Ack(e.tag, false)
		}
	}
}

// pubrec is the first half of an outbound QoS 2 handshake: the client has
// the message, PUBREL asks it to release the id. The message stays
// unacknowledged in its queue until PUBCOMP, so it keeps its place in the
// window; if the connection ends first, Closed settles it.
func (s *session) pubrec(id uint16, rc byte) {
	e, ok := s.pids[id]
	if !ok || e.qos != 2 {
		rel := byte(0)
		if s.v5 {
			rel = rcPacketIDNotFound
		}
		s.out = appendAck(s.out, tPubrel<<4|2, id, s.v5, rel)
		return
	}
	if rc >= 0x80 {
		// MQTT 5 §4.3.3: a PUBREC with an error ends the exchange.
		delete(s.pids, id)
		if e.tag != 0 {
			_ = s.ch.Ack(e.tag, false)
		}
		s.delOut2(id)
		return
	}
	if !e.released {
		e.released = true
		s.pids[id] = e
		if s.persistent && e.queue != "" {
			s.putOut2(id, out2Rec{queue: e.queue, seq: e.seq, released: true})
		}
	}
	s.out = appendAck(s.out, tPubrel<<4|2, id, false, 0)
}

func (s *session) pubcomp(id uint16) {
	e, ok := s.pids[id]
	if !ok || e.qos != 2 || !e.released {
		return
	}
	delete(s.pids, id)
	if e.tag != 0 {
		_ = s.ch.Ack(e.tag, false)
	}
	if e.counted {
		s.relPending--
		if s.ch != nil {
			s.ch.SetPrefetch(s.prefetch())
		}
	}
	if e.queue != "" && s.x != nil {
		k := resendKey{e.queue, e.seq}
		if _, ok := s.x.resend[k]; ok {
			// Not delivered again (yet): should the queue still hold it
			// (a crash lost Closed's acknowledgement), it is dropped when
			// it comes, not sent.
			s.x.resend[k] = 0
		}
	}
	s.delOut2(id)
}

// responseTopic presents a reply_to as the topic a responder publishes its
// answer to: a routing key as its topic; a STOMP destination on the MQTT
// exchange (/topic/key, /exchange/amq.topic/key) as the key's topic; any
// other destination (a queue) unchanged, for lack of a topic that reaches
// it.
func (s *session) responseTopic(r string) string {
	if !strings.HasPrefix(r, "/") {
		return s.a.topics.topic(r)
	}
	if k, ok := strings.CutPrefix(r, "/topic/"); ok && s.a.cfg.Exchange == "amq.topic" {
		return s.a.topics.topic(k)
	}
	if k, ok := strings.CutPrefix(r, "/exchange/"+s.a.cfg.Exchange+"/"); ok {
		return s.a.topics.topic(k)
	}
	return r
}
