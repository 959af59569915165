package router

import "time"

// SetExpires changes how long q may stay unused before it is deleted,
// the x-expires in effect (0: never), as RabbitMQ does when an MQTT 5
// client changes its Session Expiry Interval. The countdown, if running,
// restarts from q's last use. The change is not stored: the declared
// x-expires (q.Args) comes back on restart, so the caller re-applies it
// from its own records.
func (q *Queue) SetExpires(d time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.deleted {
		return
	}
	q.args.expires = int64(max(d, 0))
	switch {
	case q.args.expires == 0 || len(q.consumers) > 0:
		if q.expTimer != nil {
			q.expTimer.Stop() // removeConsumer's touch arms it again
		}
	case q.expTimer == nil:
		q.expTimer = time.AfterFunc(max(time.Duration(q.lastUsed+q.args.expires-q.now()), 0), q.onExpires)
	default:
		q.expTimer.Reset(max(time.Duration(q.lastUsed+q.args.expires-q.now()), 0))
	}
}

// Expires returns the x-expires in effect (see SetExpires); 0: never.
func (q *Queue) Expires() time.Duration {
	q.mu.Lock()
	defer q.mu.Unlock()
	return time.Duration(q.args.expires)
}
