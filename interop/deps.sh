#!/usr/bin/env bash
# Installs what the Python and Node interop tests need, and only what is
# missing, so running it again does nothing: Debian's python3-pika,
# python3-paho-mqtt and python3-stomp (apt-get, as root only), and the npm
# packages pinned in node/package-lock.json (npm ci into node/node_modules).
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-/usr/bin/python3}
debs=(python3-pika python3-paho-mqtt python3-stomp)
if ! "$PYTHON" -c 'import pika, paho.mqtt.client, stomp' 2>/dev/null; then
	missing=()
	for p in "${debs[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	if ((${#missing[@]})); then
		if [[ $(id -u) -ne 0 ]]; then
			echo "interop: missing Debian packages: ${missing[*]}" >&2
			echo "interop: run as root, or: sudo apt-get install ${missing[*]}" >&2
			exit 1
		fi
		echo "interop: installing ${missing[*]}"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
	fi
	"$PYTHON" -c 'import pika, paho.mqtt.client, stomp'
fi

stamp=node/node_modules/.package-lock.json # npm writes it on every install
if [[ ! -f $stamp || node/package-lock.json -nt $stamp || node/package.json -nt $stamp ]]; then
	echo "interop: npm ci in interop/node"
	(cd node && npm ci --no-audit --no-fund --loglevel=error </dev/null)
fi
