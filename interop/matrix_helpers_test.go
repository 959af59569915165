package interop

import (
	"encoding/binary"
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	paho "github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/go-stomp/stomp/v3"
	amqp "github.com/rabbitmq/amqp091-go"
)

// Helpers of the cross-protocol matrix (matrix_test.go): a wire tap under
// amqp091-go, the one view every client's message is flattened to, and
// the field-by-field comparison.

// field is one header or User Property. AMQP values keep their wire type
// (see amqpValue); MQTT and STOMP ones are strings.
type field struct {
	k string
	v any
}

// view is a message as one client library handed it over, flattened to
// what the matrix compares.
type view struct {
	where   string            // AMQP "exchange|routing key", MQTT topic, STOMP destination
	qos     int               // MQTT: the PUBLISH's QoS; -1 elsewhere
	props   map[string]string // properties by the receiving protocol's names, as text
	headers []field           // headers or User Properties in order, x-junction-* dropped
	body    []byte
}

// dropProvenance removes the provenance headers (x-junction-protocol,
// -user, -client) that another change adds to every message: the matrix
// passes with and without them.
func dropProvenance(h []field) []field {
	var out []field
	for _, f := range h {
		if !strings.HasPrefix(f.k, "x-junction-") {
			out = append(out, f)
		}
	}
	return out
}

// render is a header value as comparable text that keeps its type: an
// AMQP int32 42 and the string "42" differ.
func render(v any) string {
	switch x := v.(type) {
	case nil:
		return "V"
	case string:
		return "S" + strconv.Quote(x)
	case []byte:
		return "x" + strconv.Quote(string(x))
	case bool:
		return "t:" + strconv.FormatBool(x)
	case int8:
		return "b:" + strconv.Itoa(int(x))
	case uint8:
		return "B:" + strconv.Itoa(int(x))
	case int16:
		return "s:" + strconv.Itoa(int(x))
	case uint16:
		return "u:" + strconv.Itoa(int(x))
	case int32:
		return "I:" + strconv.Itoa(int(x))
	case uint32:
		return "i:" + strconv.FormatUint(uint64(x), 10)
	case int64:
		return "l:" + strconv.FormatInt(x, 10)
	case float32:
		return "f:" + strconv.FormatFloat(float64(x), 'g', -1, 32)
	case float64:
		return "d:" + strconv.FormatFloat(x, 'g', -1, 64)
	case decimal:
		return fmt.Sprintf("D:%d/10^%d", x.value, x.scale)
	case time.Time:
		return "T:" + strconv.FormatInt(x.Unix(), 10)
	case []any:
		s := make([]string, len(x))
		for i, e := range x {
			s[i] = render(e)
		}
		return "A[" + strings.Join(s, " ") + "]"
	case []field:
		return "F{" + renderFields(x) + "}"
	}
	return fmt.Sprintf("?%T(%v)", v, v)
}

func renderFields(h []field) string {
	s := make([]string, len(h))
	for i, f := range h {
		s[i] = f.k + "=" + render(f.v)
	}
	return strings.Join(s, " ")
}

// compareView reports every difference between the view a client got
// and the one the mapping predicts, field by field; headers are compared
// in order. An MQTT message-expiry may be up to two seconds below the
// prediction: it is what is left of the interval.
func compareView(t testing.TB, what string, want, got view) {
	t.Helper()
	if got.where != want.where {
		t.Errorf("%s: delivered to %q, want %q", what, got.where, want.where)
	}
	if got.qos != want.qos {
		t.Errorf("%s: QoS %d, want %d", what, got.qos, want.qos)
	}
	if string(got.body) != string(want.body) {
		t.Errorf("%s: body %q (%d bytes), want %q (%d bytes)", what, first32(got.body), len(got.body), first32(want.body), len(want.body))
	}
	for _, k := range sortedKeys(want.props, got.props) {
		w, wok := want.props[k]
		g, gok := got.props[k]
		switch {
		case wok && gok && k == "message-expiry":
			wn, _ := strconv.Atoi(w)
			gn, err := strconv.Atoi(g)
			if err != nil || gn > wn || gn < wn-2 {
				t.Errorf("%s: property %s = %s, want %s (at most 2 s less)", what, k, g, w)
			}
		case wok && gok && g != w:
			t.Errorf("%s: property %s = %q, want %q", what, k, g, w)
		case wok && !gok:
			t.Errorf("%s: property %s missing, want %q", what, k, w)
		case !wok && gok:
			t.Errorf("%s: property %s = %q, want none", what, k, g)
		}
	}
	wh, gh := renderFields(dropProvenance(want.headers)), renderFields(dropProvenance(got.headers))
	if wh != gh {
		t.Errorf("%s: headers\n\tgot  %s\n\twant %s", what, gh, wh)
	}
}

