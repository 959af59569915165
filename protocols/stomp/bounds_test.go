package stomp

import (
	"strconv"
	"strings"
	"testing"

	"github.com/junction-broker/junction/protocols"
)

// Per-connection bounds on what a client can make the broker hold: names,
// subscriptions, transactions, replies it does not read.

// TestDestinationNameLimit: a queue name, exchange name or routing key is
// at most 255 bytes (an AMQP short string), on SEND and on SUBSCRIBE.
func TestDestinationNameLimit(t *testing.T) {
	ok := strings.Repeat("k", maxName)
	long := ok + "k"
	h := newHarness(t, Config{})
	h.connect()
	h.frame("SEND", "x", "destination", "/queue/"+ok, "receipt", "r1")
	h.expect("RECEIPT")
	h.frame("SUBSCRIBE", "", "destination", "/exchange/amq.topic/"+ok, "id", "s1", "receipt", "r2")
	h.expect("RECEIPT")
	for _, d := range []string{"/queue/" + long, "/topic/" + long, "/exchange/" + long, "/exchange/amq.topic/" + long, "/amq/queue/" + long} {
		for _, cmd := range []string{"SEND", "SUBSCRIBE"} {
			h := newHarness(t, Config{})
			h.connect()
			h.frame(cmd, "", "destination", d, "id", "s1", "receipt", "r")
			f := h.expect("ERROR")
			if f.Header.Get("message") != "Invalid destination" || f.Header.Get("receipt-id") != "r" {
				t.Errorf("%s %s: ERROR %v", cmd, d[:20], f.Header)
			}
			if h.feedErr == nil && !h.c.IsClosed() {
				t.Errorf("%s %s: connection not closed", cmd, d[:20])
			}
			if q := h.rt.VHost("/").Queue(long); q != nil {
				t.Errorf("%s %s: queue declared", cmd, d[:20])
			}
		}
	}
}

// TestMaxSubscriptions: SUBSCRIBE and /temp-queue/ reply-tos count
// against one bound; the one beyond it is an ERROR.
func TestMaxSubscriptions(t *testing.T) {
	for _, last := range [][]string{
		{"SUBSCRIBE", "destination", "/queue/q3", "id", "s3"},
		{"SEND", "destination", "/queue/q3", "reply-to", "/temp-queue/b"},
	} {
		h := newHarness(t, Config{MaxSubscriptions: 2})
		h.connect()
		h.frame("SUBSCRIBE", "", "destination", "/queue/q1", "id", "s1", "receipt", "r1")
		h.expect("RECEIPT")
		h.frame("SEND", "x", "destination", "/queue/q2", "reply-to", "/temp-queue/a", "receipt", "r2")
		h.expect("RECEIPT")
		// The same temp queue again is no new subscription.
		h.frame("SEND", "x", "destination", "/queue/q2", "reply-to", "/temp-queue/a", "receipt", "r3")
		h.expect("RECEIPT")
		h.frame(last[0], "x", append(last[1:], "receipt", "r4")...)
		f := h.expect("ERROR")
		if f.Header.Get("message") != "Too many subscriptions" || f.Header.Get("receipt-id") != "r4" {
			t.Errorf("%s: ERROR %v %q", last[0], f.Header, f.Body)
		}
	}
}

// TestTxLimitsPerConnection: what open transactions hold is bounded for
// the connection, not for each of them, and headers count as well as
// bodies; COMMIT and ABORT give their share back.
func TestTxLimitsPerConnection(t *testing.T) {
	heavy := strings.Repeat("h", 600)
	h := newHarness(t, Config{MaxTxBytes: 1000})
	h.connect()
	for _, tx := range []string{"t1", "t2", "t3"} {
		h.frame("BEGIN", "", "transaction", tx, "receipt", "b-"+tx)
		h.expect("RECEIPT")
	}
	h.frame("SEND", "", "destination", "/queue/tx", "transaction", "t1", "x-h", heavy, "receipt", "s1")
	h.expect("RECEIPT")
	h.frame("ABORT", "", "transaction", "t1", "receipt", "a1")
	h.expect("RECEIPT")
	h.frame("SEND", strings.Repeat("b", 600), "destination", "/queue/tx", "transaction", "t2", "receipt", "s2")
	h.expect("RECEIPT")
	h.frame("COMMIT", "", "transaction", "t2", "receipt", "c2")
	h.expect("RECEIPT")
	h.frame("SEND", "", "destination", "/queue/tx", "transaction", "t3", "x-h", heavy, "receipt", "s3")
	h.expect("RECEIPT")
	h.frame("BEGIN", "", "transaction", "t4")
	h.frame("SEND", "", "destination", "/queue/tx", "transaction", "t4", "x-h", heavy, "receipt", "s4")
	if f := h.expect("ERROR"); f.Header.Get("message") != "Transaction too large" {
		t.Fatalf("ERROR %v %q", f.Header, f.Body)
	}
}

// TestUnreadRepliesStopInput: Feed stops taking frames once a batch of
// replies waits for Output, so a client that sends without reading fills
// the transport's inbound buffer rather than the session's output; Output
// wakes the transport to offer the rest, and an inbound overflow while
// stopped is called a slow consumer.
func TestUnreadRepliesStopInput(t *testing.T) {
	h := newHarness(t, Config{})
	h.connect()
	id := strings.Repeat("r", 4<<10)
	var in []byte
	for i := range 2 * batchBytes / len(id) {
		in = frameBytes(in, "BEGIN", "transaction", "t", "receipt", id+strconv.Itoa(i))
		in = frameBytes(in, "ABORT", "transaction", "t", "receipt", id)
	}
	n, err := h.s.Feed(in)
	if err != nil || n == 0 || n >= len(in) {
		t.Fatalf("Feed took %d of %d bytes (err %v), want it to stop part way", n, len(in), err)
	}
	if len(h.s.cur) > batchBytes+2*len(id) {
		t.Fatalf("%d bytes of replies queued, want about %d", len(h.s.cur), batchBytes)
	}
	select {
	case <-h.c.Woken():
	default:
	}
	if out := h.s.Output(nil); len(out) == 0 {
		t.Fatal("no output")
	}
	select {
	case <-h.c.Woken():
	default:
		t.Fatal("Output did not wake the transport to offer the unread input")
	}
	if m, _ := h.s.Feed(in[n:]); m == 0 {
		t.Fatal("Feed took nothing after Output")
	}
	if _, err := h.s.Feed(in[n:]); err != nil {
		t.Fatal(err)
	}
	h.out = append(h.out[:0], h.s.Fail(protocols.ErrInboundLimit)...)
	h.got = h.got[:0]
	h.parse()
	if f := h.expect("ERROR"); f.Header.Get("message") != "slow consumer" {
		t.Fatalf("ERROR %v %q", f.Header, f.Body)
	}
}

// frameBytes appends a client frame without body to dst.
func frameBytes(dst []byte, cmd string, headers ...string) []byte {
	dst = append(dst, cmd+"\n"...)
	for i := 0; i+1 < len(headers); i += 2 {
		dst = append(dst, headers[i]+":"+headers[i+1]+"\n"...)
	}
	return append(dst, "\n\x00"...)
}
