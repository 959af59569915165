package amqp

import (
	"strconv"

	"github.com/junction-broker/junction/protocols"
	"github.com/junction-broker/junction/protocols/amqp/frame"
	"github.com/junction-broker/junction/router"
)

// Content assembly states of a channel (AMQP 0-9-1 §4.2.6).
const (
	wantMethod = iota
	wantHeader
	wantBody
)

// Confirm states of a published message.
const (
	confirmPending uint8 = iota
	confirmAck
	confirmNack
)

// channel is one AMQP channel. It is touched only on the loop, except for
// Deliver and Cancelled (router.Handler), which read only s and post.
type channel struct {
	s       *session
	id      uint16
	rc      *router.Channel
	closing bool // channel.close sent; waiting for close-ok

	// Publishing: the basic.publish whose content is being assembled.
	want   int
	pub    frame.BasicPublish
	props  router.Properties
	size   uint64
	got    uint64
	msg    *router.Message
	reject *frame.Error // content to discard, then this error

	// Publisher confirms: seq numbers from 1; confirms[head:] are the
	// states of seqs base, base+1, ...
	confirm  bool
	nextSeq  uint64
	base     uint64
	confirms []uint8
	head     int

	prefetch  int // basic.qos global=false: for new consumers
	consumers map[string]*router.Consumer
	lastQueue string // the queue named by an empty name (RabbitMQ)

	// Transactions (tx.select): publishes wait here for tx.commit; acks
	// wait in the router channel. txBytes is this channel's share of the
	// connection's Config.MaxTxBytes; propsSize is the size of the
	// properties of the publish being assembled, part of what it holds.
	tx        bool
	txPubs    []txPub
	txBytes   int
	propsSize int

	// Direct reply-to: the channel's amq.rabbitmq.reply-to consumer.
	replyQ   *router.Queue
	replyTag string
}

// txPub is a publish held until tx.commit.
type txPub struct {
	exchange  string
	mandatory bool
	m         *router.Message
}

// txPubOverhead is what a held publish costs beyond its body, properties
// and names (the message, its properties decoded, its slot), roughly: a
// transaction of empty messages must count against Config.MaxTxBytes too.
const txPubOverhead = 256

// replyTo is the pseudo-queue of direct reply-to (RabbitMQ).
const replyTo = "amq.rabbitmq.reply-to"

// Deliver implements router.Handler. It runs under router locks.
func (c *channel) Deliver(d router.Delivery) { c.s.post(event{kind: evDeliver, ch: c, d: d}) }

// Cancelled implements router.Handler. It runs under router locks.
func (c *channel) Cancelled(con *router.Consumer) {
	c.s.post(event{kind: evCancelled, ch: c, tag: con.Tag})
}

func (c *channel) release() {
	c.closing = true
	c.msg, c.props = nil, router.Properties{}
	c.dropTx()
	c.txPubs = nil
	c.rc.Close()
}

// fail closes the channel with a soft error (channel.close) and discards
// its frames until close-ok.
func (c *channel) fail(e *frame.Error) {
	s := c.s
	s.cur.buf = frame.AppendMethodFrame(s.cur.buf, c.id, &frame.ChannelClose{
		ReplyCode: e.Code, ReplyText: replyText(e), ClassID: e.ClassID, MethodID: e.MethodID,
	})
	c.release()
}

