package router

import "sync"

// trie matches AMQP topic routing keys against binding patterns: words
// separated by '.', where '*' matches exactly one word and '#' zero or
// more. Matching walks the trie once per key (no backtracking over the
// bindings), and results are cached per routing key until the next
// bind/unbind of the exchange.
type trie struct {
	root tnode
	// edges holds every node's word children, keyed by parent and word:
	// one map for the trie instead of one per node, since most nodes have
	// a single child (an MQTT device subscribed to a topic of its own), and
	// a map of one costs some 250 bytes.
	edges map[tedge]*tnode

	mu    sync.Mutex // guards cache; taken while VHost.mu is read-locked
	cache map[string][]*Binding
}

type tnode struct {
	star     *tnode
	hash     *tnode
	bindings []*Binding
	words    int // children in trie.edges
}

type tedge struct {
	parent *tnode
	word   string
}

// cacheMax bounds the cache; when full it is emptied and refilled.
// Keys longer than cacheKeyMax (AMQP's limit) are not cached: MQTT topics
// and STOMP destinations may run to 64 KiB, and the cache would keep a
// gigabyte of them.
const (
	cacheMax    = 16384
	cacheKeyMax = 255
)

func (t *trie) add(b *Binding) {
	n := &t.root
	eachWord(b.Key, func(w string) {
		var next **tnode
		switch w {
		case "*":
			next = &n.star
		case "#":
			next = &n.hash
		default:
			if t.edges == nil {
				t.edges = make(map[tedge]*tnode)
			}
			c := t.edges[tedge{n, w}]
			if c == nil {
				c = &tnode{}
				t.edges[tedge{n, w}] = c
				n.words++
			}
			n = c
			return
		}
		if *next == nil {
			*next = &tnode{}
		}
		n = *next
	})
	n.bindings = append(n.bindings, b)
	t.invalidate()
}

// bound returns the bindings whose pattern is key; nil if there are none.
func (t *trie) bound(key string) []*Binding {
	n := &t.root
	eachWord(key, func(w string) {
		switch {
		case n == nil:
		case w == "*":
			n = n.star
		case w == "#":
			n = n.hash
		default:
			n = t.edges[tedge{n, w}]
		}
	})
	if n == nil {
		return nil
	}
	return n.bindings
}

func (t *trie) remove(b *Binding) {
	// Walk down remembering the path so empty nodes can be pruned.
	var path []tedge
	n := &t.root
	ok := true
	eachWord(b.Key, func(w string) {
		if !ok {
			return
		}
		path = append(path, tedge{n, w})
		switch w {
		case "*":
			n = n.star
		case "#":
			n = n.hash
		default:
			n = t.edges[tedge{n, w}]
		}
		if n == nil {
			ok = false
		}
	})
	if !ok {
		return
	}
	for i, x := range n.bindings {
		if x == b {
			n.bindings = append(n.bindings[:i], n.bindings[i+1:]...)
			break
		}
	}
	for i := len(path) - 1; i >= 0; i-- {
		if len(n.bindings) > 0 || n.words > 0 || n.star != nil || n.hash != nil {
			break
		}
		p := path[i]
		switch p.word {
		case "*":
			p.parent.star = nil
		case "#":
			p.parent.hash = nil
		default:
			delete(t.edges, p)
			p.parent.words--
		}
		n = p.parent
	}
	t.invalidate()
}

func (t *trie) invalidate() {
	t.mu.Lock()
	t.cache = nil
	t.mu.Unlock()
}

// match appends the bindings whose pattern matches key. The returned slice
// may be shared with the cache: callers must not modify it.
// REQUIRES: the owning VHost's lock is held (read or write).
func (t *trie) match(key string) []*Binding {
	t.mu.Lock()
	r, ok := t.cache[key]
	t.mu.Unlock()
	if ok {
		return r
	}
	m := matcher{t: t}
	eachWord(key, func(w string) { m.words = append(m.words, w) })
	m.node(&t.root, 0)
	out := dedupBindings(m.out)
	if len(key) > cacheKeyMax {
		return out
	}
	t.mu.Lock()
	if t.cache == nil || len(t.cache) >= cacheMax {
		t.cache = make(map[string][]*Binding)
	}
	t.cache[key] = out
	t.mu.Unlock()
	return out
}

// matcher is one walk of the trie for the words of a key.
//
// A naive walk is exponential: with k '#' in a pattern, one node can be
// reached at one word in C(n+k, k) ways for a key of n words, and
// "#.#.#.#.#.#.#.#.#.#.#.#.z" against a key of 24 words took 27 s, with
// the vhost lock held. So the walk remembers, for every node after a '#',
// the earliest word it entered that node at: the '#' has then swallowed
// every later start as well, and entering there again adds nothing. Every
// other node has one parent edge consuming one word, so it too is visited
// at most once per word, and the walk is O(nodes × words).
type matcher struct {
	t     *trie
	words []string
	out   []*Binding
	from  map[*tnode]int // node after a '#' -> earliest word walked from; nil until a '#' is met
}

// node collects the bindings reachable from n with words[i:] left.
func (m *matcher) node(n *tnode, i int) {
	if i == len(m.words) {
		m.out = append(m.out, n.bindings...)
	} else {
		if n.words > 0 {
			if c := m.t.edges[tedge{n, m.words[i]}]; c != nil {
				m.node(c, i+1)
			}
		}
		if n.star != nil {
			m.node(n.star, i+1)
		}
	}
	if n.hash != nil {
		m.hash(n.hash, i)
	}
}

// hash walks on from h, the node after a '#' met at word i: the '#'
// swallows words[i:j] for every j from i to the end.
func (m *matcher) hash(h *tnode, i int) {
	end := len(m.words) + 1 // starts from end on are walked already
	if m.from == nil {
		m.from = make(map[*tnode]int)
	} else if from, ok := m.from[h]; ok {
		end = from
	}
	if i >= end {
		return
	}
	m.from[h] = i
	for j := i; j < end; j++ {
		m.node(h, j)
	}
}

func dedupBindings(bs []*Binding) []*Binding {
	if len(bs) < 2 {
		return bs
	}
	seen := make(map[*Binding]struct{}, len(bs))
	out := bs[:0]
	for _, b := range bs {
		if _, dup := seen[b]; !dup {
			seen[b] = struct{}{}
			out = append(out, b)
		}
	}
	return out
}

// eachWord calls fn for every '.'-separated word of key; the empty key is
// one empty word, as in RabbitMQ.
func eachWord(key string, fn func(string)) {
	start := 0
	for i := 0; i < len(key); i++ {
		if key[i] == '.' {
			fn(key[start:i])
			start = i + 1
		}
	}
	fn(key[start:])
}
