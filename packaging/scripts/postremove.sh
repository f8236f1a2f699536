#!/bin/sh
# After removal: forget the units. On purge, also delete the event history.
# The porteiro user stays, as Debian does for system users, so that files it
# owned are never reassigned to a later user with the same uid.
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
if [ "$1" = purge ]; then
	rm -rf /var/lib/porteiro
fi
exit 0
