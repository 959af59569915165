package conf

import (
	"errors"
	"flag"
)

// Error is one configuration problem. Load and Validate return every problem
// they find at once, joined with errors.Join; Problems takes them apart.
type Error struct {
	// Key is the configuration key, as written in the file ("amqp.listen"),
	// or "flags" and "env" for problems with the command line and the
	// environment themselves.
	Key string
	// Msg says what is wrong, quoting the offending value.
	Msg string
}

func (e *Error) Error() string { return e.Key + ": " + e.Msg }

// ErrHelp is returned by Load when the arguments ask for help (-h, --help):
// the caller prints Usage and exits successfully.
var ErrHelp = flag.ErrHelp

// ErrUsage marks errors in the command line itself (an unknown flag, a
// missing flag value, a stray argument), as opposed to invalid values.
var ErrUsage = errors.New("bad command line")

// Problems returns the *Error values err holds, in order, looking through
// errors.Join and %w wrapping. It returns nil if err holds none.
func Problems(err error) []*Error {
	var out []*Error
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case nil:
		case *Error:
			out = append(out, e)
		case interface{ Unwrap() []error }:
			for _, e := range e.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	walk(err)
	return out
}

// join is errors.Join, with nil for an empty list.
func join(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return errors.Join(errs...)
}