// chanMethod handles a method on channel id.
func (s *session) chanMethod(id uint16, m frame.Method) {
	c := s.channels[id]
	if c == nil {
		if _, ok := m.(*frame.ChannelOpen); !ok {
			s.closeConn(&frame.Error{Code: frame.ChannelError, Text: "expected 'channel.open'"})
			return
		}
		// RabbitMQ counts the open channels; AMQP 0-9-1 §1.4.2.6 bounds
		// their numbers as well. Channel numbers from 1 to channel_max can
		// only be all in use when the count is reached, so a client opening
		// one channel too many hears RabbitMQ's words.
		if n := len(s.channels); n >= int(s.channelMax) {
			s.closeConn(&frame.Error{Code: frame.NotAllowed, ClassID: frame.ClassChannel, MethodID: frame.MethodChannelOpen,
				Text: "number of channels opened (" + strconv.Itoa(n) + ") has reached the negotiated channel_max (" + strconv.Itoa(int(s.channelMax)) + ")"})
			return
		}
		if id > s.channelMax {
			s.closeConn(&frame.Error{Code: frame.NotAllowed, ClassID: frame.ClassChannel, MethodID: frame.MethodChannelOpen,
				Text: "channel " + strconv.Itoa(int(id)) + " exceeds the negotiated channel_max (" + strconv.Itoa(int(s.channelMax)) + ")"})
			return
		}
		c = &channel{s: s, id: id, nextSeq: 1, base: 1, consumers: make(map[string]*router.Consumer)}
		c.rc = s.vhost.NewChannel(s.owner, c)
		s.channels[id] = c
		s.cur.buf = frame.AppendMethodFrame(s.cur.buf, id, &frame.ChannelOpenOk{})
		return
	}
	if c.closing {
		switch m.(type) {
		case *frame.ChannelCloseOk:
			delete(s.channels, id)
		case *frame.ChannelClose:
			// Both sides closed at once: answer, but keep the channel
			// until the close-ok the client still owes for ours, as
			// RabbitMQ does; what it sends until then is discarded.
			s.cur.buf = frame.AppendMethodFrame(s.cur.buf, id, &frame.ChannelCloseOk{})
		}
		return
	}
	cls, mid := m.ID()
	if c.want != wantMethod {
		s.closeConn(&frame.Error{Code: frame.UnexpectedFrame, ClassID: cls, MethodID: mid,
			Text: "expected content frame for class 60, got non content frame instead"})
		return
	}
	if err := c.method(m); err != nil {
		s.fault(c, protoErr(err, cls, mid))
	}
}

func (c *channel) reply(m frame.Method) {
	c.s.cur.buf = frame.AppendMethodFrame(c.s.cur.buf, c.id, m)
}

// later returns the done callback of a router call whose reply (ok, nil
// with nowait) must wait for its commit, and the op to count once the call
// succeeded.
func (c *channel) later(ok frame.Method) (*pendingOp, func(error)) {
	op := &pendingOp{ok: ok}
	s := c.s
	return op, func(err error) { s.post(event{kind: evDone, ch: c, op: op, err: err}) }
}

// hold counts op in the session's waiting replies.
func (c *channel) hold(op *pendingOp, nowait bool) {
	if nowait {
		return // nothing to reply; a failed commit still closes the connection
	}
	op.counted = true
	c.s.waiting++
}

// queueName resolves an empty queue name to the channel's last declared
// queue, as RabbitMQ does.
func (c *channel) queueName(name string) (string, error) {
	if name != "" {
		return name, nil
	}
	if c.lastQueue == "" {
		return "", &router.Error{Code: router.NotFound, Text: "no previously declared queue"}
	}
	return c.lastQueue, nil
}

// queue finds a queue this connection may use.
func (c *channel) queue(name string) (*router.Queue, error) {
	name, err := c.queueName(name)
	if err != nil {
		return nil, err
	}
	v := c.s.vhost
	q := v.Queue(name)
	if q == nil {
		return nil, &router.Error{Code: router.NotFound, Text: "no queue '" + name + "' in vhost '" + v.Name + "'"}
	}
	if q.Exclusive && q.Owner != c.s.owner {
		return nil, &router.Error{Code: router.ResourceLocked, Text: "cannot obtain exclusive access to locked queue '" + name + "' in vhost '" + v.Name + "'"}
	}
	return q, nil
}

func okOrNil(nowait bool, m frame.Method) frame.Method {
	if nowait {
		return nil
	}
	return m
}

