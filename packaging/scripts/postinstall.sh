#!/bin/sh
# Creates the porteiro system user and tells systemd about the units. The
# service is not enabled here: review /etc/porteiro/policy.yaml first, then
# run `systemctl enable --now porteiro` (or porteiro-check.timer).
set -e

if ! getent passwd porteiro >/dev/null 2>&1; then
	if command -v systemd-sysusers >/dev/null 2>&1 && [ -f /usr/lib/sysusers.d/porteiro.conf ]; then
		systemd-sysusers /usr/lib/sysusers.d/porteiro.conf
	elif command -v useradd >/dev/null 2>&1; then
		nologin=$(command -v nologin || echo /usr/sbin/nologin)
		useradd --system --user-group --home-dir /var/lib/porteiro --no-create-home \
			--shell "$nologin" --comment "porteiro daemon" porteiro
	else
		adduser --system --group --home /var/lib/porteiro --no-create-home porteiro
	fi
fi

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
	# An upgrade restarts a running daemon on the new binary.
	systemctl try-restart porteiro.service >/dev/null 2>&1 || true
fi
exit 0
