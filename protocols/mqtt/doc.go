// Package mqtt is Junction's MQTT 3.1, 3.1.1 and 5.0 adapter: sessions are
// router queues bound to the MQTT exchange. It must not import the other
// protocol adapters.
//
// Until the adapter proper lands (the MQTT issue), Placeholder answers every
// CONNECT with CONNACK "server unavailable" (3.1/3.1.1 return code 3, MQTT 5
// reason code 0x88) and closes.
package mqtt
