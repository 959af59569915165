package mqtt

import (
	"time"

	"github.com/junction-broker/junction/router"
)

// willMsg is a connection's will (MQTT 3.1.1 §3.1.2.5, 5.0 §3.1.3.2).
type willMsg struct {
	topic   string
	qos     byte
	retain  bool
	app     appProps
	payload []byte
	delay   uint32 // MQTT 5 Will Delay Interval, seconds
}

// publishWill publishes w as client cid's will: retained first if asked,
// then routed. Safe from any goroutine.
func (a *Adapter) publishWill(vh *router.VHost, cid string, w *willMsg) {
	if w.retain {
		rm := &retainedMsg{topic: w.topic, qos: w.qos, app: w.app, payload: w.payload}
		rm.app.hasExpiry = false
		if w.app.hasExpiry && w.app.expiry > 0 {
			rm.expiresAt = a.cfg.Now().UnixNano() + min(int64(w.app.expiry)*1000, maxExpiryMs)*1e6
		}
		if err := a.retained.set(rm, w.qos > 0, nil); err != nil {
			a.cfg.Log.Warn("will not retained", "client", cid, "topic", w.topic, "err", err)
		}
	}
	m := newMessage(a.topics, w.topic, w.qos, &w.app, w.payload, buildHeaders(w.qos, w.retain, "", &w.app, nil))
	if _, err := vh.Publish(a.cfg.Exchange, m, nil); err != nil {
		a.cfg.Log.Warn("will not published", "client", cid, "err", err)
	}
}

// scheduleWill publishes w after delay unless cancelWill comes first (a
// new connection resumed the session). Pending wills do not survive a
// restart.
func (a *Adapter) scheduleWill(vh *router.VHost, cid string, w *willMsg, delay time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if t := a.wills[cid]; t != nil {
		t.Stop()
	}
	var t *time.Timer
	t = time.AfterFunc(delay, func() {
		a.mu.Lock()
		mine := a.wills[cid] == t
		if mine {
			delete(a.wills, cid)
		}
		a.mu.Unlock()
		if mine {
			a.publishWill(vh, cid, w)
		}
	})
	a.wills[cid] = t
}

// cancelWill drops client cid's pending delayed will, if any.
func (a *Adapter) cancelWill(cid string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if t := a.wills[cid]; t != nil {
		t.Stop()
		delete(a.wills, cid)
	}
}
