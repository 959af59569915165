package router

import (
	"errors"
	"fmt"
)

// Code classifies a router error the way AMQP reply codes do; adapters map
// it onto their protocol (AMQP uses the number as the reply code).
type Code uint16

// Error codes, numerically equal to the AMQP 0-9-1 reply codes.
const (
	NoRoute            Code = 312
	AccessRefused      Code = 403
	NotFound           Code = 404
	ResourceLocked     Code = 405
	PreconditionFailed Code = 406
	CommandInvalid     Code = 503
	ResourceError      Code = 506
	NotAllowed         Code = 530
	NotImplemented     Code = 540
	InternalError      Code = 541
)

// Error is a router refusal with a RabbitMQ-style text.
type Error struct {
	Code Code
	Text string
	is   error // a sentinel it also matches (ErrQueueLimit); nil: none
}

func (e *Error) Error() string { return e.Text }

// Is lets errors.Is match on the code: errors.Is(err, &Error{Code: NotFound}),
// and on the sentinel the refusal stands for, if any (ErrQueueLimit).
func (e *Error) Is(target error) bool {
	if e.is != nil && target == e.is {
		return true
	}
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && (t.Text == "" || t.Text == e.Text)
}

func errorf(c Code, format string, args ...any) *Error {
	return &Error{Code: c, Text: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code of a router error, or InternalError.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return InternalError
}

// Sentinel errors for publish outcomes.
var (
	// ErrRejected is given to a publish's done when a queue with
	// x-overflow reject-publish(-dlx) refused it: a negative confirm.
	ErrRejected = errors.New("router: rejected by a full queue")
	// ErrQueueLimit is matched by the *Error (PreconditionFailed) of a
	// queue declaration refused because its vhost has Config.MaxQueues
	// queues: adapters with a code of their own for quotas use it.
	ErrQueueLimit = errors.New("router: queue limit reached")
)
