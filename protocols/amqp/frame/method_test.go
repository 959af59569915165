package frame

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// allMethods returns a new struct of every generated method, in spec order.
func allMethods() []Method {
	var s methodSlots
	v := reflect.ValueOf(&s).Elem()
	ms := make([]Method, v.NumField())
	for i := range ms {
		ms[i] = reflect.New(v.Field(i).Type()).Interface().(Method)
	}
	return ms
}

// fill sets every field of m to a non-default value; variant changes which
// bits are set so that each bit position is seen both ways.
func fill(m Method, variant int) {
	v := reflect.ValueOf(m).Elem()
	for i := range v.NumField() {
		f, name := v.Field(i), v.Type().Field(i).Name
		switch f.Kind() {
		case reflect.Bool:
			f.SetBool((i+variant)%2 == 0)
		case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			f.SetUint(uint64(0xA5A5A5A5A5A5A5A5) >> (64 - f.Type().Bits()) >> variant)
		case reflect.String:
			f.SetString(strings.Repeat("é-"+name, 1+variant))
		case reflect.Slice: // Table
			f.Set(reflect.ValueOf(Table{{"k", "v"}, {"n", int32(-7 - variant)}, {"k", Table{{"deep", []any{true, nil}}}}}))
		default:
			panic("unhandled field kind " + f.Kind().String())
		}
	}
}

func TestMethodRoundTrip(t *testing.T) {
	var d Decoder
	for _, m := range allMethods() {
		for variant := range 3 {
			t.Run(m.Name(), func(t *testing.T) {
				fill(m, variant)
				payload := m.Append(nil)
				got, err := DecodeMethod(payload)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(m, got); diff != "" {
					t.Fatalf("round trip (-sent +decoded):\n%s", diff)
				}
				viaDecoder, err := d.DecodeMethod(payload)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(m, viaDecoder); diff != "" {
					t.Fatalf("Decoder (-sent +decoded):\n%s", diff)
				}
				fresh := reflect.New(reflect.TypeOf(m).Elem()).Interface().(Method)
				if err := fresh.Decode(payload); err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(m, fresh); diff != "" {
					t.Fatalf("Decode (-sent +decoded):\n%s", diff)
				}
				if again := got.Append(nil); !bytes.Equal(again, payload) {
					t.Fatalf("re-encoding differs:\n%x\n%x", payload, again)
				}
				// Every truncation is a 501 naming the method, never a panic.
				c, mid := m.ID()
				for i := 4; i < len(payload); i++ {
					_, err := DecodeMethod(payload[:i])
					var pe *Error
					if !errors.As(err, &pe) || pe.Code != FrameError || pe.ClassID != c || pe.MethodID != mid {
						t.Fatalf("truncated at %d: %v", i, err)
					}
				}
				// RabbitMQ matches the whole payload: trailing bytes are an error.
				if _, err := DecodeMethod(append(bytes.Clone(payload), 0)); err == nil {
					t.Fatal("trailing byte accepted")
				}
			})
		}
	}
}

func TestMethodTable(t *testing.T) {
	var content, names []string
	ms := allMethods()
	if len(ms) != len(methodTable) {
		t.Fatalf("%d slots, %d table entries", len(ms), len(methodTable))
	}
	for i, m := range ms {
		c, mid := m.ID()
		info, ok := Lookup(c, mid)
		if !ok || info != methodTable[i] || info.Name != m.Name() || info.Content != m.HasContent() || info.Synchronous != m.Synchronous() {
			t.Errorf("%s: Lookup = %+v, %v", m.Name(), info, ok)
		}
		if m.HasContent() {
			content = append(content, m.Name())
		}
		names = append(names, m.Name())
	}
	if want := []string{"basic.publish", "basic.return", "basic.deliver", "basic.get-ok"}; !reflect.DeepEqual(content, want) {
		t.Errorf("content methods = %v, want %v", content, want)
	}
	for _, tc := range []struct {
		c, m uint16
		sync bool
	}{{ClassBasic, MethodBasicGet, true}, {ClassBasic, MethodBasicPublish, false}, {ClassQueue, MethodQueueDeclare, true}, {ClassQueue, MethodQueueDeclareOk, false}, {ClassBasic, MethodBasicAck, false}} {
		if info, _ := Lookup(tc.c, tc.m); info.Synchronous != tc.sync {
			t.Errorf("%s synchronous = %v", info.Name, info.Synchronous)
		}
	}
	if len(names) != 66 {
		t.Errorf("%d methods, the spec has 66 (RabbitMQ adds basic.credit*, internal)", len(names))
	}
}

func TestDecodeMethodErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		in       []byte
		code     uint16
		cls, mid uint16
	}{
		{"empty", nil, FrameError, 0, 0},
		{"three bytes", []byte{0, 60, 0}, FrameError, 0, 0},
		{"unknown class", []byte{0, 99, 0, 10}, NotImplemented, 99, 10},
		{"unknown method", []byte{0, 60, 0, 99}, NotImplemented, 60, 99},
		{"basic.credit (RabbitMQ-internal, not 0-9-1)", []byte{0, 60, 0, 200}, NotImplemented, 60, 200},
		{"malformed UTF-8 in queue.declare", []byte{0, 50, 0, 10, 0, 0, 2, 0xff, 0xfe, 0, 0, 0, 0, 0}, FrameError, 50, 10},
		{"table overruns", []byte{0, 50, 0, 10, 0, 0, 0, 0, 0, 0, 0, 9}, FrameError, 50, 10},
		{"shortstr overruns", []byte{0, 60, 0, 40, 0, 0, 5, 'a'}, FrameError, 60, 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d Decoder
			for _, decode := range []func([]byte) (Method, error){DecodeMethod, d.DecodeMethod} {
				m, err := decode(tc.in)
				var pe *Error
				if m != nil || !errors.As(err, &pe) || pe.Code != tc.code || pe.ClassID != tc.cls || pe.MethodID != tc.mid {
					t.Fatalf("got %v, %v; want code %d class %d method %d", m, err, tc.code, tc.cls, tc.mid)
				}
			}
		})
	}
	// basic.publish's names are not checked for UTF-8, as in RabbitMQ.
	if _, err := DecodeMethod([]byte{0, 60, 0, 40, 0, 0, 1, 0xff, 1, 0xfe, 0}); err != nil {
		t.Fatalf("basic.publish with binary names: %v", err)
	}
	// Decode on the wrong struct.
	var p BasicPublish
	var pe *Error
	if err := p.Decode((&BasicAck{}).Append(nil)); !errors.As(err, &pe) || pe.Code != CommandInvalid {
		t.Fatalf("Decode of another method: %v", err)
	}
}

// TestDecoderReuse: a Decoder returns its own struct, and strings decoded
// earlier stay valid after the input is overwritten.
func TestDecoderReuse(t *testing.T) {
	var d Decoder
	in := (&BasicPublish{Exchange: "ex", RoutingKey: "rk"}).Append(nil)
	m1, _ := d.DecodeMethod(in)
	p := m1.(*BasicPublish)
	ex := p.Exchange
	for i := range in {
		in[i] = 0
	}
	if ex != "ex" {
		t.Fatal("decoded string aliases the payload")
	}
	m2, _ := d.DecodeMethod((&BasicPublish{Exchange: "other"}).Append(nil))
	if m2 != m1 || p.Exchange != "other" {
		t.Fatal("Decoder does not reuse its struct")
	}
}
