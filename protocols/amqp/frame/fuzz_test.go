package frame

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// parseAll feeds chunks to ParseFrame as a session would: append each
// chunk to what is left, parse every complete frame, keep the rest. It
// returns the frames (payloads copied) and the first error.
func parseAll(t *testing.T, frameMax uint32, chunks ...[]byte) ([]Frame, error) {
	var frames []Frame
	var buf []byte
	for _, c := range chunks {
		buf = append(buf, c...)
		for {
			f, n, err := ParseFrame(buf, frameMax)
			if n < 0 || n > len(buf) {
				t.Fatalf("n = %d outside [0, %d]", n, len(buf))
			}
			if err != nil {
				if n != 0 {
					t.Fatalf("n = %d with an error", n)
				}
				return frames, err
			}
			if n == 0 {
				break
			}
			f.Payload = bytes.Clone(f.Payload)
			frames = append(frames, f)
			buf = buf[n:]
		}
	}
	return frames, nil
}

// seeds returns the frames of the amqp091-go capture and a few made here.
func seeds(t testing.TB) [][]byte {
	var out [][]byte
	for _, c := range readCapture(t) {
		if c.typ == 0 {
			out = append(out, c.payload)
			continue
		}
		out = append(out, AppendFrame(nil, c.typ, c.channel, c.payload))
	}
	out = append(out, heartbeat,
		AppendContent(AppendMethodFrame(nil, 1, &BasicDeliver{ConsumerTag: "c", DeliveryTag: 1}), 1, ClassBasic, &allProperties, []byte("body"), 4096))
	return out
}

// FuzzParseFrame: no panic, 0 ≤ n ≤ len(buf), failures are *Error, and the
// frames parsed do not depend on how the bytes are split (STYLE §6, D).
func FuzzParseFrame(f *testing.F) {
	all := bytes.Join(seeds(f), nil)
	for _, s := range seeds(f) {
		f.Add(s, uint16(3))
	}
	f.Add(all, uint16(1000))
	f.Add([]byte{3, 0, 1, 0, 0, 0x10, 0x01}, uint16(2)) // too large for 4096
	f.Fuzz(func(t *testing.T, in []byte, cut uint16) {
		k := int(cut) % (len(in) + 1)
		whole, err1 := parseAll(t, 4096, in)
		split, err2 := parseAll(t, 4096, in[:k], in[k:])
		bytewise := make([][]byte, len(in))
		for i := range in {
			bytewise[i] = in[i : i+1]
		}
		single, err3 := parseAll(t, 4096, bytewise...)
		var pe *Error
		if err1 != nil && !errors.As(err1, &pe) {
			t.Fatalf("not a protocol error: %v", err1)
		}
		if !reflect.DeepEqual(whole, split) || !errors.Is(err2, err1) || !reflect.DeepEqual(whole, single) || !errors.Is(err3, err1) {
			t.Fatalf("result depends on how bytes arrive (cut at %d): %v / %v / %v", k, err1, err2, err3)
		}
	})
}

// FuzzDecodeMethod: no panic, failures are *Error naming the method, and
// decode → encode → decode is stable; Decoder agrees with DecodeMethod.
func FuzzDecodeMethod(f *testing.F) {
	for _, c := range readCapture(f) {
		if c.typ == FrameMethod {
			f.Add(c.payload)
		}
	}
	for _, m := range allMethods() {
		fill(m, 1)
		f.Add(m.Append(nil))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := DecodeMethod(in)
		var d Decoder
		dm, derr := d.DecodeMethod(in)
		if (err == nil) != (derr == nil) {
			t.Fatalf("DecodeMethod: %v, Decoder: %v", err, derr)
		}
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || (pe.Code != FrameError && pe.Code != NotImplemented) {
				t.Fatalf("not a 501/540 *Error: %v", err)
			}
			return
		}
		enc := m.Append(nil)
		if !bytes.Equal(dm.Append(nil), enc) {
			t.Fatal("Decoder and DecodeMethod disagree")
		}
		m2, err := DecodeMethod(enc)
		if err != nil {
			t.Fatalf("re-encoded %s does not decode: %v", m.Name(), err)
		}
		if enc2 := m2.Append(nil); !bytes.Equal(enc, enc2) {
			t.Fatalf("%s: encode(decode(encode(decode(x)))) differs", m.Name())
		}
	})
}

// FuzzTable: no panic, failures are *Error, and decode → encode → decode
// is stable.
func FuzzTable(f *testing.F) {
	f.Add(AppendTable(nil, everyType)[4:])
	f.Add(AppendTable(nil, allProperties.Headers)[4:])
	f.Add([]byte{1, 'k', 't', 2})
	for _, c := range readCapture(f) {
		if c.name == "queue.declare" || c.name == "connection.start-ok" {
			m, _ := DecodeMethod(c.payload)
			switch m := m.(type) {
			case *QueueDeclare:
				f.Add(AppendTable(nil, m.Arguments)[4:])
			case *ConnectionStartOk:
				f.Add(AppendTable(nil, m.ClientProperties)[4:])
			}
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		tab, err := DecodeTable(in)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || pe.Code != FrameError {
				t.Fatalf("not a 501 *Error: %v", err)
			}
			return
		}
		enc := AppendTable(nil, tab)[4:]
		tab2, err := DecodeTable(enc)
		if err != nil {
			t.Fatalf("re-encoded table does not decode: %v", err)
		}
		if enc2 := AppendTable(nil, tab2)[4:]; !bytes.Equal(enc, enc2) {
			t.Fatal("encode(decode(x)) is not stable")
		}
		if len(enc) != len(in) {
			t.Fatalf("re-encoding changed the size: %d → %d", len(in), len(enc))
		}
	})
}

// FuzzProperties: no panic, failures are *Error, round trip stable.
func FuzzProperties(f *testing.F) {
	f.Add(allProperties.Append(nil))
	f.Add([]byte{0x80, 0x01, 0x00, 0x00, 1, 'a'})
	f.Fuzz(func(t *testing.T, in []byte) {
		var p Properties
		if err := p.Decode(in); err != nil {
			var pe *Error
			if !errors.As(err, &pe) || pe.Code != FrameError {
				t.Fatalf("not a 501 *Error: %v", err)
			}
			return
		}
		enc := p.Append(nil)
		var q Properties
		if err := q.Decode(enc); err != nil {
			t.Fatalf("re-encoded properties do not decode: %v", err)
		}
		if enc2 := q.Append(nil); !bytes.Equal(enc, enc2) {
			t.Fatal("encode(decode(x)) is not stable")
		}
	})
}
