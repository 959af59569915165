package load

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/go-stomp/stomp/v3"
	amqp "github.com/rabbitmq/amqp091-go"
)

// stompWriteQueue is go-stomp's outgoing frame queue on a producer's
// connection, set explicitly because the producer's buffer ring depends on
// it.
const stompWriteQueue = 20

// stompDriver runs STOMP 1.2 scenarios through go-stomp/stomp/v3 on the
// RabbitMQ-style destination /queue/bench-RUN (a durable queue of that name
// in the default exchange, on RabbitMQ and on Junction), with
// client-individual acks. STOMP cannot delete a queue, so teardown deletes
// it over AMQP when the broker speaks it.
type stompDriver struct {
	addr    string
	amqpURL string
	mu      sync.Mutex // guards conns and nets: close may run on any goroutine
	conns   []*stomp.Conn
	nets    []net.Conn
	pubs    []*stomp.Conn
	queue   string
}

// dial connects with writeQueue frames of room in go-stomp's outgoing queue.
//
// go-stomp reads and writes on one goroutine, which blocks handing a
// MESSAGE to a full subscription channel; a consumer that acks from the
// goroutine reading that channel then blocks on a full outgoing queue, and
// both wait for ever (the broker, its window full, sends nothing more). So a
// consumer's connection gets room for every ack its prefetch allows.
func (d *stompDriver) dial(ctx context.Context, writeQueue int) (*stomp.Conn, error) {
	var dialer net.Dialer
	nc, err := dialer.DialContext(ctx, "tcp", d.addr)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.nets = append(d.nets, nc)
	d.mu.Unlock()
	c, err := stomp.Connect(nc,
		stomp.ConnOpt.Login("guest", "guest"),
		stomp.ConnOpt.Host("/"),
		stomp.ConnOpt.AcceptVersion(stomp.V12),
		stomp.ConnOpt.WriteChannelCapacity(writeQueue),
		stomp.ConnOpt.MsgSendTimeout(30*time.Second))
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.conns = append(d.conns, c)
	d.mu.Unlock()
	return c, nil
}

func (d *stompDriver) setup(ctx context.Context, r *run) error {
	if r.sc.Sinks != 1 {
		return errors.New("stomp: one queue only")
	}
	d.queue = "bench-" + r.id
	dest := "/queue/" + d.queue
	for i, c := range r.cons {
		conn, err := d.dial(ctx, r.sc.Prefetch+stompWriteQueue)
		if err != nil {
			return err
		}
		sub, err := conn.Subscribe(dest, stomp.AckClientIndividual,
			stomp.SubscribeOpt.Header("prefetch-count", strconv.Itoa(r.sc.Prefetch)))
		if err != nil {
			return fmt.Errorf("subscribe: %w", err)
		}
		r.wg.Go(func() {
			for m := range sub.C {
				if m.Err != nil {
					if !r.closing.Load() {
						r.fail(fmt.Errorf("consumer %d: %w", i, m.Err))
					}
					return
				}
				r.record(c, m.Body)
				if err := conn.Ack(m); err != nil {
					if !r.closing.Load() {
						r.fail(fmt.Errorf("consumer %d: ack: %w", i, err))
					}
					return
				}
			}
		})
	}
	for range r.prods {
		conn, err := d.dial(ctx, stompWriteQueue)
		if err != nil {
			return err
		}
		d.pubs = append(d.pubs, conn)
	}
	return nil
}

func (d *stompDriver) produce(_ context.Context, r *run, i int) error {
	sc, p, conn := r.sc, r.prods[i], d.pubs[i]
	dest := "/queue/" + d.queue
	// go-stomp's Send queues the frame, body aliased, for its writer
	// goroutine, which writes one frame at a time. With at most
	// stompWriteQueue frames queued and one being written, a buffer used
	// stompWriteQueue+2 sends ago has been written: reuse it only after
	// Inflight ≥ that many sends.
	k := uint64(max(sc.Inflight, stompWriteQueue+2))
	bufs := make([][]byte, k)
	for j := range bufs {
		bufs[j] = payload(sc.Size)
	}
	for seq := uint64(0); r.acquire(); seq++ {
		buf := bufs[seq%k]
		r.stamp(buf, p, seq)
		if err := conn.Send(dest, "application/octet-stream", buf); err != nil {
			return fmt.Errorf("producer %d: send: %w", i, err)
		}
		p.sent++
	}
	return nil
}

// close closes the sockets first: go-stomp's own close waits on a lock
// that a send blocked on a stalled broker holds.
func (d *stompDriver) close() {
	d.mu.Lock()
	conns, nets := d.conns, d.nets
	d.conns, d.nets = nil, nil
	d.mu.Unlock()
	for _, nc := range nets {
		_ = nc.Close()
	}
	for _, c := range conns {
		_ = c.MustDisconnect()
	}
}

func (d *stompDriver) teardown(ctx context.Context, r *run) error {
	if d.queue == "" || d.amqpURL == "" {
		return nil
	}
	c, err := amqp.Dial(d.amqpURL)
	if err != nil {
		return err
	}
	defer c.CloseDeadline(time.Now().Add(5 * time.Second))
	ch, err := c.Channel()
	if err != nil {
		return err
	}
	_, err = ch.QueueDelete(d.queue, false, false, false)
	return err
}
