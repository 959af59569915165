package router

import (
	"cmp"
	"slices"
	"strings"
)

// headersMatch implements the headers exchange: the binding's arguments are
// matched against the message headers. x-match is "all" (default), "any",
// "all-with-x" or "any-with-x"; the -with-x forms also compare arguments
// whose names start with "x-". An argument with no value (nil) matches when
// the header is present.
func headersMatch(args Table, headers headerIndex) bool {
	mode, _ := args.String("x-match")
	any := mode == "any" || mode == "any-with-x"
	withX := strings.HasSuffix(mode, "-with-x")
	for _, a := range args {
		if a.Key == "x-match" || (!withX && strings.HasPrefix(a.Key, "x-")) {
			continue
		}
		v, ok := headers.get(a.Key)
		ok = ok && (a.Value == nil || Equal(a.Value, v))
		if any && ok {
			return true
		}
		if !any && !ok {
			return false
		}
	}
	return !any
}

// headerIndex looks up a message's headers for the headers exchange. A
// message with many headers is looked up in a sorted copy, made once per
// message: otherwise a binding with thousands of arguments against a
// message with thousands of headers costs their product, millions of
// comparisons per binding and message, on an event loop and under the
// vhost lock. RabbitMQ sorts both tables as well
// (rabbit_exchange_type_headers).
type headerIndex struct {
	t      Table
	sorted bool // t is a stable sort of the headers by key
}

// headersScanMax is the most headers looked up by scanning them as they
// are; up to it, indexing allocates nothing.
const headersScanMax = 16

func indexHeaders(h Table) headerIndex {
	if len(h) <= headersScanMax {
		return headerIndex{t: h}
	}
	s := slices.Clone(h)
	slices.SortStableFunc(s, func(a, b Field) int { return cmp.Compare(a.Key, b.Key) })
	return headerIndex{t: s, sorted: true}
}

// get returns the first value under key, as Table.Get: the sort is
// stable, so the first of repeated headers comes first.
func (x headerIndex) get(key string) (any, bool) {
	if !x.sorted {
		return x.t.Get(key)
	}
	i, ok := slices.BinarySearchFunc(x.t, key, func(f Field, k string) int { return cmp.Compare(f.Key, k) })
	if !ok {
		return nil, false
	}
	return x.t[i].Value, true
}

func validXMatch(args Table) bool {
	v, ok := args.Get("x-match")
	if !ok {
		return true
	}
	s, _ := v.(string)
	if b, isBytes := v.([]byte); isBytes {
		s = string(b)
	}
	switch s {
	case "all", "any", "all-with-x", "any-with-x":
		return true
	}
	return false
}
