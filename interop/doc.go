// Package interop tests Junction with real third-party clients: Go clients
// here (rabbitmq/amqp091-go, eclipse/paho.golang, paho.mqtt.golang,
// go-stomp), Python (python/, Debian's pika, paho-mqtt, stomp.py) and Node
// (node/: amqplib, mqtt, @stomp/stompjs) driven by `make interop`.
//
// It is its own module so client libraries stay out of the broker's go.mod.
// Tests start the real broker binary on loopback with ports chosen at run
// time and a data directory under t.TempDir.
package interop