func sortedKeys(ms ...map[string]string) []string {
	var ks []string
	for _, m := range ms {
		for k := range m {
			if !slices.Contains(ks, k) {
				ks = append(ks, k)
			}
		}
	}
	slices.Sort(ks)
	return ks
}

// Views of what each client library hands over.

// mqtt5View flattens a paho.golang publish. Property names are the
// matrix's for MQTT 5 (see the mapping table).
func mqtt5View(p *paho.Publish) view {
	v := view{where: p.Topic, qos: int(p.QoS), props: map[string]string{}, body: p.Payload}
	if pp := p.Properties; pp != nil {
		if pp.PayloadFormat != nil {
			v.props["payload-format"] = strconv.Itoa(int(*pp.PayloadFormat))
		}
		if pp.MessageExpiry != nil {
			v.props["message-expiry"] = strconv.FormatUint(uint64(*pp.MessageExpiry), 10)
		}
		if pp.ContentType != "" {
			v.props["content-type"] = pp.ContentType
		}
		if pp.ResponseTopic != "" {
			v.props["response-topic"] = pp.ResponseTopic
		}
		if pp.CorrelationData != nil {
			v.props["correlation-data"] = string(pp.CorrelationData)
		}
		if pp.SubscriptionIdentifier != nil {
			v.props["subscription-identifier"] = strconv.Itoa(*pp.SubscriptionIdentifier)
		}
		for _, u := range pp.User {
			v.headers = append(v.headers, field{u.Key, u.Value})
		}
	}
	if p.Retain {
		v.props["retain"] = "true"
	}
	return v
}

// mqtt3View flattens a paho.mqtt.golang message: MQTT 3.1.1 has no
// properties.
func mqtt3View(m mqtt3.Message) view {
	v := view{where: m.Topic(), qos: int(m.Qos()), props: map[string]string{}, body: m.Payload()}
	if m.Retained() {
		v.props["retain"] = "true"
	}
	return v
}

// stompFrameHeaders are the MESSAGE headers that belong to the delivery,
// not to the message: checked apart (stompView), not compared.
var stompFrameHeaders = map[string]bool{
	"subscription": true, "message-id": true, "ack": true, "destination": true, "content-length": true, "redelivered": true,
}

// stompPropHeaders are the MESSAGE headers that carry router properties
// (see the mapping table); the others are the message's headers.
var stompPropHeaders = map[string]bool{
	"content-type": true, "content-encoding": true, "correlation-id": true, "reply-to": true, "expiration": true,
	"priority": true, "persistent": true, "amqp-message-id": true, "timestamp": true, "type": true, "app-id": true, "user-id": true,
}

// stompView flattens a go-stomp MESSAGE. It fails the test on a frame
// header that is missing or wrong: subscription, message-id, ack (STOMP
// 1.2, client acks), content-length, redelivered.
func stompView(t testing.TB, m *stomp.Message, sub string, clientAck, redelivered bool) view {
	t.Helper()
	v := view{where: m.Header.Get("destination"), qos: -1, props: map[string]string{}, body: m.Body}
	for i := range m.Header.Len() {
		k, val := m.Header.GetAt(i)
		switch {
		case stompFrameHeaders[k]:
		case stompPropHeaders[k]:
			if _, dup := v.props[k]; dup {
				t.Errorf("MESSAGE header %s repeated", k)
			}
			v.props[k] = val
		default:
			v.headers = append(v.headers, field{k, val})
		}
	}
	h := m.Header
	if got := h.Get("subscription"); got != sub {
		t.Errorf("MESSAGE subscription %q, want %q", got, sub)
	}
	if id := h.Get("message-id"); id == "" {
		t.Error("MESSAGE without message-id")
	} else if ack, ok := h.Contains("ack"); ok != clientAck || ok && ack != id {
		t.Errorf("MESSAGE ack header %q (present %v), want the message-id %q only with client acks", ack, ok, id)
	}
	if cl, ok, err := h.ContentLength(); !ok || err != nil || cl != len(m.Body) {
		t.Errorf("MESSAGE content-length %v (%v, %v), want %d", cl, ok, err, len(m.Body))
	}
	if r := h.Get("redelivered"); r != strconv.FormatBool(redelivered) {
		t.Errorf("MESSAGE redelivered %q, want %v", r, redelivered)
	}
	return v
}