// method handles a channel method of an open channel. A returned error is
// answered by fault.
func (c *channel) method(m frame.Method) error {
	s := c.s
	v := s.vhost
	switch m := m.(type) {
	case *frame.BasicPublish:
		if m.Immediate {
			return &frame.Error{Code: frame.NotImplemented, Text: "immediate=true"}
		}
		c.pub = *m
		c.want = wantHeader
		return nil
	case *frame.BasicAck:
		return c.rc.Ack(router.DeliveryTag(m.DeliveryTag), m.Multiple)
	case *frame.BasicNack:
		return c.rc.Nack(router.DeliveryTag(m.DeliveryTag), m.Multiple, m.Requeue)
	case *frame.BasicReject:
		return c.rc.Nack(router.DeliveryTag(m.DeliveryTag), false, m.Requeue)

	case *frame.ChannelClose:
		c.reply(&frame.ChannelCloseOk{})
		c.release()
		delete(s.channels, c.id)
		return nil
	case *frame.ChannelOpen:
		return &frame.Error{Code: frame.ChannelError, Text: "second 'channel.open' seen"}
	case *frame.ChannelFlow:
		if !m.Active {
			return &frame.Error{Code: frame.NotImplemented, Text: "active=false"}
		}
		c.reply(&frame.ChannelFlowOk{Active: true})
		return nil
	case *frame.AccessRequest:
		c.reply(&frame.AccessRequestOk{Ticket: 1})
		return nil

	case *frame.ExchangeDeclare:
		op, done := c.later(okOrNil(m.NoWait, &frame.ExchangeDeclareOk{}))
		_, err := v.DeclareExchange(m.Exchange, m.Type, router.ExchangeOptions{
			Durable: m.Durable, AutoDelete: m.AutoDelete, Internal: m.Internal, Args: tableToRouter(m.Arguments),
		}, m.Passive, done)
		if err == nil {
			c.hold(op, m.NoWait)
		}
		return err
	case *frame.ExchangeDelete:
		op, done := c.later(okOrNil(m.NoWait, &frame.ExchangeDeleteOk{}))
		err := v.DeleteExchange(m.Exchange, m.IfUnused, done)
		if router.CodeOf(err) == router.NotFound { // idempotent, as in RabbitMQ
			err = nil
			done(nil)
		}
		if err == nil {
			c.hold(op, m.NoWait)
		}
		return err
	case *frame.ExchangeBind:
		if err := s.checkTopic("exchange.bind", m.Source, m.RoutingKey, true); err != nil {
			return err
		}
		op, done := c.later(okOrNil(m.NoWait, &frame.ExchangeBindOk{}))
		err := v.BindExchange(m.Destination, m.Source, m.RoutingKey, tableToRouter(m.Arguments), done)
		if err == nil {
			c.hold(op, m.NoWait)
		}
		return err
	case *frame.ExchangeUnbind:
		if err := s.checkTopic("exchange.unbind", m.Source, m.RoutingKey, true); err != nil {
			return err
		}
		op, done := c.later(okOrNil(m.NoWait, &frame.ExchangeUnbindOk{}))
		err := v.UnbindExchange(m.Destination, m.Source, m.RoutingKey, tableToRouter(m.Arguments), done)
		if err == nil {
			c.hold(op, m.NoWait)
		}
		return err

	case *frame.QueueDeclare:
		if m.Queue == replyTo && m.Passive { // always there, as in RabbitMQ
			if !m.NoWait {
				c.reply(&frame.QueueDeclareOk{Queue: replyTo})
			}
			return nil
		}
		ok := &frame.QueueDeclareOk{}
		op, done := c.later(okOrNil(m.NoWait, ok))
		q, err := v.DeclareQueue(m.Queue, router.QueueOptions{
			Durable: m.Durable, Exclusive: m.Exclusive, AutoDelete: m.AutoDelete, Args: tableToRouter(m.Arguments),
		}, m.Passive, s.owner, done)
		if err != nil {
			return err
		}
		// The ok is read on the loop only, after this returns, so filling
		// it in after done may already have run is safe.
		msgs, cons := q.Counts()
		ok.Queue, ok.MessageCount, ok.ConsumerCount = q.Name, uint32(msgs), uint32(cons)
		c.lastQueue = q.Name
		c.hold(op, m.NoWait)
		return nil
	case *frame.QueueBind:
		name, err := c.queueName(m.Queue)
		if err != nil {
			return err
		}
		if err := s.checkTopic("queue.bind", m.Exchange, m.RoutingKey, true); err != nil {
			return err
		}
		op, done := c.later(okOrNil(m.NoWait, &frame.QueueBindOk{}))
		err = v.BindQueue(name, m.Exchange, m.RoutingKey, tableToRouter(m.Arguments), s.owner, done)
		if err == nil {
			c.hold(op, m.NoWait)
		}
		return err
	case *frame.QueueUnbind:
		name, err := c.queueName(m.Queue)
		if err != nil {
			return err
		}
		if err := s.checkTopic("queue.unbind", m.Exchange, m.RoutingKey, true); err != nil {
			return err
		}
		op, done := c.later(&frame.QueueUnbindOk{})
		err = v.UnbindQueue(name, m.Exchange, m.RoutingKey, tableToRouter(m.Arguments), s.owner, done)
		if err == nil {
			c.hold(op, false)
		}
		return err
	case *frame.QueuePurge:
		q, err := c.queue(m.Queue)
		if err != nil {
			return err
		}
		n := q.Purge()
		if !m.NoWait {
			c.reply(&frame.QueuePurgeOk{MessageCount: uint32(n)})
		}
		return nil
	case *frame.QueueDelete:
		name, err := c.queueName(m.Queue)
		if err != nil {
			return err
		}
		ok := &frame.QueueDeleteOk{}
		op, done := c.later(okOrNil(m.NoWait, ok))
		n, err := v.DeleteQueue(name, m.IfUnused, m.IfEmpty, s.owner, done)
		if router.CodeOf(err) == router.NotFound { // idempotent, as in RabbitMQ
			n, err = 0, nil
			done(nil)
		}
		if err != nil {
			return err
		}
		ok.MessageCount = uint32(n)
		c.hold(op, m.NoWait)
		return nil

	case *frame.BasicQos:
		if m.PrefetchSize != 0 {
			return &frame.Error{Code: frame.NotImplemented, Text: "prefetch_size!=0 (" + strconv.FormatUint(uint64(m.PrefetchSize), 10) + ")"}
		}
		if m.Global {
			c.rc.SetPrefetch(int(m.PrefetchCount))
		} else {
			c.prefetch = int(m.PrefetchCount)
		}
		c.reply(&frame.BasicQosOk{})
		return nil
	case *frame.BasicConsume:
		if m.Queue == replyTo {
			return c.consumeReplies(m)
		}
		name, err := c.queueName(m.Queue)
		if err != nil {
			return err
		}
		args := tableToRouter(m.Arguments)
		var prio int64
		if x, ok := args.Get("x-priority"); ok {
			if prio, ok = router.Int(x); !ok {
				return &frame.Error{Code: frame.PreconditionFailed, Text: "invalid arg 'x-priority'"}
			}
		}
		con, err := c.rc.Consume(name, m.ConsumerTag, router.ConsumeOptions{
			NoAck: m.NoAck, Exclusive: m.Exclusive, Priority: int(prio), Prefetch: c.prefetch, Args: args,
		})
		if err != nil {
			return err
		}
		c.consumers[con.Tag] = con
		if s.paused {
			con.Pause()
		}
		if !m.NoWait {
			c.reply(&frame.BasicConsumeOk{ConsumerTag: con.Tag})
		}
		return nil
	case *frame.BasicCancel:
		c.rc.Cancel(m.ConsumerTag, false)
		delete(c.consumers, m.ConsumerTag)
		if m.ConsumerTag == c.replyTag && c.replyQ != nil {
			c.replyQ, c.replyTag = nil, "" // auto-deleted with its consumer
		}
		if !m.NoWait {
			c.reply(&frame.BasicCancelOk{ConsumerTag: m.ConsumerTag})
		}
		return nil
	case *frame.BasicGet:
		q, err := c.queue(m.Queue)
		if err != nil {
			return err
		}
		d, ok := q.Get(c.rc, m.NoAck)
		if !ok {
			c.reply(&frame.BasicGetEmpty{})
			return nil
		}
		msg := d.Message
		c.reply(&frame.BasicGetOk{
			DeliveryTag: uint64(d.Tag), Redelivered: d.Redelivered,
			Exchange: msg.Exchange, RoutingKey: msg.RoutingKey, MessageCount: uint32(d.MessageCount),
		})
		s.appendContent(c.id, &msg.Properties, msg.Body)
		return nil
	case *frame.BasicRecover:
		if !m.Requeue {
			return &frame.Error{Code: frame.NotImplemented, Text: "requeue=false"}
		}
		c.rc.Recover()
		c.reply(&frame.BasicRecoverOk{})
		return nil
	case *frame.BasicRecoverAsync:
		if !m.Requeue {
			return &frame.Error{Code: frame.NotImplemented, Text: "requeue=false"}
		}
		c.rc.Recover()
		return nil

	case *frame.ConfirmSelect:
		if c.tx {
			return &frame.Error{Code: frame.PreconditionFailed, Text: "cannot switch from tx to confirm mode"}
		}
		c.confirm = true
		if !m.NoWait {
			c.reply(&frame.ConfirmSelectOk{})
		}
		return nil
	case *frame.TxSelect:
		if c.confirm {
			return &frame.Error{Code: frame.PreconditionFailed, Text: "cannot switch from confirm to tx mode"}
		}
		if !c.tx {
			c.tx = true
			c.rc.SelectTx()
		}
		c.reply(&frame.TxSelectOk{})
		return nil
	case *frame.TxCommit:
		if !c.tx {
			return &frame.Error{Code: frame.PreconditionFailed, Text: "channel is not transactional"}
		}
		return c.commit()
	case *frame.TxRollback:
		if !c.tx {
			return &frame.Error{Code: frame.PreconditionFailed, Text: "channel is not transactional"}
		}
		c.dropTx()
		c.rc.RollbackTx()
		c.reply(&frame.TxRollbackOk{})
		return nil
	}
	return &frame.Error{Code: frame.CommandInvalid, Text: "unimplemented method " + m.Name()}
}

