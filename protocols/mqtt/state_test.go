package mqtt

import (
	"strconv"
	"testing"
)

// subList answers like a map whether it searches its slice or, from
// subIndexMin subscriptions on, its index.
func TestSubList(t *testing.T) {
	var l subList
	want := map[string]*subscription{}
	check := func(when string) {
		t.Helper()
		if l.len() != len(want) {
			t.Fatalf("%s: %d subscriptions, want %d", when, l.len(), len(want))
		}
		for f, sb := range want {
			if got := l.get(f); got != sb {
				t.Fatalf("%s: get(%q) = %v, want %v", when, f, got, sb)
			}
		}
		if l.get("absent") != nil || l.del("absent") != nil {
			t.Fatalf("%s: found an absent filter", when)
		}
	}
	add := func(f string) {
		sb := &subscription{filter: f}
		l.put(sb)
		want[f] = sb
	}
	for i := range 3 * subIndexMin {
		add("t/" + strconv.Itoa(i))
		check("adding " + strconv.Itoa(i))
	}
	add("t/7") // replaces
	check("replacing")
	for i := 0; i < 3*subIndexMin; i += 2 {
		f := "t/" + strconv.Itoa(i)
		if got := l.del(f); got != want[f] {
			t.Fatalf("del(%q) = %v, want %v", f, got, want[f])
		}
		delete(want, f)
		check("deleting " + f)
	}
	for i := 1; i < 3*subIndexMin; i += 2 {
		f := "t/" + strconv.Itoa(i)
		l.del(f)
		delete(want, f)
	}
	check("emptied")
}
