//go:build !race

package stomp

const raceEnabled = false
