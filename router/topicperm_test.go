package router

import (
	"errors"
	"strings"
	"testing"
)

func newPermRouter(t *testing.T, ps ...TopicPermission) *Router {
	t.Helper()
	r, err := New(Config{Store: newFakeStore(), TopicPermissions: ps})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCheckTopic(t *testing.T) {
	r := newPermRouter(t,
		TopicPermission{User: "guest", Write: ".*", Read: ".*", DenyRead: `^test\.nosubscribe$`},
		TopicPermission{User: "dev", Write: `^devices\.{username}\.`, Read: `^devices\.`, DenyWrite: `\.admin$`},
		TopicPermission{User: "dev", Exchange: "other", Write: "", Read: ".*"},
		TopicPermission{User: "vh", VHost: "/", Write: `^{vhost}$`, Read: ".*"},
	)
	v := r.VHost("/")
	tests := []struct {
		user, exchange, key string
		read, ok            bool
	}{
		{"guest", "amq.topic", "test.nosubscribe", true, false},
		{"guest", "amq.topic", "test.nosubscribe", false, true},
		{"guest", "amq.topic", "test.nosubscribe.x", true, true}, // anchored deny
		{"guest", "amq.topic", "#", true, true},                  // the binding key as written
		{"guest", "amq.fanout", "test.nosubscribe", true, true},  // no entry for the exchange
		{"nobody", "amq.topic", "anything", true, true},          // no entry for the user
		{"dev", "amq.topic", "devices.dev.temp", false, true},
		{"dev", "amq.topic", "devices.other.temp", false, false},
		{"dev", "amq.topic", "devices.dev.admin", false, false}, // denied although allowed
		{"dev", "amq.topic", "devices.x", true, true},
		{"dev", "amq.topic", "x.devices.x", true, false},
		{"dev", "other", "a", false, false}, // "" allows nothing
		{"dev", "other", "", false, true},   // except the empty key, as "^$"
		{"dev", "other", "a", true, true},
		{"vh", "amq.topic", "/", false, true},
		{"vh", "amq.topic", "x", false, false},
	}
	for _, tt := range tests {
		name := tt.user + "/" + tt.exchange + "/" + tt.key
		if tt.read {
			name += "/read"
		}
		t.Run(name, func(t *testing.T) {
			err := v.CheckTopic(tt.user, tt.exchange, tt.key, tt.read)
			if (err == nil) != tt.ok {
				t.Fatalf("CheckTopic = %v, want ok %v", err, tt.ok)
			}
			if err != nil && CodeOf(err) != AccessRefused {
				t.Fatalf("code %d, want AccessRefused", CodeOf(err))
			}
			if a := v.TopicAccess(tt.user, tt.exchange, "c"); (a.Check(tt.key, tt.read) == nil) != tt.ok {
				t.Fatalf("TopicAccess.Check disagrees with CheckTopic")
			}
		})
	}
}

func TestCheckTopicMessage(t *testing.T) {
	r := newPermRouter(t, TopicPermission{User: "guest", Write: "^a", Read: ".*"})
	err := r.VHost("/").CheckTopic("guest", "amq.topic", "b.c", false)
	want := "write access to topic 'b.c' in exchange 'amq.topic' in vhost '/' refused for user 'guest'"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	if !errors.Is(err, &Error{Code: AccessRefused}) {
		t.Fatalf("errors.Is AccessRefused: false")
	}
}

func TestTopicAccessClientID(t *testing.T) {
	r := newPermRouter(t, TopicPermission{User: "guest", Write: `^clients\.{client_id}\.`, Read: ".*", DenyRead: `^clients\.{client_id}\.private$`})
	v := r.VHost("/")
	a := v.TopicAccess("guest", "amq.topic", "c.1") // the '.' is quoted
	for _, tt := range []struct {
		key     string
		read    bool
		allowed bool
	}{
		{"clients.c.1.x", false, true},
		{"clients.cx1.x", false, false},
		{"clients.c2.x", false, false},
		{"clients.c.1.private", true, false},
		{"clients.c2.private", true, true},
	} {
		if got := a.Check(tt.key, tt.read) == nil; got != tt.allowed {
			t.Errorf("Check(%q, read %v) allowed = %v, want %v", tt.key, tt.read, got, tt.allowed)
		}
	}
	// Without a client id the variable stays literal: it matches itself only.
	if err := v.CheckTopic("guest", "amq.topic", "clients.c.1.x", false); err == nil {
		t.Errorf("CheckTopic allowed a per-client key without a client id")
	}
	if a := v.TopicAccess("other", "amq.topic", "c"); a != nil {
		t.Errorf("TopicAccess for a user without permissions = %v, want nil", a)
	}
}

func TestTopicPermissionsInvalid(t *testing.T) {
	for _, tt := range []struct {
		name string
		ps   []TopicPermission
		want string
	}{
		{"no user", []TopicPermission{{Write: ".*"}}, "topic permission 0: no user"},
		{"bad write", []TopicPermission{{User: "u", Write: "("}}, "topic permission 0: write: "},
		{"bad deny read", []TopicPermission{{User: "u", Write: ".*", Read: ".*", DenyRead: "a**"}}, "topic permission 0: deny_read: "},
		{"duplicate", []TopicPermission{{User: "u"}, {User: "u", VHost: "/", Exchange: "amq.topic"}}, "topic permission 1: a second one for user 'u'"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(Config{Store: newFakeStore(), TopicPermissions: tt.ps})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestTopicAccessCheckAllocs(t *testing.T) {
	r := newPermRouter(t, TopicPermission{User: "guest", Write: `^a\.`, Read: ".*", DenyWrite: `\.secret$`})
	a := r.VHost("/").TopicAccess("guest", "amq.topic", "c")
	var nilAccess *TopicAccess
	allocs := testing.AllocsPerRun(100, func() {
		if a.Check("a.b.c", false) != nil || nilAccess.Check("x", false) != nil {
			t.Fatal("refused")
		}
	})
	if allocs != 0 {
		t.Fatalf("Check allocates %v times per call, want 0", allocs)
	}
}

// TestTopicCheckerEviction: more exchanges than the checker holds;
// entries are replaced, answers stay right.
func TestTopicCheckerEviction(t *testing.T) {
	rt, err := New(Config{Store: newFakeStore(), TopicPermissions: []TopicPermission{
		{User: "guest", VHost: "/", Exchange: "amq.topic", Write: `^public\.`, Read: ".*"}}})
	if err != nil {
		t.Fatal(err)
	}
	tc := NewTopicChecker(rt.VHost("/"), "guest")
	for round := range 3 {
		for i := range topicCheckerSize + 3 {
			x := "x" + itoa(i)
			if err := tc.Check(x, "private.k", false); err != nil { // no exchange x<i>
				t.Fatalf("round %d, %s: %v", round, x, err)
			}
			if err := tc.Check("amq.topic", "private.k", false); CodeOf(err) != AccessRefused {
				t.Fatalf("round %d: amq.topic allowed private.k (%v)", round, err)
			}
			if err := tc.Check("amq.topic", "public.k", false); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
	if tc.n != topicCheckerSize {
		t.Fatalf("%d entries, want %d", tc.n, topicCheckerSize)
	}
}
