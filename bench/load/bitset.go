package load

import "math/bits"

// bitset is a growable set of message sequence numbers; the zero value is
// empty. One goroutine owns each.
type bitset []uint64

// add sets seq and reports whether it was not set before.
func (b *bitset) add(seq uint64) bool {
	w := int(seq / 64)
	if w >= len(*b) {
		n := max(w+1, 2*len(*b), 1024)
		grown := make(bitset, n)
		copy(grown, *b)
		*b = grown
	}
	m := uint64(1) << (seq % 64)
	if (*b)[w]&m != 0 {
		return false
	}
	(*b)[w] |= m
	return true
}

func (b bitset) has(seq uint64) bool {
	w := int(seq / 64)
	return w < len(b) && b[w]&(uint64(1)<<(seq%64)) != 0
}

// union ORs o into b and returns how many of o's members b already held.
func (b *bitset) union(o bitset) (overlap int) {
	if len(o) > len(*b) {
		grown := make(bitset, len(o))
		copy(grown, *b)
		*b = grown
	}
	for i, w := range o {
		overlap += bits.OnesCount64((*b)[i] & w)
		(*b)[i] |= w
	}
	return overlap
}

// missing counts the members of want that b lacks.
func (b bitset) missing(want bitset) (n int) {
	for i, w := range want {
		var have uint64
		if i < len(b) {
			have = b[i]
		}
		n += bits.OnesCount64(w &^ have)
	}
	return n
}

func (b bitset) count() (n int) {
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return n
}
