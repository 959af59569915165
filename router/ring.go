package router

// ring is a growable FIFO ring buffer. The zero value is empty and ready.
type ring[T any] struct {
	buf  []T
	head int
	n    int
}

func (r *ring[T]) len() int { return r.n }

func (r *ring[T]) grow() {
	c := 2 * len(r.buf)
	if c == 0 {
		c = 16
	}
	nb := make([]T, c)
	for i := 0; i < r.n; i++ {
		nb[i] = r.buf[(r.head+i)%len(r.buf)]
	}
	r.buf, r.head = nb, 0
}

func (r *ring[T]) push(v T) {
	if r.n == len(r.buf) {
		r.grow()
	}
	r.buf[(r.head+r.n)%len(r.buf)] = v
	r.n++
}

func (r *ring[T]) pushFront(v T) {
	if r.n == len(r.buf) {
		r.grow()
	}
	r.head = (r.head - 1 + len(r.buf)) % len(r.buf)
	r.buf[r.head] = v
	r.n++
}

// at returns a pointer to the i-th element from the head.
func (r *ring[T]) at(i int) *T { return &r.buf[(r.head+i)%len(r.buf)] }

func (r *ring[T]) peek() *T { return r.at(0) }

func (r *ring[T]) pop() T {
	var zero T
	v := r.buf[r.head]
	r.buf[r.head] = zero
	r.head = (r.head + 1) % len(r.buf)
	r.n--
	return v
}

// insert puts v at position i (0 = head), shifting later elements back.
func (r *ring[T]) insert(i int, v T) {
	if i == 0 {
		r.pushFront(v)
		return
	}
	r.push(v)
	for j := r.n - 1; j > i; j-- {
		*r.at(j) = *r.at(j - 1)
	}
	*r.at(i) = v
}

// clear empties r, dropping references.
func (r *ring[T]) clear() {
	var zero T
	for i := 0; i < r.n; i++ {
		*r.at(i) = zero
	}
	r.head, r.n = 0, 0
}