// The AMQP wire tap. amqp091-go hands headers over as a map: it loses
// their order and all but the last of a repeated key, and it writes a
// published table in map order. So the matrix reads the basic properties
// off the wire: amqpTap sits between amqp091-go and its socket and
// decodes every content header frame that crosses it, in each direction.
// The AMQP views are the tap's; the client's own Delivery is checked
// against them (amqpView).

// wireProps are the basic properties of one content header frame as they
// were on the wire.
type wireProps struct {
	props   map[string]string // present properties by name (the mapping table's AMQP column), as text
	headers []field           // the headers table in wire order; nil when absent
}

// amqpTap records the content headers a connection sends (out) and
// receives (in). Safe for concurrent use.
type amqpTap struct {
	mu      sync.Mutex
	in, out frameScanner
}

// frameScanner splits one direction's byte stream into frames (AMQP
// 0-9-1 §4.2.3) and decodes the content headers.
type frameScanner struct {
	skip    int // protocol header bytes still to skip (client to server)
	buf     []byte
	headers []wireProps
	err     error
}

func (s *frameScanner) feed(b []byte) {
	s.buf = append(s.buf, b...)
	if s.skip > 0 {
		n := min(s.skip, len(s.buf))
		s.buf, s.skip = s.buf[n:], s.skip-n
	}
	for len(s.buf) >= 7 && s.err == nil {
		size := int(binary.BigEndian.Uint32(s.buf[3:7]))
		if len(s.buf) < 8+size {
			return
		}
		if s.buf[0] == frameHeader {
			p, err := decodeContentHeader(s.buf[7 : 7+size])
			if err != nil {
				s.err = err
				return
			}
			s.headers = append(s.headers, p)
		}
		s.buf = s.buf[8+size:]
	}
}

type tapConn struct {
	net.Conn
	tap *amqpTap
}

func (c *tapConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.tap.mu.Lock()
	c.tap.in.feed(b[:n])
	c.tap.mu.Unlock()
	return n, err
}

func (c *tapConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.tap.mu.Lock()
	c.tap.out.feed(b[:n])
	c.tap.mu.Unlock()
	return n, err
}

// dialTapped opens an amqp091-go connection and channel with a tap on its
// socket; cleanup closes it.
func dialTapped(t testing.TB, url string) (*amqp.Channel, *amqpTap) {
	t.Helper()
	tap := &amqpTap{out: frameScanner{skip: len(protocolHeader)}}
	dial := amqp.DefaultDial(waitFor)
	conn, err := amqp.DialConfig(url, amqp.Config{Dial: func(network, addr string) (net.Conn, error) {
		c, err := dial(network, addr)
		if err != nil {
			return nil, err
		}
		return &tapConn{Conn: c, tap: tap}, nil
	}})
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return newChannel(t, conn), tap
}

// sent is the content header of the i-th message published on the
// connection (amqp091-go writes a publish before PublishWithContext
// returns).
func (tp *amqpTap) sent(t testing.TB, i int) wireProps {
	t.Helper()
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if tp.out.err != nil {
		t.Fatalf("tap: %v", tp.out.err)
	}
	if i >= len(tp.out.headers) {
		t.Fatalf("tap: %d content headers sent, want message %d", len(tp.out.headers), i)
	}
	return tp.out.headers[i]
}

// received is the content header of the i-th message delivered to the
// connection; amqp091-go read it before it handed over the delivery.
func (tp *amqpTap) received(t testing.TB, i int) wireProps {
	t.Helper()
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if tp.in.err != nil {
		t.Fatalf("tap: %v", tp.in.err)
	}
	if i >= len(tp.in.headers) {
		t.Fatalf("tap: %d content headers received, want message %d", len(tp.in.headers), i)
	}
	return tp.in.headers[i]
}