// content takes a content header or body frame of the basic.publish being
// assembled (AMQP 0-9-1 §4.2.6).
func (c *channel) content(f frame.Frame) error {
	s := c.s
	switch c.want {
	case wantHeader:
		if f.Type != frame.FrameHeader {
			return &frame.Error{Code: frame.UnexpectedFrame, Text: "expected content header for class 60, got non content header frame instead"}
		}
		h, err := frame.ParseContentHeader(f.Payload)
		if err != nil {
			return err
		}
		if h.ClassID != frame.ClassBasic {
			return &frame.Error{Code: frame.UnexpectedFrame, Text: "expected content header for class 60, got one for class " + strconv.Itoa(int(h.ClassID)) + " instead"}
		}
		if h.Weight != 0 { // §4.2.6.1: must be zero; RabbitMQ's 505 as well
			return &frame.Error{Code: frame.UnexpectedFrame, Text: "content header weight " + strconv.Itoa(int(h.Weight)) + ", must be 0"}
		}
		if err := s.dec.DecodeProperties(h.RawProperties, &s.props); err != nil {
			return err
		}
		propsToRouter(&c.props, &s.props)
		s.props = frame.Properties{}
		c.propsSize = len(h.RawProperties)
		c.size, c.got, c.msg, c.reject = h.BodySize, 0, nil, nil
		// RabbitMQ's order: size, topic permissions (write on the routing
		// key), user_id. An oversized message is refused here, at its
		// header: RabbitMQ waits for the whole body first, so a declared
		// size of 2^63 keeps the channel waiting for ever. The channel
		// closes, and the body frames still coming are discarded.
		if h.BodySize > uint64(s.cfg.MaxMessageSize) {
			return &frame.Error{Code: frame.PreconditionFailed, Text: "message size " + strconv.FormatUint(h.BodySize, 10) +
				" is larger than configured max size " + strconv.FormatInt(s.cfg.MaxMessageSize, 10)}
		}
		if err := s.checkTopic("basic.publish", c.pub.Exchange, c.pub.RoutingKey, false); err != nil {
			c.reject = protoErr(err, frame.ClassBasic, frame.MethodBasicPublish)
		} else if c.props.Flags&router.HasUserID != 0 && c.props.UserID != s.user.Name {
			c.reject = &frame.Error{Code: frame.PreconditionFailed, Text: "user_id property set to '" + c.props.UserID +
				"' but authenticated user was '" + s.user.Name + "'"}
		}
		if h.BodySize == 0 {
			return c.publish(router.NewMessage(nil))
		}
		c.want = wantBody
		return nil
	case wantBody:
		if f.Type != frame.FrameBody {
			return &frame.Error{Code: frame.UnexpectedFrame, Text: "expected content body, got non content body frame instead"}
		}
		n := uint64(len(f.Payload))
		if c.got+n > c.size {
			return &frame.Error{Code: frame.FrameError, Text: "content body larger than its header declared"}
		}
		switch {
		case c.reject != nil:
		case c.got == 0 && n == c.size:
			c.msg = router.NewMessage(f.Payload) // the one copy
		default:
			if c.msg == nil {
				c.msg = &router.Message{}
			}
			c.msg.Body = growBody(c.msg.Body, f.Payload, c.size)
		}
		c.got += n
		if c.got == c.size {
			m := c.msg
			c.msg = nil
			return c.publish(m)
		}
		return nil
	}
	return &frame.Error{Code: frame.UnexpectedFrame, Text: "content frame without basic.publish"}
}

