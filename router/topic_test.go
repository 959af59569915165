package router

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestTrieMatchesModelAndPrunes: random patterns bound and unbound in
// random order; after every change the trie routes random keys exactly as
// a direct pattern match says, and once every binding is gone no node or
// edge is left.
func TestTrieMatchesModelAndPrunes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"a", "b", "c", "*", "#"}
	keyWords := []string{"a", "b", "c", "d"}
	randKey := func(ws []string, max int) string {
		n := rng.IntN(max + 1)
		parts := make([]string, n)
		for i := range parts {
			parts[i] = ws[rng.IntN(len(ws))]
		}
		return strings.Join(parts, ".")
	}
	var tr trie
	var live []*Binding
	for step := range 2000 {
		if len(live) > 0 && rng.IntN(3) == 0 {
			i := rng.IntN(len(live))
			tr.remove(live[i])
			live = slices.Delete(live, i, i+1)
		} else {
			b := &Binding{Key: randKey(words, 4)}
			tr.add(b)
			live = append(live, b)
		}
		for range 5 {
			key := randKey(keyWords, 4)
			got := tr.match(key)
			var want []*Binding
			for _, b := range live {
				if topicMatches(strings.Split(b.Key, "."), strings.Split(key, ".")) {
					want = append(want, b)
				}
			}
			if !sameBindings(got, want) {
				t.Fatalf("step %d: key %q matched %d bindings, want %d", step, key, len(got), len(want))
			}
		}
	}
	for _, b := range live {
		tr.remove(b)
	}
	if len(tr.edges) != 0 || tr.root.words != 0 || tr.root.star != nil || tr.root.hash != nil {
		t.Fatalf("empty trie keeps %d edges, root %+v", len(tr.edges), tr.root)
	}
}

// TestTrieManyHashes: patterns made of many '#' match in time linear in
// the words, not in the C(n+k, k) ways a naive walk tries (12 '#' against
// 24 words took it 27 s): 127 of them against keys of 128 words, the most
// that fits a 255-byte AMQP routing key, with the right result.
func TestTrieManyHashes(t *testing.T) {
	hashes := strings.Repeat("#.", 127)
	long := strings.TrimSuffix(strings.Repeat("a.", 128), ".")
	var tr trie
	miss := &Binding{Key: hashes + "z"} // needs a last word z
	hit := &Binding{Key: hashes + "a"}  // the key ends in a
	all := &Binding{Key: strings.TrimSuffix(hashes, ".")}
	mixed := &Binding{Key: strings.Repeat("#.*.", 63) + "a"} // at least 64 words
	for _, b := range []*Binding{miss, hit, all, mixed} {
		tr.add(b)
	}
	for _, tc := range []struct {
		key  string
		want []*Binding
	}{
		{long, []*Binding{hit, all, mixed}},
		{long + ".z", []*Binding{miss, all}},
		{strings.TrimSuffix(strings.Repeat("a.", 63), "."), []*Binding{hit, all}},
	} {
		done := make(chan []*Binding, 1)
		go func() { done <- tr.match(tc.key) }()
		select {
		case got := <-done:
			if !sameBindings(got, tc.want) {
				t.Errorf("key of %d bytes matched %d bindings, want %d", len(tc.key), len(got), len(tc.want))
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("key of %d bytes: no match within 10s", len(tc.key))
		}
	}
}

// topicMatches is the AMQP topic rule written plainly: '*' is one word,
// '#' zero or more.
func topicMatches(pat, key []string) bool {
	if len(pat) == 0 {
		return len(key) == 0
	}
	switch pat[0] {
	case "#":
		for i := 0; i <= len(key); i++ {
			if topicMatches(pat[1:], key[i:]) {
				return true
			}
		}
		return false
	case "*":
		return len(key) > 0 && topicMatches(pat[1:], key[1:])
	default:
		return len(key) > 0 && key[0] == pat[0] && topicMatches(pat[1:], key[1:])
	}
}

func sameBindings(a, b []*Binding) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// TestConsumerSet: lookups stay right through adds and removes on both
// sides of the size where the set starts keeping an index.
func TestConsumerSet(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var s consumerSet
	model := map[string]*Consumer{}
	for step := range 3000 {
		tag := "t" + itoa(rng.IntN(40))
		if c := model[tag]; c != nil {
			s.remove(c)
			delete(model, tag)
		} else {
			c := &Consumer{Tag: tag}
			s.add(c)
			model[tag] = c
		}
		if len(s.list) != len(model) {
			t.Fatalf("step %d: %d consumers, want %d", step, len(s.list), len(model))
		}
		for i := range 40 {
			tag := "t" + itoa(i)
			if got := s.get(tag); got != model[tag] {
				t.Fatalf("step %d: get(%s) = %p, want %p", step, tag, got, model[tag])
			}
		}
	}
}

// TestBindingIndexesStayConsistent: queues and exchanges bound every which
// way, then deleted and unbound in random order; after each step every
// binding sits where its positions say, in its source's list and in its
// destination's, and nothing deleted is still bound.
func TestBindingIndexesStayConsistent(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	e := newEnv(t)
	v := e.v
	var xs, qs []string
	for i := range 6 {
		name := "x" + itoa(i)
		kind := []string{"direct", "fanout", "topic"}[i%3]
		if _, err := v.DeclareExchange(name, kind, ExchangeOptions{}, false, nil); err != nil {
			t.Fatal(err)
		}
		xs = append(xs, name)
	}
	for i := range 30 {
		qs = append(qs, "q"+itoa(i))
		e.queue(qs[i], QueueOptions{})
	}
	for range 200 {
		x := xs[rng.IntN(len(xs))]
		key := "k" + itoa(rng.IntN(3))
		if rng.IntN(4) == 0 {
			if d := xs[rng.IntN(len(xs))]; d != x {
				_ = v.BindExchange(d, x, key, nil, nil)
			}
			continue
		}
		_ = v.BindQueue(qs[rng.IntN(len(qs))], x, key, nil, 0, nil)
	}
	check := func(step int) {
		t.Helper()
		v.mu.RLock()
		defer v.mu.RUnlock()
		for _, x := range v.exchanges {
			for i, b := range x.bindings {
				if b.Source != x || b.xi != i {
					t.Fatalf("step %d: %s.bindings[%d] has source %s at %d", step, x.Name, i, b.Source.Name, b.xi)
				}
				if dl := *b.destList(); b.di >= len(dl) || dl[b.di] != b {
					t.Fatalf("step %d: binding %s->%s not at its destination position %d", step, x.Name, b.Key, b.di)
				}
				if b.Queue != nil && v.queues[b.Queue.Name] != b.Queue || b.Dest != nil && v.exchanges[b.Dest.Name] != b.Dest {
					t.Fatalf("step %d: %s has a binding to something deleted", step, x.Name)
				}
			}
		}
	}
	check(0)
	for step := 1; len(qs)+len(xs) > 0; step++ {
		switch r := rng.IntN(len(qs) + len(xs)); {
		case r < len(qs):
			if _, err := v.DeleteQueue(qs[r], false, false, 0, nil); err != nil {
				t.Fatal(err)
			}
			qs = slices.Delete(qs, r, r+1)
		default:
			r -= len(qs)
			if err := v.DeleteExchange(xs[r], false, nil); err != nil {
				t.Fatal(err)
			}
			xs = slices.Delete(xs, r, r+1)
		}
		check(step)
	}
}
