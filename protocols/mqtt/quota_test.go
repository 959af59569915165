package mqtt

import (
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/junction-broker/junction/protocols"
	"github.com/junction-broker/junction/router"
	"github.com/junction-broker/junction/storage/memstore"
)

// TestRefusedConnectTakesNothingOver: a CONNECT refused for the
// connection limit does nothing else: the session holding the same client
// id stays connected, in every protocol version.
func TestRefusedConnectTakesNothingOver(t *testing.T) {
	for _, tc := range []struct {
		v  byte
		rc byte
	}{{3, 0x03}, {4, 0x03}, {5, rcQuotaExceeded}} {
		holder := newHarness(t, Config{})
		holder.connectOK(tc.v, "dev")
		h := holder.peer()
		h.c.SetRefusal(&protocols.ConnLimitError{Limit: 2})
		h.v = tc.v
		h.send(h.encode(connectPacket(tc.v, "dev", false, 0, "guest", "guest")))
		if ack := h.expect(tConnack); ack.ReasonCode != tc.rc || ack.SessionPresent {
			t.Fatalf("v%d: CONNACK %+v, want %#x", tc.v, ack, tc.rc)
		}
		holder.send(holder.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tPingreq}}))
		holder.expect(tPingresp)
		if holder.c.IsClosed() {
			t.Fatalf("v%d: a refused CONNECT took the session over", tc.v)
		}
	}
}

// quotaHarness is a harness over a router whose vhost holds at most one
// queue, with that place already taken.
func quotaHarness(t *testing.T) *harness {
	t.Helper()
	st := memstore.New()
	t.Cleanup(func() { _ = st.Close() })
	rt, err := router.New(router.Config{Store: st, MaxQueues: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.VHost("/").DeclareQueue("taken", router.QueueOptions{}, false, 0, nil); err != nil {
		t.Fatal(err)
	}
	return openHarness(t, New(Config{Router: rt, Store: st}), st)
}

// TestQueueLimitSubscribe: a subscription that needs a queue beyond the
// vhost's limit gets its SUBACK failure, 0x80 or MQTT 5's 0x97 (a shared
// subscription's group queue as well), and the connection goes on; with a
// place free, the same subscription works.
func TestQueueLimitSubscribe(t *testing.T) {
	for _, tc := range []struct {
		v  byte
		rc byte
	}{{4, rcUnspecified}, {5, rcQuotaExceeded}} {
		h := quotaHarness(t)
		h.connectOK(tc.v, "sub")
		filters := []string{"a/b"}
		if tc.v == 5 {
			filters = append(filters, "$share/g/c/d")
		}
		ack := h.subscribe(1, 1, filters...)
		for i, rc := range ack.ReasonCodes {
			if rc != tc.rc {
				t.Fatalf("v%d: SUBACK codes %x, want %#x for %s", tc.v, ack.ReasonCodes, tc.rc, filters[i])
			}
		}
		if h.c.IsClosed() {
			t.Fatalf("v%d: a queue limit closed the connection", tc.v)
		}
		if _, err := h.rt.VHost("/").DeleteQueue("taken", false, false, 0, nil); err != nil {
			t.Fatal(err)
		}
		if ack := h.subscribe(2, 1, "a/b"); ack.ReasonCodes[0] != 1 {
			t.Fatalf("v%d: SUBACK %x with a place free, want 1", tc.v, ack.ReasonCodes)
		}
	}
}

// TestQueueLimitKeepsNoState: a persistent session refused at CONNECT for
// the queue limit leaves no session state behind: refused client ids must
// not pile up in the adapter.
func TestQueueLimitKeepsNoState(t *testing.T) {
	for _, v := range []byte{4, 5} {
		h := quotaHarness(t)
		var ack *packets.Packet
		if v == 5 {
			ack = h.connect5("keep", packets.Properties{SessionExpiryInterval: 3600, SessionExpiryIntervalFlag: true})
		} else {
			h.v = v
			h.send(h.encode(connectPacket(v, "keep", false, 0, "", "")))
			ack = h.expect(tConnack)
		}
		if want := map[byte]byte{4: 0x03, 5: rcQuotaExceeded}[v]; ack.ReasonCode != want {
			t.Fatalf("v%d: CONNACK %+v, want %#x", v, ack, want)
		}
		h.a.mu.Lock()
		kept := len(h.a.states)
		h.a.mu.Unlock()
		if kept != 0 {
			t.Fatalf("v%d: %d session states kept for a refused session", v, kept)
		}
	}
}

// TestSlowConsumerFail311: MQTT 3.1.1 has no server DISCONNECT: a slow
// consumer's connection just closes.
func TestSlowConsumerFail311(t *testing.T) {
	h := newHarness(t, Config{})
	h.connectOK(4, "slow3")
	if b := h.s.Fail(protocols.ErrSlowConsumer); len(b) != 0 {
		t.Fatalf("MQTT 3.1.1 Fail wrote % x, want nothing", b)
	}
}
