#!/usr/bin/env bash
# Installs what `make bench-compare` needs besides Go, and only what is
# missing, so running it again does nothing: Debian's rabbitmq-server (with
# its MQTT and STOMP plugins, which ship in the package and which the
# harness enables in its own plugins file) and mosquitto, via apt-get, as
# root only. taskset (util-linux) is needed only for --pin and is always
# there on Debian.
set -euo pipefail

missing=()
[[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]] || command -v rabbitmq-server >/dev/null || missing+=(rabbitmq-server)
command -v mosquitto >/dev/null || [[ -x /usr/sbin/mosquitto ]] || missing+=(mosquitto)
if ((${#missing[@]})); then
	if [[ $(id -u) -ne 0 ]]; then
		echo "bench: missing Debian packages: ${missing[*]}" >&2
		echo "bench: run as root, or: sudo apt-get install ${missing[*]}" >&2
		exit 1
	fi
	echo "bench: installing ${missing[*]}"
	apt-get update -qq
	# The packages' own services are neither wanted nor started here: the
	# harness runs each broker itself, on its own ports and data directory.
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
fi

# The plugins must be in the installed RabbitMQ; the harness enables them
# for its own node (RABBITMQ_ENABLED_PLUGINS_FILE), as
# `rabbitmq-plugins enable rabbitmq_mqtt rabbitmq_stomp` would for the
# system's node, without touching /etc/rabbitmq.
for p in rabbitmq_mqtt rabbitmq_stomp; do
	if ! compgen -G "/usr/lib/rabbitmq/lib/rabbitmq_server-*/plugins/$p-*" >/dev/null; then
		echo "bench: RabbitMQ plugin $p not found under /usr/lib/rabbitmq" >&2
		exit 1
	fi
done
