// Package junction is the root of Junction, a multi-protocol edge message
// broker (AMQP 0-9-1, MQTT, STOMP). The broker is cmd/junction; the packages
// and what each may import are listed in README.md and enforced by
// deps_test.go in this directory, next to the lint tests in lint_test.go.
package junction
