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
const cacheMax = 16384

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
	var words []string
	eachWord(key, func(w string) { words = append(words, w) })
	var out []*Binding
	t.matchNode(&t.root, words, &out)
	out = dedupBindings(out)
	t.mu.Lock()
	if t.cache == nil || len(t.cache) >= cacheMax {
		t.cache = make(map[string][]*Binding)
	}
	t.cache[key] = out
	t.mu.Unlock()
	return out
}

func (t *trie) matchNode(n *tnode, words []string, out *[]*Binding) {
	if len(words) == 0 {
		*out = append(*out, n.bindings...)
	} else {
		if n.words > 0 {
			if c := t.edges[tedge{n, words[0]}]; c != nil {
				t.matchNode(c, words[1:], out)
			}
		}
		if n.star != nil {
			t.matchNode(n.star, words[1:], out)
		}
	}
	if n.hash != nil {
		// '#' swallows zero or more words.
		for i := 0; i <= len(words); i++ {
			t.matchNode(n.hash, words[i:], out)
		}
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
