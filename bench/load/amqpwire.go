package load

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/junction-broker/junction/protocols/amqp/frame"
)

// wireConn is a lean AMQP 0-9-1 client connection with one channel (1),
// written for the load generator: frames are built into a buffer and
// written in batches, and deliveries are read straight out of the read
// buffer. It does what a careful client library does (pipelining, one
// write for many frames) without a goroutine and an allocation per
// message, so the generator does not cap what a fast broker can show.
//
// Its methods are not safe for concurrent use, except that one goroutine
// may read (readFrame) while another writes (send, flush) once setup is
// done.
type wireConn struct {
	nc       net.Conn
	rd       *bufio.Reader
	out      []byte // frames not yet written
	dec      frame.Decoder
	frameMax uint32
}

// wireFrameMax is the frame-max the client asks for; bodies of the
// scenarios fit one frame.
const wireFrameMax = 131072

// dialWire connects, logs in with PLAIN and opens channel 1.
func dialWire(ctx context.Context, rawURL string) (*wireConn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("amqp url: %w", err)
	}
	user, pass := "guest", "guest"
	if u.User != nil {
		user = u.User.Username()
		if p, ok := u.User.Password(); ok {
			pass = p
		}
	}
	vhost := "/"
	if p := strings.TrimPrefix(u.Path, "/"); p != "" {
		if vhost, err = url.PathUnescape(p); err != nil {
			return nil, fmt.Errorf("amqp url vhost: %w", err)
		}
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "5672")
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	c := &wireConn{nc: nc, rd: bufio.NewReaderSize(nc, 2*wireFrameMax), frameMax: frame.FrameMinSize}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	if err := c.handshake(user, pass, vhost); err != nil {
		_ = nc.Close()
		return nil, err
	}
	_ = nc.SetDeadline(time.Time{})
	return c, nil
}

func (c *wireConn) handshake(user, pass, vhost string) error {
	c.out = frame.AppendProtocolHeader(c.out)
	if err := c.flush(); err != nil {
		return err
	}
	if _, err := c.expect(0, &frame.ConnectionStart{}); err != nil {
		return err
	}
	c.sendOn(0, &frame.ConnectionStartOk{
		ClientProperties: frame.Table{{Key: "product", Value: "junction-loadgen"}},
		Mechanism:        "PLAIN",
		Response:         "\x00" + user + "\x00" + pass,
		Locale:           "en_US",
	})
	if err := c.flush(); err != nil {
		return err
	}
	m, err := c.expect(0, &frame.ConnectionTune{})
	if err != nil {
		return err
	}
	tune := m.(*frame.ConnectionTune)
	fm := uint32(wireFrameMax)
	if tune.FrameMax != 0 && tune.FrameMax < fm {
		fm = tune.FrameMax
	}
	c.sendOn(0, &frame.ConnectionTuneOk{ChannelMax: 1, FrameMax: fm, Heartbeat: 0})
	c.frameMax = fm
	c.sendOn(0, &frame.ConnectionOpen{VirtualHost: vhost})
	if err := c.flush(); err != nil {
		return err
	}
	if _, err := c.expect(0, &frame.ConnectionOpenOk{}); err != nil {
		return err
	}
	_, err = c.call(&frame.ChannelOpen{}, &frame.ChannelOpenOk{})
	return err
}

// sendOn appends method m on channel ch to the output.
func (c *wireConn) sendOn(ch uint16, m frame.Method) { c.out = frame.AppendMethodFrame(c.out, ch, m) }

// send appends method m on channel 1 to the output.
func (c *wireConn) send(m frame.Method) { c.sendOn(1, m) }

// publish appends a basic.publish with its content to the output.
func (c *wireConn) publish(exchange, key string, props *frame.Properties, body []byte) {
	c.send(&frame.BasicPublish{Exchange: exchange, RoutingKey: key})
	c.out = frame.AppendContent(c.out, 1, frame.ClassBasic, props, body, c.frameMax)
}

// flush writes the output.
func (c *wireConn) flush() error {
	if len(c.out) == 0 {
		return nil
	}
	_, err := c.nc.Write(c.out)
	c.out = c.out[:0]
	return err
}

// readFrame returns the next frame. Its payload aliases the read buffer:
// it is valid until done is called, which must happen before the next
// readFrame.
func (c *wireConn) readFrame() (f frame.Frame, done func(), err error) {
	need := 1
	for {
		if _, err := c.rd.Peek(need); err != nil {
			return frame.Frame{}, nil, err
		}
		b, _ := c.rd.Peek(c.rd.Buffered())
		f, n, err := frame.ParseFrame(b, c.frameMax)
		if err != nil {
			return frame.Frame{}, nil, err
		}
		if n > 0 {
			return f, func() { _, _ = c.rd.Discard(n) }, nil
		}
		// Wait for at least one more byte, or the whole frame once its
		// header says how long it is.
		need = len(b) + 1
		if len(b) >= 7 {
			size := int(b[3])<<24 | int(b[4])<<16 | int(b[5])<<8 | int(b[6])
			need = max(need, 7+size+1)
		}
	}
}

