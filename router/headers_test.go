package router

import (
	"math/rand/v2"
	"strconv"
	"testing"
)

// TestHeaderIndex: a sorted index finds what Table.Get finds, the first
// value of repeated headers included, and small tables are not copied.
func TestHeaderIndex(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, headersScanMax, headersScanMax + 1, 200} {
		h := make(Table, n)
		for i := range h {
			h[i] = Field{Key: "k" + strconv.Itoa(rng.IntN(n/2+1)), Value: int32(i)} // repeats
		}
		x := indexHeaders(h)
		if x.sorted != (n > headersScanMax) {
			t.Fatalf("%d headers: sorted=%v", n, x.sorted)
		}
		for k := range n/2 + 2 {
			key := "k" + strconv.Itoa(k)
			v1, ok1 := h.Get(key)
			v2, ok2 := x.get(key)
			if ok1 != ok2 || v1 != v2 {
				t.Fatalf("%d headers, %s: index (%v, %v), Get (%v, %v)", n, key, v2, ok2, v1, ok1)
			}
		}
	}
	small := Table{{"a", "1"}, {"b", "2"}}
	if n := testing.AllocsPerRun(100, func() { headersMatch(Table{{"a", "1"}}, indexHeaders(small)) }); n != 0 {
		t.Fatalf("%v allocations matching two headers", n)
	}
}

// TestHeadersMatchLarge: a binding with thousands of arguments against a
// message with thousands of headers, matched through the sorted index
// (hostile_amqp_test.go's amqp-headers-exchange-quadratic-match shows the
// time it saves).
func TestHeadersMatchLarge(t *testing.T) {
	const n = 5000
	any, all := Table{{"x-match", "any"}}, Table{{"x-match", "all"}}
	var hdrs Table
	for i := range n {
		any = append(any, Field{Key: "arg-" + strconv.Itoa(i)})
		all = append(all, Field{Key: "hdr-" + strconv.Itoa(n-1-i), Value: int64(n - 1 - i)})
		hdrs = append(hdrs, Field{Key: "hdr-" + strconv.Itoa(i), Value: int32(i)})
	}
	x := indexHeaders(hdrs)
	if headersMatch(any, x) {
		t.Fatal("x-match any: matched without a common key")
	}
	if !headersMatch(all, x) {
		t.Fatal("x-match all: no match although every argument is a header")
	}
}
