package router

// ExchangeKind is an exchange type.
type ExchangeKind uint8

// Exchange types.
const (
	Direct ExchangeKind = iota + 1
	Fanout
	Topic
	Headers
)

var kindNames = map[string]ExchangeKind{"direct": Direct, "fanout": Fanout, "topic": Topic, "headers": Headers}

func (k ExchangeKind) String() string {
	switch k {
	case Direct:
		return "direct"
	case Fanout:
		return "fanout"
	case Topic:
		return "topic"
	case Headers:
		return "headers"
	}
	return "unknown"
}

// ParseKind returns the exchange kind named s.
func ParseKind(s string) (ExchangeKind, bool) {
	k, ok := kindNames[s]
	return k, ok
}

// ExchangeOptions are an exchange's declared properties.
type ExchangeOptions struct {
	Durable    bool
	AutoDelete bool
	Internal   bool
	Args       Table
}

// Exchange routes messages to queues and other exchanges through its
// bindings. Its fields are immutable after declaration; its bindings are
// guarded by the vhost's lock.
type Exchange struct {
	vhost *VHost
	Name  string
	Kind  ExchangeKind
	ExchangeOptions

	alternate string   // "alternate-exchange" argument
	retainer  Retainer // nil unless the exchange holds retained messages; vhost lock

	bindings  []*Binding            // all bindings with this exchange as source
	inbound   []*Binding            // exchange-to-exchange bindings with this exchange as Dest
	direct    map[string][]*Binding // Direct: by routing key
	topic     *trie                 // Topic
	everBound bool                  // for auto-delete: deleted once it had a binding and has none
}

// Binding connects a source exchange to a queue or, for
// exchange-to-exchange bindings, to a destination exchange.
type Binding struct {
	Source *Exchange
	Queue  *Queue    // nil for exchange-to-exchange bindings
	Dest   *Exchange // nil for queue bindings
	Key    string
	Args   Table

	// Positions in Source.bindings and in the destination's list
	// (Queue.bindings or Dest.inbound), so removal is O(1); vhost lock.
	xi, di int
}

// destList is the list of bindings leading to b's destination.
// REQUIRES: vhost lock held.
func (b *Binding) destList() *[]*Binding {
	if b.Queue != nil {
		return &b.Queue.bindings
	}
	return &b.Dest.inbound
}

func (b *Binding) same(o *Binding) bool {
	return b.Source == o.Source && b.Queue == o.Queue && b.Dest == o.Dest && b.Key == o.Key && Equal(b.Args, o.Args)
}

func newExchange(v *VHost, name string, kind ExchangeKind, o ExchangeOptions) *Exchange {
	x := &Exchange{vhost: v, Name: name, Kind: kind, ExchangeOptions: o}
	x.alternate, _ = o.Args.String("alternate-exchange")
	x.retainer = v.r.retainerFor(v.Name, name)
	switch kind {
	case Direct:
		x.direct = make(map[string][]*Binding)
	case Topic:
		x.topic = &trie{}
	}
	return x
}

// Bindings returns a copy of the exchange's bindings.
func (x *Exchange) Bindings() []*Binding {
	x.vhost.mu.RLock()
	defer x.vhost.mu.RUnlock()
	return append([]*Binding(nil), x.bindings...)
}

// existing returns the binding equal to b, or nil. It looks through the
// shorter of two lists that hold any such binding, never through all of
// x's (amq.topic may have one per MQTT subscription): the bindings of b's
// destination, and for topic and direct exchanges those with b's key. So
// neither a queue with thousands of bindings (an MQTT session's
// subscriptions) nor a key that thousands of queues bind makes binding
// them quadratic.
// REQUIRES: vhost lock held.
func (x *Exchange) existing(b *Binding) *Binding {
	l := *b.destList()
	if len(l) > 1 {
		switch x.Kind {
		case Direct:
			if k := x.direct[b.Key]; len(k) < len(l) {
				l = k
			}
		case Topic:
			if k := x.topic.bound(b.Key); len(k) < len(l) {
				l = k
			}
		}
	}
	for _, o := range l {
		if o.same(b) {
			return o
		}
	}
	return nil
}

// addBinding adds b unless an equal binding exists.
// REQUIRES: vhost lock held for writing.
func (x *Exchange) addBinding(b *Binding) bool {
	if x.existing(b) != nil {
		return false
	}
	dl := b.destList()
	b.xi = len(x.bindings)
	x.bindings = append(x.bindings, b)
	b.di = len(*dl)
	*dl = append(*dl, b)
	x.everBound = true
	switch x.Kind {
	case Direct:
		x.direct[b.Key] = append(x.direct[b.Key], b)
	case Topic:
		x.topic.add(b)
	}
	return true
}

// REQUIRES: vhost lock held for writing.
func (x *Exchange) removeBinding(b *Binding) {
	if !swapRemove(&x.bindings, b, b.xi, func(m *Binding, i int) { m.xi = i }) {
		return // not bound
	}
	swapRemove(b.destList(), b, b.di, func(m *Binding, i int) { m.di = i })
	switch x.Kind {
	case Direct:
		if l := removeBindingFrom(x.direct[b.Key], b); len(l) == 0 {
			delete(x.direct, b.Key)
		} else {
			x.direct[b.Key] = l
		}
	case Topic:
		x.topic.remove(b)
	}
}

// swapRemove removes b, which set says is at position i of *l, by moving
// the last binding into its place; it reports false if b is not there.
func swapRemove(l *[]*Binding, b *Binding, i int, set func(*Binding, int)) bool {
	s := *l
	if i < 0 || i >= len(s) || s[i] != b {
		return false
	}
	last := len(s) - 1
	s[i] = s[last]
	set(s[i], i)
	s[last] = nil
	*l = s[:last]
	return true
}

// removeBindingFrom removes b from l in place, keeping the order.
func removeBindingFrom(l []*Binding, b *Binding) []*Binding {
	for i, o := range l {
		if o == b {
			copy(l[i:], l[i+1:])
			l[len(l)-1] = nil
			return l[:len(l)-1]
		}
	}
	return l
}

// match appends to dst the bindings of x that match m.
// REQUIRES: vhost lock held (read or write).
func (x *Exchange) match(m *Message, dst []*Binding) []*Binding {
	switch x.Kind {
	case Direct:
		return append(dst, x.direct[m.RoutingKey]...)
	case Fanout:
		return append(dst, x.bindings...)
	case Topic:
		return append(dst, x.topic.match(m.RoutingKey)...)
	case Headers:
		if len(x.bindings) == 0 {
			break
		}
		h := indexHeaders(m.Properties.Headers)
		for _, b := range x.bindings {
			if headersMatch(b.Args, h) {
				dst = append(dst, b)
			}
		}
	}
	return dst
}
