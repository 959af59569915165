package router

import "strings"

// headersMatch implements the headers exchange: the binding's arguments are
// matched against the message headers. x-match is "all" (default), "any",
// "all-with-x" or "any-with-x"; the -with-x forms also compare arguments
// whose names start with "x-". An argument with no value (nil) matches when
// the header is present.
func headersMatch(args Table, headers Table) bool {
	mode, _ := args.String("x-match")
	any := mode == "any" || mode == "any-with-x"
	withX := strings.HasSuffix(mode, "-with-x")
	checked := 0
	for _, a := range args {
		if a.Key == "x-match" || (!withX && strings.HasPrefix(a.Key, "x-")) {
			continue
		}
		checked++
		v, ok := headers.Get(a.Key)
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