// amqpView is the view of the i-th delivery on a tapped connection. It
// fails the test where amqp091-go's Delivery disagrees with the wire.
func amqpView(t testing.TB, tap *amqpTap, i int, d amqp.Delivery) view {
	t.Helper()
	w := tap.received(t, i)
	v := view{where: d.Exchange + "|" + d.RoutingKey, qos: -1, props: w.props, headers: w.headers, body: d.Body}
	for name, got := range map[string]string{
		"content-type": d.ContentType, "content-encoding": d.ContentEncoding, "correlation-id": d.CorrelationId,
		"reply-to": d.ReplyTo, "expiration": d.Expiration, "message-id": d.MessageId, "type": d.Type,
		"user-id": d.UserId, "app-id": d.AppId,
	} {
		if got != w.props[name] {
			t.Errorf("amqp091-go %s %q, on the wire %q", name, got, w.props[name])
		}
	}
	if dm := strconv.Itoa(int(d.DeliveryMode)); w.props["delivery-mode"] != "" && dm != w.props["delivery-mode"] {
		t.Errorf("amqp091-go delivery mode %s, on the wire %s", dm, w.props["delivery-mode"])
	}
	if ts := w.props["timestamp"]; ts != "" && strconv.FormatInt(d.Timestamp.Unix(), 10) != ts {
		t.Errorf("amqp091-go timestamp %v, on the wire %s", d.Timestamp, ts)
	}
	if pr := w.props["priority"]; pr != "" && strconv.Itoa(int(d.Priority)) != pr {
		t.Errorf("amqp091-go priority %d, on the wire %s", d.Priority, pr)
	}
	// The client's map holds the last value of each key, nested tables
	// without their order.
	last := map[string]string{}
	for _, f := range w.headers {
		last[f.k] = render(sortTables(f.v))
	}
	if len(d.Headers) != len(last) {
		t.Errorf("amqp091-go has %d headers, the wire %d distinct keys", len(d.Headers), len(last))
	}
	for k, val := range d.Headers {
		if got := render(fromAMQP091(val)); got != last[k] {
			t.Errorf("amqp091-go header %s = %s, on the wire %s", k, got, last[k])
		}
	}
	return v
}

// fromAMQP091 converts an amqp091-go header value to the tap's types.
func fromAMQP091(v any) any {
	switch x := v.(type) {
	case amqp.Table:
		// Order is lost in amqp091-go's map: compare sorted.
		out := make([]field, 0, len(x))
		for k, e := range x {
			out = append(out, field{k, fromAMQP091(e)})
		}
		slices.SortFunc(out, func(a, b field) int { return strings.Compare(a.k, b.k) })
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = fromAMQP091(e)
		}
		return out
	case amqp.Decimal:
		return decimal{x.Scale, x.Value}
	case time.Time:
		return x.UTC()
	}
	return v
}

// sortTables returns v with the fields of every table in it sorted by
// key, to compare with what amqp091-go's maps hold.
func sortTables(v any) any {
	switch x := v.(type) {
	case []field:
		out := make([]field, len(x))
		for i, f := range x {
			out[i] = field{f.k, sortTables(f.v)}
		}
		slices.SortStableFunc(out, func(a, b field) int { return strings.Compare(a.k, b.k) })
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = sortTables(e)
		}
		return out
	}
	return v
}

// decimal is AMQP's decimal value: value / 10^scale.
type decimal struct {
	scale uint8
	value int32
}

// Basic property flags, most significant first (AMQP 0-9-1 §4.2.6.1),
// with the mapping table's AMQP names.
var basicProps = []struct {
	bit  uint16
	name string
	kind byte // 's' short string, 'o' octet, 't' timestamp, 'F' table
}{
	{1 << 15, "content-type", 's'},
	{1 << 14, "content-encoding", 's'},
	{1 << 13, "headers", 'F'},
	{1 << 12, "delivery-mode", 'o'},
	{1 << 11, "priority", 'o'},
	{1 << 10, "correlation-id", 's'},
	{1 << 9, "reply-to", 's'},
	{1 << 8, "expiration", 's'},
	{1 << 7, "message-id", 's'},
	{1 << 6, "timestamp", 't'},
	{1 << 5, "type", 's'},
	{1 << 4, "user-id", 's'},
	{1 << 3, "app-id", 's'},
	{1 << 2, "cluster-id", 's'},
}