// closed turns a channel.close or connection.close into an error.
func closedErr(m frame.Method) error {
	switch m := m.(type) {
	case *frame.ChannelClose:
		return fmt.Errorf("channel closed by the broker: %d %s", m.ReplyCode, m.ReplyText)
	case *frame.ConnectionClose:
		return fmt.Errorf("connection closed by the broker: %d %s", m.ReplyCode, m.ReplyText)
	}
	return nil
}

// expect reads frames until a method arrives on ch, and checks it is
// want's kind.
func (c *wireConn) expect(ch uint16, want frame.Method) (frame.Method, error) {
	for {
		f, done, err := c.readFrame()
		if err != nil {
			return nil, err
		}
		if f.Type != frame.FrameMethod || f.Channel != ch {
			done()
			continue
		}
		m, err := frame.DecodeMethod(f.Payload)
		done()
		if err != nil {
			return nil, err
		}
		if err := closedErr(m); err != nil {
			return nil, err
		}
		wc, wm := want.ID()
		if gc, gm := m.ID(); gc != wc || gm != wm {
			return nil, fmt.Errorf("expected %s, got %s", want.Name(), m.Name())
		}
		return m, nil
	}
}

// call sends m on channel 1 and waits for the reply of reply's kind.
func (c *wireConn) call(m, reply frame.Method) (frame.Method, error) {
	c.send(m)
	if err := c.flush(); err != nil {
		return nil, err
	}
	return c.expect(1, reply)
}

// close sends connection.close and closes the socket without waiting
// for close-ok. It may run while another goroutine uses c: it writes
// straight to the socket, not through the output buffer.
func (c *wireConn) close() {
	_ = c.nc.SetWriteDeadline(time.Now().Add(2 * time.Second))
	_, _ = c.nc.Write(frame.AppendMethodFrame(nil, 0, &frame.ConnectionClose{ReplyCode: 200, ReplyText: "bye"}))
	_ = c.nc.Close()
}

// bind binds queue q to exchange with key.
func (c *wireConn) bind(q, exchange, key string) error {
	_, err := c.call(&frame.QueueBind{Queue: q, Exchange: exchange, RoutingKey: key}, &frame.QueueBindOk{})
	return err
}

// declareExchange declares a transient exchange.
func (c *wireConn) declareExchange(name, kind string) error {
	_, err := c.call(&frame.ExchangeDeclare{Exchange: name, Type: kind}, &frame.ExchangeDeclareOk{})
	return err
}

// consume reads deliveries until the connection fails or closes. Acks are
// written when nothing more is buffered to read: one write per batch of
// deliveries, one basic.ack per delivery.
func (c *wireConn) consume(r *run, cs *consumer) error {
	var (
		tag     uint64
		size    uint64 // body bytes still to come for the current delivery
		body    []byte // a body that spans frames
		spanned bool
	)
	for {
		if c.rd.Buffered() == 0 {
			if err := c.flush(); err != nil {
				return fmt.Errorf("basic.ack: %w", err)
			}
		}
		f, done, err := c.readFrame()
		if err != nil {
			return fmt.Errorf("deliveries stopped: %w", err)
		}
		switch f.Type {
		case frame.FrameMethod:
			m, err := c.dec.DecodeMethod(f.Payload)
			if err != nil {
				done()
				return err
			}
			switch m := m.(type) {
			case *frame.BasicDeliver:
				tag = m.DeliveryTag
			default:
				if err := closedErr(m); err != nil {
					done()
					return err
				}
			}
		case frame.FrameHeader:
			h, err := frame.ParseContentHeader(f.Payload)
			if err != nil {
				done()
				return err
			}
			size, body, spanned = h.BodySize, body[:0], false
			if size == 0 {
				r.record(cs, nil)
				c.send(&frame.BasicAck{DeliveryTag: tag})
			}
		case frame.FrameBody:
			size -= uint64(len(f.Payload))
			if size == 0 && !spanned {
				r.record(cs, f.Payload)
			} else {
				spanned = true
				body = append(body, f.Payload...)
				if size == 0 {
					r.record(cs, body)
				}
			}
			if size == 0 {
				c.send(&frame.BasicAck{DeliveryTag: tag})
			}
		}
		done()
	}
}