// growBody appends p to body, a message body of size bytes in all that is
// being assembled. The capacity grows to four times the bytes that have
// arrived, up to size, so the memory held follows what the client sent and
// not what it declared: a client declaring the largest body allowed and
// sending one byte of it must not make the broker allocate that size. The
// price, for honest bodies of many frames, is a third of the body copied
// once more, in log4(size/frame-max) allocations (2 for 1 MiB in 128 KiB
// frames, 4 for 16 MiB).
func growBody(body, p []byte, size uint64) []byte {
	if need := len(body) + len(p); need > cap(body) {
		b := make([]byte, len(body), min(size, uint64(max(4*need, minBodyAlloc))))
		copy(b, body)
		body = b
	}
	return append(body, p...)
}

// minBodyAlloc is the smallest buffer growBody allocates.
const minBodyAlloc = 64 << 10

// publish routes the assembled message.
func (c *channel) publish(m *router.Message) error {
	s := c.s
	c.want = wantMethod
	if e := c.reject; e != nil {
		c.reject = nil
		return e
	}
	m.RoutingKey = c.pub.RoutingKey
	m.Properties = c.props
	c.props = router.Properties{}
	s.pub.Apply(m)
	if m.Properties.Flags&router.HasReplyTo != 0 && m.Properties.ReplyTo == replyTo {
		if c.replyQ == nil {
			return &frame.Error{Code: frame.PreconditionFailed, Text: "fast reply consumer does not exist"}
		}
		m.Properties.ReplyTo = c.replyQ.Name
	}
	if c.tx {
		return c.holdPublish(m)
	}
	var done func(error)
	if c.confirm {
		seq := c.nextSeq
		c.nextSeq++
		c.confirms = append(c.confirms, confirmPending)
		done = func(err error) { s.post(event{kind: evConfirm, ch: c, seq: seq, err: err}) }
	}
	routed, err := s.vhost.Publish(c.pub.Exchange, m, done)
	if err != nil {
		return err
	}
	if !routed && c.pub.Mandatory {
		c.reply(&frame.BasicReturn{ReplyCode: frame.NoRoute, ReplyText: "NO_ROUTE", Exchange: c.pub.Exchange, RoutingKey: c.pub.RoutingKey})
		s.appendContent(c.id, &m.Properties, m.Body)
	}
	return nil
}

