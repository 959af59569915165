package mqtt

import (
	"errors"

	"github.com/junction-broker/junction/router"
	"github.com/junction-broker/junction/storage"
)

// Subscriptions. A normal subscription is a binding of the session's queue
// on the MQTT exchange; a shared one ($share/<group>/<filter>) is the
// group's queue, bound once and consumed by every member on its session's
// channel, so the router spreads its messages over the members.

// rebuildSubs refreshes what deliver reads from the subscriptions.
func (s *session) rebuildSubs() {
	if s.x != nil {
		clear(s.x.sharedQ)
	}
	nl := int32(0)
	for _, sb := range s.st.subs.list {
		if sb.shared() {
			x := s.more()
			if x.sharedQ == nil {
				x.sharedQ = make(map[string]*subscription)
			}
			x.sharedQ[sb.queue] = sb
			continue
		}
		if sb.noLocal {
			nl++
		}
	}
	if (nl > 0) != (s.noLocal > 0) {
		s.hdr = nil // the client id header comes or goes
	}
	s.noLocal = nl
}

// consumeShared declares, binds and consumes shared subscription sb's
// queue. With o, the declaration and binding count as o's work for filter
// idx. The session joins the group first, so a member leaving meanwhile
// does not delete the queue under it (Adapter.leaveShared).
func (s *session) consumeShared(sb *subscription, o *op, idx int) (err error) {
	s.a.joinShared(s.clientID(), sb.queue)
	defer func() {
		if err != nil {
			s.a.leaveShared(s.vhost, s.clientID(), sb.queue)
		}
	}()
	done := func(error) {}
	if o != nil {
		done = func(err error) { s.post(event{kind: evDone, op: o, idx: idx, err: err}) }
	}
	if s.vhost.Queue(sb.queue) == nil {
		if o != nil {
			o.waiting++
		}
		if _, err := s.vhost.DeclareQueue(sb.queue, router.QueueOptions{Durable: true}, false, 0, done); err != nil {
			if o != nil {
				o.waiting--
			}
			return err
		}
	}
	if o != nil {
		o.waiting++
	}
	if err := s.vhost.BindQueue(sb.queue, s.a.cfg.Exchange, sb.key, nil, 0, done); err != nil {
		if o != nil {
			o.waiting--
		}
		return err
	}
	x := s.more()
	if x.sharedCons[sb.queue] == nil {
		c, err := s.channel().Consume(sb.queue, sharedTag+sb.queue, router.ConsumeOptions{})
		if err != nil {
			return err
		}
		if x.sharedCons == nil {
			x.sharedCons = make(map[string]*router.Consumer)
		}
		x.sharedCons[sb.queue] = c
	}
	return nil
}

// saveState writes a persistent session's subscriptions; o waits for it.
func (s *session) saveState(o *op) {
	if !s.persistent {
		return
	}
	o.waiting++
	rec := storage.PutMeta(storage.KindSession, s.a.stateKey(s.clientID(), 's', 0), storage.Bytes(encodeState(s.st)))
	s.a.commit([]storage.Op{rec}, true, func(err error) {
		s.post(event{kind: evDone, op: o, idx: -1, err: err})
	})
}

// storeState writes a persistent session's state without waiting for it:
// a change of its expiry, which the next synced commit makes durable.
func (s *session) storeState() {
	if !s.persistent {
		return
	}
	rec := storage.PutMeta(storage.KindSession, s.a.stateKey(s.clientID(), 's', 0), storage.Bytes(encodeState(s.st)))
	s.a.commit([]storage.Op{rec}, false, nil)
}

