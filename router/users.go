package router

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"slices"

	"github.com/junction-broker/junction/storage"
)

// User is a broker account. Passwords are stored as RabbitMQ stores them
// by default: a 4-byte salt followed by SHA-256(salt | password).
type User struct {
	Name   string
	Tags   []string
	VHosts []string // vhosts the user may open
	hash   []byte
}

func newUser(name, pass string, tags, vhosts []string) *User {
	salt := make([]byte, 4)
	_, _ = rand.Read(salt)
	return &User{Name: name, Tags: tags, VHosts: vhosts, hash: saltedHash(salt, pass)}
}

func saltedHash(salt []byte, pass string) []byte {
	h := sha256.Sum256(append(append([]byte(nil), salt...), pass...))
	return append(append([]byte(nil), salt...), h[:]...)
}

// CanAccess reports whether u may open vhost.
func (u *User) CanAccess(vhost string) bool { return slices.Contains(u.VHosts, vhost) }

// AddUser creates or replaces a user.
func (r *Router) AddUser(name, pass string, tags, vhosts []string, done func(error)) {
	u := newUser(name, pass, tags, vhosts)
	r.mu.Lock()
	r.users[name] = u
	r.commitMeta([]storage.Op{putUser(u)}, done)
	r.mu.Unlock()
}

// Authenticate checks a user's password. A user listed in LoopbackUsers
// may only log in from a loopback address. Failures are AccessRefused
// errors that do not tell which part was wrong.
func (r *Router) Authenticate(name, pass string, loopback bool) (*User, error) {
	r.mu.RLock()
	u := r.users[name]
	r.mu.RUnlock()
	if u == nil || len(u.hash) < 4 ||
		subtle.ConstantTimeCompare(saltedHash(u.hash[:4], pass), u.hash) != 1 {
		return nil, errorf(AccessRefused, "login refused for user '%s': wrong username or password", name)
	}
	if !loopback && slices.Contains(r.loopback, name) {
		return nil, errorf(AccessRefused, "user '%s' can only connect via localhost", name)
	}
	return u, nil
}

func putUser(u *User) storage.Op {
	e := enc{}
	e.u8(metaVersion)
	e.str(u.Name)
	e.bytes(u.hash)
	e.uvarint(uint64(len(u.Tags)))
	for _, t := range u.Tags {
		e.str(t)
	}
	e.uvarint(uint64(len(u.VHosts)))
	for _, v := range u.VHosts {
		e.str(v)
	}
	return storage.PutMeta(storage.KindUser, []byte(u.Name), storage.Bytes(e.b))
}

func (r *Router) recoverUsers() error {
	return r.store.ScanMeta(storage.KindUser, func(_, val []byte) error {
		d := dec{b: val}
		if d.u8() != metaVersion {
			return errCorrupt
		}
		u := &User{Name: d.str(), hash: d.bytes()}
		for n := d.uvarint(); n > 0 && d.err == nil; n-- {
			u.Tags = append(u.Tags, d.str())
		}
		for n := d.uvarint(); n > 0 && d.err == nil; n-- {
			u.VHosts = append(u.VHosts, d.str())
		}
		if d.err != nil {
			return d.err
		}
		r.users[u.Name] = u
		return nil
	})
}
