package conf

import (
	"errors"
	"math"
	"strconv"
	"strings"
)

// Size is a number of bytes. In TOML it is an integer (134217728) or a string
// with an optional binary unit ("128MiB", "4 KiB", "512B"); decimal units
// such as "MB" are rejected rather than guessed at.
type Size int64

// Binary size units.
const (
	KiB Size = 1 << (10 * (iota + 1))
	MiB
	GiB
	TiB
)

var units = []struct {
	name string
	mult Size
}{{"TiB", TiB}, {"GiB", GiB}, {"MiB", MiB}, {"KiB", KiB}, {"B", 1}}

var errSize = errors.New(`want bytes or a number with unit B, KiB, MiB, GiB or TiB, like "64MiB"`)

// ParseSize parses s as Size's TOML form.
func ParseSize(s string) (Size, error) {
	num, mult := strings.TrimSpace(s), Size(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(num, u.name); ok {
			num, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/int64(mult) {
		return 0, errSize
	}
	return Size(n) * mult, nil
}

// UnmarshalText implements encoding.TextUnmarshaler, used by the TOML decoder.
func (s *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// MarshalText implements encoding.TextMarshaler; it writes String's form.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// String formats s in the largest binary unit that divides it ("128MiB").
func (s Size) String() string {
	for _, u := range units {
		if s != 0 && s%u.mult == 0 {
			return strconv.FormatInt(int64(s/u.mult), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(s), 10) + "B"
}