func (s *session) subscribe(id uint16, fs []filter, p *props) error {
	o := &op{kind: opSuback, id: id, codes: make([]byte, len(fs))}
	qerr := s.ensureQueue()
	if qerr != nil {
		s.logger().Warn("cannot declare the session queue", "queue", s.queue, "err", qerr)
	}
	changed := false
	for i, f := range fs {
		sb, ok := newSubscription(s.a.topics, f.topic, f.opts, p.subID)
		switch {
		case !ok:
			o.codes[i] = rcUnspecified
			if s.v5 {
				o.codes[i] = rcTopicFilterInvalid
			}
			continue
		case sb.shared() && sb.noLocal:
			return protoErr("No Local on a shared subscription") // [MQTT-3.8.3-4]
		case s.topics != nil:
			// The filter's binding key as written, wildcards included, as
			// RabbitMQ checks topic permissions on queue.bind. Only this
			// filter fails; the others go ahead.
			if err := s.topics.Check(sb.key, true); err != nil {
				o.codes[i], o.reason = s.refusal(err, "subscribe", f.topic)
				continue
			}
		}
		if qerr != nil && !sb.shared() {
			// No session queue to bind: [MQTT-3.9.3-1] failure, MQTT 5
			// 0x97 Quota exceeded when the vhost's queue limit is why.
			o.codes[i] = s.queueFailure(qerr)
			continue
		}
		old := s.st.subs.get(sb.filter)
		if old == nil && s.st.subs.len() >= maxSubscriptions {
			o.codes[i] = rcUnspecified
			if s.v5 {
				o.codes[i] = rcQuotaExceeded
			}
			continue
		}
		if !sb.shared() {
			o.waiting++
			idx := i
			err := s.vhost.BindQueue(s.queue, s.a.cfg.Exchange, sb.key, nil, s.owner, func(err error) {
				s.post(event{kind: evDone, op: o, idx: idx, err: err})
			})
			if err != nil {
				s.logger().Warn("bind failed", "filter", sb.filter, "err", err)
				o.waiting--
				o.codes[i] = rcUnspecified
				continue
			}
			// Retain Handling (MQTT 5 §3.8.3.1): 0 send, 1 only for a new
			// subscription, 2 never. Never for shared subscriptions.
			if rh := f.opts >> 4 & 3; rh == 0 || rh == 1 && old == nil {
				o.retained = append(o.retained, sb)
			}
		} else if err := s.consumeShared(sb, o, i); err != nil {
			s.logger().Warn("shared subscription failed", "filter", sb.filter, "err", err)
			o.codes[i] = s.queueFailure(err)
			continue
		}
		o.codes[i] = sb.qos
		s.st.subs.put(sb)
		changed = true
	}
	if changed {
		s.rebuildSubs()
		s.saveState(o)
	}
	s.ops = append(s.ops, o)
	return nil
}

// queueFailure is the SUBACK code of a filter whose queue could not be
// declared: 0x80 (the only failure MQTT 3.1.1 has), or for MQTT 5 0x97
// Quota exceeded when err is the vhost's queue limit (router.max_queues).
func (s *session) queueFailure(err error) byte {
	if s.v5 && errors.Is(err, router.ErrQueueLimit) {
		return rcQuotaExceeded
	}
	return rcUnspecified
}

func (s *session) unsubscribe(id uint16, fs []filter) {
	o := &op{kind: opUnsuback, id: id, codes: make([]byte, len(fs))}
	changed := false
	for i, f := range fs {
		sb := s.st.subs.del(f.topic)
		if sb == nil {
			o.codes[i] = rcNoSubExisted
			continue
		}
		changed = true
		if sb.shared() {
			if s.ch != nil {
				s.ch.Cancel(sharedTag+sb.queue, true)
			}
			if s.x != nil {
				delete(s.x.sharedCons, sb.queue)
			}
			s.a.leaveShared(s.vhost, s.clientID(), sb.queue)
			continue
		}
		o.waiting++
		idx := i
		err := s.vhost.UnbindQueue(s.queue, s.a.cfg.Exchange, sb.key, nil, s.owner, func(err error) {
			s.post(event{kind: evDone, op: o, idx: idx, err: err})
		})
		if err != nil {
			o.waiting--
			o.codes[i] = rcUnspecified
		}
	}
	if changed {
		s.rebuildSubs()
		s.saveState(o)
	}
	s.ops = append(s.ops, o)
}

// sendRetained queues the retained messages matching sb on the session's
// queue (MQTT 3.1.1 [MQTT-3.3.1-6], 5.0 §3.3.1.3), where they are
// delivered like any message: within the window, and kept for a
// persistent session. They go out after the SUBACK.
func (s *session) sendRetained(sb *subscription) {
	if s.st.subs.get(sb.filter) != sb {
		return // replaced or unsubscribed meanwhile
	}
	now := s.a.cfg.Now().UnixNano()
	// No scratch kept for this: it would stay with an idle connection.
	for _, rm := range s.a.retained.match(sb.topic(), now, nil) {
		if _, err := s.vhost.Publish("", rm.message(s.a.topics, s.queue, sb.filter, sb.qos, now), nil); err != nil {
			s.logger().Warn("retained message not queued", "topic", rm.topic, "err", err)
		}
	}
}
