package mqtt

import "math"

// Topic permissions (router.TopicAccess, configured as
// router.topic_permissions) are checked on the routing-key form of topics
// and filters: SUBSCRIBE filters for read, PUBLISH topics and the will
// topic for write.
//
//	refused     MQTT 3.1.1                       MQTT 5
//	filter      SUBACK 0x80 for it               SUBACK 0x87 (Config.HideRefusals: 0x80)
//	publish     PUBACK/PUBREC as usual, dropped   QoS 1, 2: PUBACK/PUBREC 0x87 (0x80); QoS 0: dropped
//	will        CONNACK 5 (not authorized)       CONNACK 0x87 (0x80)
//
// MQTT 3.1.1 has no negative publish acknowledgement; acknowledging and
// dropping is what Mosquitto does (RabbitMQ closes the connection). The
// other filters of a SUBSCRIBE go ahead [MQTT-3.9.3-1].

// refusal returns the reason code and Reason String that tell the client
// err refused what (a "subscribe", "publish" or "will") to topic, and logs
// it: a warning for the first refusal of the connection, debug after.
func (s *session) refusal(err error, what, topic string) (rc byte, reason string) {
	if s.refusals < math.MaxInt32 {
		s.refusals++
	}
	if s.refusals == 1 {
		s.logger().Warn("refused by topic permissions", "op", what, "topic", topic, "err", err)
	} else if s.debug() {
		s.logger().Debug("refused by topic permissions", "op", what, "topic", topic, "err", err)
	}
	if !s.v5 || s.a.cfg.HideRefusals {
		return rcUnspecified, ""
	}
	return rcNotAuthorized, err.Error()
}
