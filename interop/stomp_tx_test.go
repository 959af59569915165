package interop

import (
	"testing"

	"github.com/go-stomp/stomp/v3"
)

// Transactions: BEGIN, COMMIT and ABORT over SEND, ACK and NACK.

// stompTxSetup declares the queues in and out (durable, as /queue/ does),
// puts one message in "in" and returns a connection with a
// client-individual subscription to "in" holding that message, unacked.
func stompTxSetup(t *testing.T, b *stompBroker, v stomp.Version, in, out string) (*stomp.Conn, *stomp.Subscription, *stomp.Message) {
	t.Helper()
	ch := stompAMQP(t, b.amqpURL)
	for _, q := range []string{in, out} {
		if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	c := stompDial(t, b.addr, v)
	stompSend(t, c, "/queue/"+in, "m1")
	s := stompSub(t, c, "/queue/"+in, stomp.AckClientIndividual)
	m := stompWantBodies(t, s, "m1")[0]
	return c, s, m
}

// TestSTOMPTxCommit: a transaction's SENDs and ACKs take effect at COMMIT,
// not before.
func TestSTOMPTxCommit(t *testing.T) {
	b := startStompBroker(t)
	forVersions(t, func(t *testing.T, v stomp.Version) {
		in, out := "tx-commit-in-"+string(v), "tx-commit-out-"+string(v)
		c, _, m := stompTxSetup(t, b, v, in, out)
		tx, err := c.BeginWithError()
		if err != nil {
			t.Fatal(err)
		}
		for _, body := range []string{"t1", "t2"} {
			if err := tx.Send("/queue/"+out, "", []byte(body)); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Ack(m); err != nil {
			t.Fatal(err)
		}
		stompSync(t, c)
		if n := stompQueueCount(t, b.amqpURL, out); n != 0 {
			t.Fatalf("before COMMIT %s holds %d messages", out, n)
		}
		if err := tx.CommitWithReceipt(); err != nil {
			t.Fatal(err)
		}
		if n := stompQueueCount(t, b.amqpURL, out); n != 2 {
			t.Fatalf("after COMMIT %s holds %d messages, want 2", out, n)
		}
		if err := c.Disconnect(); err != nil {
			t.Fatal(err)
		}
		if n := stompQueueCount(t, b.amqpURL, in); n != 0 {
			t.Fatalf("the committed ACK did not settle m1: %d messages back in %s", n, in)
		}
		c2 := stompDial(t, b.addr, v)
		stompWantBodies(t, stompSub(t, c2, "/queue/"+out, stomp.AckAuto), "t1", "t2")
	})
}

// TestSTOMPTxAbort: ABORT discards the transaction's SENDs and leaves its
// ACKed messages unacknowledged: they can be acknowledged again, or come
// back redelivered when the connection ends.
func TestSTOMPTxAbort(t *testing.T) {
	b := startStompBroker(t)
	forVersions(t, func(t *testing.T, v stomp.Version) {
		for _, then := range []string{"ack-again", "disconnect"} {
			t.Run(then, func(t *testing.T) {
				in, out := "tx-abort-in-"+then+"-"+string(v), "tx-abort-out-"+then+"-"+string(v)
				c, _, m := stompTxSetup(t, b, v, in, out)
				tx, err := c.BeginWithError()
				if err != nil {
					t.Fatal(err)
				}
				if err := tx.Send("/queue/"+out, "", []byte("discarded")); err != nil {
					t.Fatal(err)
				}
				if err := tx.Ack(m); err != nil {
					t.Fatal(err)
				}
				if err := tx.AbortWithReceipt(); err != nil {
					t.Fatal(err)
				}
				if n := stompQueueCount(t, b.amqpURL, out); n != 0 {
					t.Fatalf("after ABORT %s holds %d messages", out, n)
				}
				switch then {
				case "ack-again":
					if err := c.Ack(m); err != nil {
						t.Fatal(err)
					}
					stompSync(t, c) // an ERROR for the ACK would fail this
					if err := c.Disconnect(); err != nil {
						t.Fatal(err)
					}
					if n := stompQueueCount(t, b.amqpURL, in); n != 0 {
						t.Fatalf("m1 acknowledged after ABORT, yet %d messages back in %s", n, in)
					}
				case "disconnect":
					if err := c.Disconnect(); err != nil {
						t.Fatal(err)
					}
					c2 := stompDial(t, b.addr, v)
					again := stompWantBodies(t, stompSub(t, c2, "/queue/"+in, stomp.AckClientIndividual), "m1")[0]
					if again.Header.Get("redelivered") != "true" {
						t.Errorf("m1 came back with redelivered %q", again.Header.Get("redelivered"))
					}
				}
			})
		}
	})
}

// TestSTOMPTxNack: a NACK in a transaction requeues at COMMIT, and not at
// all after ABORT.
func TestSTOMPTxNack(t *testing.T) {
	b := startStompBroker(t)
	for _, v := range []stomp.Version{stomp.V11, stomp.V12} {
		t.Run(string(v), func(t *testing.T) {
			t.Run("commit", func(t *testing.T) {
				in := "tx-nack-commit-" + string(v)
				c, s, m := stompTxSetup(t, b, v, in, in+"-out")
				tx, err := c.BeginWithError()
				if err != nil {
					t.Fatal(err)
				}
				if err := tx.Nack(m); err != nil {
					t.Fatal(err)
				}
				stompSync(t, c)
				stompNothing(t, s) // not requeued yet
				if err := tx.CommitWithReceipt(); err != nil {
					t.Fatal(err)
				}
				again := stompWantBodies(t, s, "m1")[0]
				if again.Header.Get("redelivered") != "true" {
					t.Errorf("m1 came back with redelivered %q", again.Header.Get("redelivered"))
				}
				if err := c.Ack(again); err != nil {
					t.Fatal(err)
				}
			})
			t.Run("abort", func(t *testing.T) {
				in := "tx-nack-abort-" + string(v)
				c, s, m := stompTxSetup(t, b, v, in, in+"-out")
				tx, err := c.BeginWithError()
				if err != nil {
					t.Fatal(err)
				}
				if err := tx.Nack(m); err != nil {
					t.Fatal(err)
				}
				if err := tx.AbortWithReceipt(); err != nil {
					t.Fatal(err)
				}
				stompNothing(t, s)
				if err := c.Ack(m); err != nil {
					t.Fatal(err)
				}
				if err := c.Disconnect(); err != nil {
					t.Fatal(err)
				}
				if n := stompQueueCount(t, b.amqpURL, in); n != 0 {
					t.Fatalf("%d messages back in %s", n, in)
				}
			})
		})
	}
}

// TestSTOMPTxErrors: frames naming a transaction that is not open get an
// ERROR (with receipt-id), and so does a second BEGIN of an open one.
func TestSTOMPTxErrors(t *testing.T) {
	b := startStompBroker(t)
	forVersions(t, func(t *testing.T, v stomp.Version) {
		q := "/queue/tx-errors-" + string(v)
		for _, tc := range []struct {
			name  string
			setup func(r *stompRaw)
			cmd   string
			hs    []string
		}{
			{"send-unknown", nil, "SEND", []string{"destination", q, "transaction", "nope"}},
			{"commit-unknown", nil, "COMMIT", []string{"transaction", "nope"}},
			{"abort-unknown", nil, "ABORT", []string{"transaction", "nope"}},
			{"begin-twice", func(r *stompRaw) { r.receipt("BEGIN", "", "b", "transaction", "tx1") }, "BEGIN", []string{"transaction", "tx1"}},
			{"commit-after-commit", func(r *stompRaw) {
				r.receipt("BEGIN", "", "b", "transaction", "tx1")
				r.receipt("COMMIT", "", "c", "transaction", "tx1")
			}, "COMMIT", []string{"transaction", "tx1"}},
			{"send-after-abort", func(r *stompRaw) {
				r.receipt("BEGIN", "", "b", "transaction", "tx1")
				r.receipt("ABORT", "", "a", "transaction", "tx1")
			}, "SEND", []string{"destination", q, "transaction", "tx1"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := dialStompRaw(t, b.addr)
				r.connect(string(v))
				if tc.setup != nil {
					tc.setup(r)
				}
				r.frame(tc.cmd, "x", append(tc.hs, "receipt", "r-"+tc.name)...)
				if f := r.expectError(); f.get("receipt-id") != "r-"+tc.name {
					t.Errorf("ERROR without receipt-id r-%s: %s", tc.name, f)
				}
			})
		}
		t.Run("ack-unknown", func(t *testing.T) {
			r := dialStompRaw(t, b.addr)
			r.connect(string(v))
			r.receipt("SUBSCRIBE", "", "s", "destination", q, "id", "s1", "ack", "client-individual")
			r.receipt("SEND", "x", "p", "destination", q)
			m := r.expect("MESSAGE")
			r.frame("ACK", "", append(stompAckHeaders(string(v), m), "transaction", "nope", "receipt", "r-ack")...)
			if f := r.expectError(); f.get("receipt-id") != "r-ack" {
				t.Errorf("ERROR without receipt-id r-ack: %s", f)
			}
		})
	})
}

// TestSTOMPTxAbortOnDisconnect: a transaction still open when its
// connection ends is aborted: its SENDs are discarded.
func TestSTOMPTxAbortOnDisconnect(t *testing.T) {
	b := startStompBroker(t)
	forVersions(t, func(t *testing.T, v stomp.Version) {
		for _, end := range []string{"disconnect", "close"} {
			t.Run(end, func(t *testing.T) {
				q := "/queue/tx-open-" + end + "-" + string(v)
				r := dialStompRaw(t, b.addr)
				r.connect(string(v))
				// An exclusive queue of the connection shows when the broker
				// has seen it go.
				owned := "tx-owner-" + end + "-" + string(v)
				r.receipt("SUBSCRIBE", "", "o", "destination", "/topic/owned", "id", "o1", "x-queue-name", owned)
				r.receipt("BEGIN", "", "b", "transaction", "tx1")
				r.receipt("SEND", "uncommitted", "s", "destination", q, "transaction", "tx1")
				if end == "disconnect" {
					r.receipt("DISCONNECT", "", "bye")
					r.expectEOF()
				} else {
					_ = r.c.Close()
				}
				stompAwaitQueueGone(t, b.amqpURL, owned)
				c := stompDial(t, b.addr, v)
				stompSend(t, c, q, "marker")
				stompWantBodies(t, stompSub(t, c, q, stomp.AckAuto), "marker")
			})
		}
	})
}
