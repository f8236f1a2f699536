#!/bin/sh
# Stops the units before their files go, on removal but not on upgrade.
set -e
case "$1" in
remove | 0)
	if [ -d /run/systemd/system ]; then
		systemctl disable --now porteiro.service porteiro-check.timer >/dev/null 2>&1 || true
	fi
	;;
esac
exit 0