// holdPublish keeps a publish of a transaction until tx.commit. The
// exchange must exist now, as in RabbitMQ.
func (c *channel) holdPublish(m *router.Message) error {
	v := c.s.vhost
	if v.Exchange(c.pub.Exchange) == nil {
		return &router.Error{Code: router.NotFound, Text: "no exchange '" + c.pub.Exchange + "' in vhost '" + v.Name + "'"}
	}
	// The bound is the connection's, over all its channels: per channel,
	// channel_max transactions would hold channel_max times as much.
	n := len(m.Body) + c.propsSize + len(c.pub.Exchange) + len(m.RoutingKey) + txPubOverhead
	if s := c.s; s.txBytes+n > s.cfg.MaxTxBytes {
		return &frame.Error{Code: frame.PreconditionFailed, Text: "the transactions of a connection may hold at most " +
			strconv.Itoa(s.cfg.MaxTxBytes>>10) + " KiB of uncommitted messages; commit more often"}
	}
	c.txBytes += n
	c.s.txBytes += n
	c.txPubs = append(c.txPubs, txPub{exchange: c.pub.Exchange, mandatory: c.pub.Mandatory, m: m})
	return nil
}

// dropTx forgets the publishes held for tx.commit and gives their bytes
// back to the connection.
func (c *channel) dropTx() {
	clear(c.txPubs)
	c.txPubs = c.txPubs[:0]
	c.s.txBytes -= c.txBytes
	c.txBytes = 0
}

