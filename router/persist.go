package router

import (
	"github.com/junction-broker/junction/storage"
)

// Metadata keys and values. Keys embed the vhost so one scan per kind
// recovers every vhost. Values start with a version byte.

const metaVersion = 1

func joinKey(parts ...string) []byte {
	var b []byte
	for i, p := range parts {
		if i > 0 {
			b = append(b, 0)
		}
		b = append(b, p...)
	}
	return b
}

func exchangeKey(x *Exchange) []byte { return joinKey(x.vhost.Name, x.Name) }
func queueKey(q *Queue) []byte       { return joinKey(q.vhost.Name, q.Name) }

func bindingKey(b *Binding) []byte {
	e := enc{b: joinKey(b.Source.vhost.Name, b.Source.Name)}
	e.u8(0)
	if b.Queue != nil {
		e.str("q" + b.Queue.Name)
	} else {
		e.str("x" + b.Dest.Name)
	}
	e.str(b.Key)
	e.table(b.Args)
	return e.b
}

func putVHost(name string) storage.Op {
	e := enc{}
	e.u8(metaVersion)
	e.str(name)
	return storage.PutMeta(storage.KindVHost, []byte(name), storage.Bytes(e.b))
}

func putExchange(x *Exchange) storage.Op {
	e := enc{}
	e.u8(metaVersion)
	e.str(x.vhost.Name)
	e.str(x.Name)
	e.u8(uint8(x.Kind))
	e.bool(x.AutoDelete)
	e.bool(x.Internal)
	e.bool(x.everBound)
	e.table(x.Args)
	return storage.PutMeta(storage.KindExchange, exchangeKey(x), storage.Bytes(e.b))
}

func putQueue(q *Queue) storage.Op {
	e := enc{}
	e.u8(metaVersion)
	e.str(q.vhost.Name)
	e.str(q.Name)
	e.u64(uint64(q.ID))
	e.bool(q.AutoDelete)
	e.table(q.Args)
	return storage.PutMeta(storage.KindQueue, queueKey(q), storage.Bytes(e.b))
}

func putBinding(b *Binding) storage.Op {
	e := enc{}
	e.u8(metaVersion)
	e.str(b.Source.vhost.Name)
	e.str(b.Source.Name)
	if b.Queue != nil {
		e.u8('q')
		e.str(b.Queue.Name)
	} else {
		e.u8('x')
		e.str(b.Dest.Name)
	}
	e.str(b.Key)
	e.table(b.Args)
	return storage.PutMeta(storage.KindBinding, bindingKey(b), storage.Bytes(e.b))
}

type exchangeRec struct {
	vhost, name string
	kind        ExchangeKind
	o           ExchangeOptions
	everBound   bool
}

func decodeExchange(b []byte) (r exchangeRec, err error) {
	d := dec{b: b}
	if d.u8() != metaVersion {
		return r, errCorrupt
	}
	r.vhost, r.name = d.str(), d.str()
	r.kind = ExchangeKind(d.u8())
	r.o.Durable = true
	r.o.AutoDelete = d.bool()
	r.o.Internal = d.bool()
	r.everBound = d.bool()
	r.o.Args = d.table(0)
	return r, d.err
}

type queueRec struct {
	vhost, name string
	id          storage.QueueID
	o           QueueOptions
}

func decodeQueue(b []byte) (r queueRec, err error) {
	d := dec{b: b}
	if d.u8() != metaVersion {
		return r, errCorrupt
	}
	r.vhost, r.name = d.str(), d.str()
	r.id = storage.QueueID(d.u64())
	r.o.Durable = true
	r.o.AutoDelete = d.bool()
	r.o.Args = d.table(0)
	return r, d.err
}

type bindingRec struct {
	vhost, source string
	destKind      byte
	dest, key     string
	args          Table
}

func decodeBinding(b []byte) (r bindingRec, err error) {
	d := dec{b: b}
	if d.u8() != metaVersion {
		return r, errCorrupt
	}
	r.vhost, r.source = d.str(), d.str()
	r.destKind = d.u8()
	r.dest, r.key = d.str(), d.str()
	r.args = d.table(0)
	return r, d.err
}

func decodeVHost(b []byte) (string, error) {
	d := dec{b: b}
	if d.u8() != metaVersion {
		return "", errCorrupt
	}
	n := d.str()
	return n, d.err
}