// wireConfirms is a producer's view of its publisher confirms, fed by the
// goroutine that reads its connection.
type wireConfirms struct {
	mu        sync.Mutex
	cond      sync.Cond
	confirmed uint64 // confirms received (acks and nacks)
	low       uint64 // every tag below low is confirmed
	seen      bitset // tags (as sequence numbers, tag-1) confirmed out of order or at all
	err       error
}

// settle marks tag (and with multiple, every earlier unconfirmed tag) as
// confirmed; ack says acked or nacked.
func (w *wireConfirms) settle(p *producer, tag uint64, multiple, ack bool) {
	w.mu.Lock()
	one := func(seq uint64) {
		if w.seen.add(seq) {
			w.confirmed++
			if ack {
				p.acked.add(seq)
			} else {
				p.nacked++
			}
		}
	}
	if multiple {
		for seq := w.low; seq < tag; seq++ {
			one(seq)
		}
	} else if tag > 0 {
		one(tag - 1)
	}
	for w.seen.has(w.low) {
		w.low++
	}
	w.mu.Unlock()
	w.cond.Broadcast()
}

func (w *wireConfirms) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
	w.cond.Broadcast()
}

// readConfirms reads the producer's connection: basic.ack and basic.nack
// until it fails or closes.
func readConfirms(c *wireConn, p *producer, w *wireConfirms) {
	var dec frame.Decoder
	for {
		f, done, err := c.readFrame()
		if err != nil {
			w.fail(fmt.Errorf("confirms stopped: %w", err))
			return
		}
		if f.Type != frame.FrameMethod {
			done()
			continue
		}
		m, err := dec.DecodeMethod(f.Payload)
		done()
		if err != nil {
			w.fail(err)
			return
		}
		switch m := m.(type) {
		case *frame.BasicAck:
			w.settle(p, m.DeliveryTag, m.Multiple, true)
		case *frame.BasicNack:
			w.settle(p, m.DeliveryTag, m.Multiple, false)
		default:
			if err := closedErr(m); err != nil {
				w.fail(err)
				return
			}
		}
	}
}

// wireFlushAt is how much output a producer gathers before writing even
// when it could publish more at once.
const wireFlushAt = 32 << 10

// produce publishes as producer i of r until r stops, to exchange with the
// keys in turn, then waits for every confirm (in confirm mode).
func (c *wireConn) produce(ctx context.Context, r *run, i int, exchange string, keys []string) error {
	sc, p := r.sc, r.prods[i]
	props := &frame.Properties{Flags: frame.FlagContentType, ContentType: "application/octet-stream"}
	if sc.Persistent {
		props.Flags |= frame.FlagDeliveryMode
		props.DeliveryMode = 2
	}
	body := payload(sc.Size)
	var w *wireConfirms
	if sc.Confirms > 0 {
		w = &wireConfirms{}
		w.cond.L = &w.mu
		go readConfirms(c, p, w)
	}
	// unconfirmed waits until fewer than limit publishes are unconfirmed.
	unconfirmed := func(limit uint64) error {
		w.mu.Lock()
		defer w.mu.Unlock()
		for p.sent-w.confirmed >= limit && w.err == nil && ctx.Err() == nil {
			w.cond.Wait()
		}
		if w.err != nil {
			return w.err
		}
		return ctx.Err()
	}
	stopWait := context.AfterFunc(ctx, func() {
		if w != nil {
			w.cond.Broadcast()
		}
	})
	defer stopWait()
	for seq := uint64(0); ; seq++ {
		if w != nil {
			w.mu.Lock()
			full := p.sent-w.confirmed >= uint64(sc.Confirms)
			w.mu.Unlock()
			if full {
				if err := c.flush(); err != nil {
					return fmt.Errorf("producer %d: basic.publish: %w", i, err)
				}
				if err := unconfirmed(uint64(sc.Confirms)); err != nil {
					return fmt.Errorf("producer %d: %w", i, err)
				}
			}
		}
		if len(c.out) > 0 && (len(c.out) >= wireFlushAt || r.outstanding() >= r.window) {
			// About to wait for the window: what is gathered goes now.
			if err := c.flush(); err != nil {
				return fmt.Errorf("producer %d: basic.publish: %w", i, err)
			}
		}
		if !r.acquire() {
			break
		}
		r.stamp(body, p, seq)
		c.publish(exchange, keys[seq%uint64(len(keys))], props, body)
		if w != nil {
			w.mu.Lock()
			p.sent++
			w.mu.Unlock()
		} else {
			p.sent++
		}
	}
	if err := c.flush(); err != nil {
		return fmt.Errorf("producer %d: basic.publish: %w", i, err)
	}
	if w != nil {
		if err := unconfirmed(1); err != nil {
			return fmt.Errorf("producer %d: %w", i, err)
		}
	}
	return nil
}
