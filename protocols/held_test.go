package protocols

import (
	"slices"
	"testing"
)

func TestHeldSet(t *testing.T) {
	var h HeldSet[int]
	h.Wake(func(int) { t.Fatal("woke a session of an empty set") })
	for _, s := range []int{1, 2, 3, 2} {
		h.Add(s)
	}
	h.Remove(3)
	var woken []int
	h.Wake(func(s int) { woken = append(woken, s) })
	slices.Sort(woken)
	if !slices.Equal(woken, []int{1, 2}) || h.Len() != 0 {
		t.Fatalf("woke %v, %d left; want [1 2] and none", woken, h.Len())
	}
}