// commit routes the transaction's publishes, applies its acks and answers
// tx.commit-ok once every persistent copy is on disk.
func (c *channel) commit() error {
	s := c.s
	op, done := c.later(&frame.TxCommitOk{})
	// One call per publish, one for this function itself.
	one := protocols.JoinDone(len(c.txPubs)+1, done)
	var err error
	for i := range c.txPubs {
		p := &c.txPubs[i]
		if err != nil {
			one(nil)
			continue
		}
		var routed bool
		routed, err = s.vhost.Publish(p.exchange, p.m, one)
		if err != nil {
			one(nil) // not called by a failed Publish
			continue
		}
		if !routed && p.mandatory {
			c.reply(&frame.BasicReturn{ReplyCode: frame.NoRoute, ReplyText: "NO_ROUTE", Exchange: p.exchange, RoutingKey: p.m.RoutingKey})
			s.appendContent(c.id, &p.m.Properties, p.m.Body)
		}
	}
	c.dropTx()
	c.rc.CommitTx()
	if err == nil {
		c.hold(op, false)
	}
	one(nil)
	return err
}

// consumeReplies starts the channel's direct reply-to consumer: a queue of
// its own that replies reach through the default exchange.
func (c *channel) consumeReplies(m *frame.BasicConsume) error {
	if !m.NoAck {
		return &frame.Error{Code: frame.PreconditionFailed, Text: "reply consumer cannot acknowledge"}
	}
	if c.replyQ != nil {
		return &frame.Error{Code: frame.PreconditionFailed, Text: "reply consumer already set"}
	}
	q := c.s.vhost.DeclareReplyQueue(c.s.owner)
	con, err := c.rc.Consume(q.Name, m.ConsumerTag, router.ConsumeOptions{NoAck: true})
	if err != nil {
		_, _ = c.s.vhost.DeleteQueue(q.Name, false, false, c.s.owner, nil)
		return err
	}
	c.replyQ, c.replyTag = q, con.Tag
	c.consumers[con.Tag] = con
	if c.s.paused {
		con.Pause()
	}
	if !m.NoWait {
		c.reply(&frame.BasicConsumeOk{ConsumerTag: con.Tag})
	}
	return nil
}

// confirmed records the outcome of publish seq and sends every settled
// confirm at the front, coalescing runs with multiple=true.
func (c *channel) confirmed(seq uint64, err error) {
	i := c.head + int(seq-c.base)
	if seq < c.base || i >= len(c.confirms) {
		return
	}
	c.confirms[i] = confirmAck
	if err != nil {
		c.confirms[i] = confirmNack
	}
	for c.head < len(c.confirms) && c.confirms[c.head] != confirmPending {
		st := c.confirms[c.head]
		j := c.head + 1
		for j < len(c.confirms) && c.confirms[j] == st {
			j++
		}
		tag := c.base + uint64(j-c.head) - 1
		multiple := j-c.head > 1
		if st == confirmAck {
			c.reply(&frame.BasicAck{DeliveryTag: tag, Multiple: multiple})
		} else {
			c.reply(&frame.BasicNack{DeliveryTag: tag, Multiple: multiple})
		}
		c.base = tag + 1
		c.head = j
	}
	if c.head == len(c.confirms) {
		c.confirms, c.head = c.confirms[:0], 0
	} else if c.head > 1024 && c.head > len(c.confirms)/2 {
		n := copy(c.confirms, c.confirms[c.head:])
		c.confirms, c.head = c.confirms[:n], 0
	}
}