// decodeContentHeader decodes a content header frame's payload: class,
// weight, body size, flags, properties.
func decodeContentHeader(b []byte) (wireProps, error) {
	r := &wireReader{b: b}
	r.skip(12) // class, weight, body size
	flags := r.u16()
	w := wireProps{props: map[string]string{}}
	for _, p := range basicProps {
		if flags&p.bit == 0 {
			continue
		}
		switch p.kind {
		case 's':
			w.props[p.name] = r.shortstr()
		case 'o':
			w.props[p.name] = strconv.Itoa(int(r.u8()))
		case 't':
			w.props[p.name] = strconv.FormatUint(r.u64(), 10)
		case 'F':
			w.headers = r.table()
			if w.headers == nil {
				w.headers = []field{}
			}
		}
	}
	if r.err != nil {
		return wireProps{}, fmt.Errorf("content header %x: %v", first32(b), r.err)
	}
	return w, nil
}

// wireReader reads AMQP fields; the first overrun sets err.
type wireReader struct {
	b   []byte
	err error
}

func (r *wireReader) take(n int) []byte {
	if r.err != nil || n > len(r.b) {
		if r.err == nil {
			r.err = fmt.Errorf("%d bytes wanted, %d left", n, len(r.b))
		}
		return make([]byte, n)
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

func (r *wireReader) skip(n int)       { r.take(n) }
func (r *wireReader) u8() uint8        { return r.take(1)[0] }
func (r *wireReader) u16() uint16      { return binary.BigEndian.Uint16(r.take(2)) }
func (r *wireReader) u32() uint32      { return binary.BigEndian.Uint32(r.take(4)) }
func (r *wireReader) u64() uint64      { return binary.BigEndian.Uint64(r.take(8)) }
func (r *wireReader) shortstr() string { return string(r.take(int(r.u8()))) }
func (r *wireReader) longstr() []byte  { return r.take(int(r.u32())) }

// table decodes a field table (AMQP 0-9-1 §4.2.5.5, with RabbitMQ's
// value types) in wire order.
func (r *wireReader) table() []field {
	sub := &wireReader{b: r.longstr()}
	var out []field
	for len(sub.b) > 0 && sub.err == nil {
		k := sub.shortstr()
		out = append(out, field{k, sub.value()})
	}
	if sub.err != nil && r.err == nil {
		r.err = sub.err
	}
	return out
}

func (r *wireReader) value() any {
	switch t := r.u8(); t {
	case 't':
		return r.u8() != 0
	case 'b':
		return int8(r.u8())
	case 'B':
		return r.u8()
	case 's':
		return int16(r.u16())
	case 'u':
		return r.u16()
	case 'I':
		return int32(r.u32())
	case 'i':
		return r.u32()
	case 'l':
		return int64(r.u64())
	case 'f':
		return math.Float32frombits(r.u32())
	case 'd':
		return math.Float64frombits(r.u64())
	case 'D':
		return decimal{r.u8(), int32(r.u32())}
	case 'S':
		return string(r.longstr())
	case 'x':
		return append([]byte{}, r.longstr()...)
	case 'T':
		return time.Unix(int64(r.u64()), 0).UTC()
	case 'V':
		return nil
	case 'A':
		sub := &wireReader{b: r.longstr()}
		out := []any{}
		for len(sub.b) > 0 && sub.err == nil {
			out = append(out, sub.value())
		}
		if sub.err != nil && r.err == nil {
			r.err = sub.err
		}
		return out
	case 'F':
		t := r.table()
		if t == nil {
			t = []field{}
		}
		return t
	default:
		if r.err == nil {
			r.err = fmt.Errorf("field value type %q", t)
		}
		return nil
	}
}

// textOf is the text a header value has as an MQTT 5 User Property or a
// STOMP header (the mapping table's rule): strings and byte arrays that
// are UTF-8 text without NUL (validText) as they are, integers in
// decimal, floats in the shortest form that reads back the same,
// booleans as true or false. Tables, arrays, timestamps, decimals, void
// and other bytes have none: they are left out.
func textOf(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, validText(x)
	case []byte:
		return string(x), validText(string(x))
	case bool:
		return strconv.FormatBool(x), true
	case int8, uint8, int16, uint16, int32, uint32, int64:
		return fmt.Sprint(x), true
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32), true
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), true
	}
	return "", false
}

// validText reports whether s is UTF-8 without NUL: what MQTT strings
// ([MQTT-1.5.4-1], [MQTT-1.5.4-2]) and STOMP headers (STOMP 1.2 "Value
// Encoding") may hold.
func validText(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }
