package router

// queueArgNames are the queue arguments the router understands and
// compares on redeclaration, as RabbitMQ does for its classic queues.
var queueArgNames = []string{
	"x-message-ttl", "x-expires", "x-max-length", "x-max-length-bytes", "x-overflow",
	"x-dead-letter-exchange", "x-dead-letter-routing-key", "x-max-priority",
	"x-single-active-consumer", "x-queue-type",
}

// parseQueueArgs validates the x-arguments of a queue declaration with
// RabbitMQ's reply texts (PRECONDITION_FAILED on a bad value).
func parseQueueArgs(vhost, name string, o QueueOptions) (queueArgs, error) {
	a := queueArgs{ttl: -1, maxLen: -1, maxBytes: -1}
	bad := func(arg string, v any, why string) error {
		return errorf(PreconditionFailed, "invalid arg '%s' for queue '%s' in vhost '%s': %s (%s)", arg, name, vhost, why, formatValue(v))
	}
	intArg := func(key string, min int64, max int64) (int64, bool, error) {
		v, ok := o.Args.Get(key)
		if !ok {
			return 0, false, nil
		}
		n, isInt := Int(v)
		if !isInt {
			return 0, false, bad(key, v, "not an integer")
		}
		if n < min || n > max {
			return 0, false, bad(key, v, "out of range")
		}
		return n, true, nil
	}
	strArg := func(key string) (string, bool, error) {
		v, ok := o.Args.Get(key)
		if !ok {
			return "", false, nil
		}
		switch s := v.(type) {
		case string:
			return s, true, nil
		case []byte:
			return string(s), true, nil
		}
		return "", false, bad(key, v, "not a string")
	}
	if n, ok, err := intArg("x-message-ttl", 0, maxTTL); err != nil {
		return a, err
	} else if ok {
		a.ttl = n * 1e6
	}
	if n, ok, err := intArg("x-expires", 1, maxTTL); err != nil {
		return a, err
	} else if ok {
		a.expires = n * 1e6
	}
	if n, ok, err := intArg("x-max-length", 0, 1<<62); err != nil {
		return a, err
	} else if ok {
		a.maxLen = n
	}
	if n, ok, err := intArg("x-max-length-bytes", 0, 1<<62); err != nil {
		return a, err
	} else if ok {
		a.maxBytes = n
	}
	if n, ok, err := intArg("x-max-priority", 0, 255); err != nil {
		return a, err
	} else if ok {
		a.maxPriority = uint8(n)
	}
	if s, ok, err := strArg("x-overflow"); err != nil {
		return a, err
	} else if ok {
		switch s {
		case "drop-head":
			a.overflow = DropHead
		case "reject-publish":
			a.overflow = RejectPublish
		case "reject-publish-dlx":
			a.overflow = RejectPublishDLX
		default:
			return a, bad("x-overflow", s, "expected drop-head, reject-publish or reject-publish-dlx")
		}
	}
	var err error
	if a.dlx, a.hasDLX, err = strArg("x-dead-letter-exchange"); err != nil {
		return a, err
	}
	if a.dlrk, a.hasDLRK, err = strArg("x-dead-letter-routing-key"); err != nil {
		return a, err
	}
	if a.hasDLRK && !a.hasDLX {
		return a, errorf(PreconditionFailed, "invalid arg 'x-dead-letter-routing-key' for queue '%s' in vhost '%s': Key x-dead-letter-exchange not found", name, vhost)
	}
	if v, ok := o.Args.Get("x-single-active-consumer"); ok {
		b, isBool := v.(bool)
		if !isBool {
			return a, bad("x-single-active-consumer", v, "not a boolean")
		}
		a.sac = b
	}
	if s, ok, err := strArg("x-queue-type"); err != nil {
		return a, err
	} else if ok && s != "classic" && s != "quorum" {
		// Quorum queues are accepted as durable classic queues so that
		// clients declaring them work; streams are a different model.
		return a, bad("x-queue-type", s, "expected classic or quorum")
	}
	return a, nil
}
