//go:build race

package stomp

// raceEnabled: the race detector makes sync.Pool drop items at random, so
// code that reuses pooled objects (regexp's matchers) allocates now and
// then; allocation tests skip.
const raceEnabled = true
