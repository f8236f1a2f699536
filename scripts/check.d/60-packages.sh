#!/usr/bin/env bash
# Builds the .deb and .rpm (scripts/package.sh), installs the .deb with dpkg
# and checks what an admin gets: both programs and their version, `porteiro list`
# and `who` finding a real listener, the service user seeing root's processes
# with only the unit's two capabilities, the conffiles, man pages,
# completions and units. Then it purges the package and deletes the user it
# created, leaving the machine as it was.
set -euo pipefail
cd "$(dirname "$0")/../.."

fail() {
	echo "FAIL: $*" >&2
	exit 1
}
if [ "$(id -u)" != 0 ]; then
	echo "installing a package needs root; run the suite as root, as CI does" >&2
	exit 1
fi
if dpkg-query -W -f='${Status}' porteiro 2>/dev/null | grep -q 'ok installed'; then
	fail "a porteiro package is already installed here; this check will not replace it (dpkg --purge porteiro first)"
fi

user_existed=0
getent passwd porteiro >/dev/null && user_existed=1
work=$(mktemp -d)
lpid=
wpid=
cleanup() {
	set +e
	for pid in $wpid $lpid; do
		kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	done
	dpkg --purge porteiro >/dev/null 2>&1 || true
	if [ "$user_existed" = 0 ]; then
		userdel porteiro 2>/dev/null
		groupdel porteiro 2>/dev/null
	fi
	rm -rf "$work" dist
}
trap cleanup EXIT

commit=$(git rev-parse HEAD)
PORTEIRO_COMMIT=$commit scripts/package.sh >"$work/package.log" 2>&1 || {
	cat "$work/package.log" >&2
	fail "scripts/package.sh"
}
deb=$(ls dist/porteiro_*.deb)
rpm=$(ls dist/porteiro-*.rpm)
[ -s "$rpm" ] || fail "no .rpm was built"
version=$(dpkg-deb -f "$deb" Version)
version=${version%-*}
echo "built $deb and $rpm"

dpkg -i "$deb" >/dev/null
bin=/usr/bin/porteiro
dbin=/usr/sbin/porteirod
[ -x "$dbin" ] || fail "the package has no $dbin"
[ ! -e /usr/lib/porteiro ] || fail "the package still ships /usr/lib/porteiro"
out=$("$dbin" --version 2>&1) || fail "porteirod --version: $out"
case "$out" in
"porteirod $version (commit ${commit:0:12}, built "*) ;;
*) fail "porteirod --version printed '$out'" ;;
esac

# The version the package says is the one the binary reports.
out=$("$bin" version 2>&1) || fail "porteiro version: $out"
head -1 <<<"$out" | grep -qxF "porteiro $version" || fail "porteiro version printed '$(head -1 <<<"$out")', want 'porteiro $version'"
grep -qxF "  commit:   $commit" <<<"$out" || fail "porteiro version lacks commit $commit:"$'\n'"$out"
out=$("$bin" --version 2>&1) || fail "porteiro --version: $out"
case "$out" in
"porteiro $version (commit ${commit:0:12}, built "*) ;;
*) fail "porteiro --version printed '$out', want 'porteiro $version (commit ${commit:0:12}, built ...'" ;;
esac
echo "version: $out"

# A real listener, held by root.
cat >"$work/holdport.go" <<'GO'
package main

import (
	"fmt"
	"net"
	"os"
	"time"
)

func main() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	os.WriteFile(os.Args[1], []byte(fmt.Sprint(l.Addr().(*net.TCPAddr).Port)), 0o644)
	time.Sleep(5 * time.Minute)
}
GO
(cd "$work" && go build -o holdport holdport.go)
"$work/holdport" "$work/port" &
lpid=$!
for _ in $(seq 50); do [ -s "$work/port" ] && break; sleep 0.1; done
port=$(cat "$work/port")

out=$("$bin" list) || fail "porteiro list exited $?"
grep -E "127\.0\.0\.1:$port .* $lpid +root +holdport" <<<"$out" >/dev/null ||
	fail "porteiro list does not show holdport (pid $lpid) on 127.0.0.1:$port:"$'\n'"$out"
"$bin" who "$port" | grep -q " $lpid " || fail "porteiro who $port does not name pid $lpid"
echo "list and who: holdport (pid $lpid) on 127.0.0.1:$port"

# The service user, with exactly the unit's capabilities, sees root's
# process; without them it sees the socket but not the owner.
getent passwd porteiro | grep -q ':/var/lib/porteiro:.*nologin$' || fail "porteiro user: $(getent passwd porteiro)"
[ "$(id -u porteiro)" -lt 1000 ] || fail "porteiro is not a system user (uid $(id -u porteiro))"
caps=+sys_ptrace,+dac_read_search
setpriv --reuid=porteiro --regid=porteiro --init-groups --inh-caps="$caps" --ambient-caps="$caps" \
	--bounding-set=-all,"$caps" "$bin" who "$port" | grep -q " $lpid " ||
	fail "the porteiro user with CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH cannot see pid $lpid"
out=$(setpriv --reuid=porteiro --regid=porteiro --init-groups --inh-caps=-all --bounding-set=-all "$bin" who "$port" 2>&1) || true
grep -q " $lpid " <<<"$out" && fail "the porteiro user without capabilities saw pid $lpid: the check above proves nothing"
grep -q "not permitted" <<<"$out" || fail "without capabilities, who does not say 'not permitted':"$'\n'"$out"
echo "service user: sees root's listener with the unit's two capabilities only"

# Conffiles, man pages, completions, units.
conf=$(dpkg-query -W -f='${Conffiles}\n' porteiro)
for f in /etc/porteiro/porteiro.yaml /etc/porteiro/policy.yaml; do
	grep -q "^ $f " <<<"$conf" || fail "$f is not a conffile"
done
for page in porteiro.1 porteiro-list.1 porteiro-version.1 porteirod.8 porteirod-once.8 porteirod-events.8; do
	p=/usr/share/man/man${page##*.}/$page.gz
	[ -s "$p" ] || fail "no man page $p"
	if command -v groff >/dev/null 2>&1; then
		warn=$(zcat "$p" | groff -man -Tutf8 -ww -z 2>&1) || fail "groff $p"
		[ -z "$warn" ] || fail "groff warnings in $p: $warn"
	fi
done
if command -v man >/dev/null 2>&1; then
	man -w porteiro-who >/dev/null 2>&1 || fail "man cannot find porteiro-who"
fi
for prog in porteiro porteirod; do
	bash -c "source /usr/share/bash-completion/completions/$prog && complete -p $prog" >/dev/null ||
		fail "the bash completion of $prog does not register"
	[ -s /usr/share/zsh/vendor-completions/_$prog ] || fail "no zsh completion for $prog"
	[ -s /usr/share/fish/vendor_completions.d/$prog.fish ] || fail "no fish completion for $prog"
done
if command -v systemd-analyze >/dev/null 2>&1; then
	# With man-db, verify also resolves each unit's Documentation=man: page.
	man_opt=--man=no
	command -v man >/dev/null 2>&1 && man_opt=--man=yes
	systemd-analyze verify "$man_opt" /usr/lib/systemd/system/porteiro.service \
		/usr/lib/systemd/system/porteiro-check.service /usr/lib/systemd/system/porteiro-check.timer ||
		fail "systemd-analyze verify"
fi
grep -q "^License: Apache-2.0" /usr/share/doc/porteiro/copyright || fail "no Apache-2.0 copyright file in /usr/share/doc/porteiro"
echo "conffiles, man pages, completions, units and copyright: OK"

# The installed defaults are valid, and the default policy reports nothing.
"$bin" policy validate -p /etc/porteiro/policy.yaml >/dev/null || fail "the installed policy.yaml does not validate"
"$bin" check -p /etc/porteiro/policy.yaml >/dev/null || fail "porteiro check with the installed policy exited $?, want 0"
"$dbin" validate -c /etc/porteiro/porteiro.yaml >/dev/null || fail "the installed porteiro.yaml does not validate"
echo "installed configuration and policy: valid, and porteiro check is clean"

# The daemon as porteiro.service runs it: its ExecStart, the porteiro user,
# the two ambient capabilities, the installed configuration and the state
# directory systemd would create. Only the HTTP port moves, to a free one.
install -d -o porteiro -g porteiro -m 0750 /var/lib/porteiro
# RuntimeDirectory=porteiro, as systemd would create it.
install -d -o porteiro -g porteiro -m 0755 /run/porteiro
hport=
for p in $(shuf -i 20000-29999 -n 50); do
	if [ -z "$(ss -Htln "sport = :$p")" ]; then
		hport=$p
		break
	fi
done
[ -n "$hport" ] || fail "no free port for the daemon"
daemonstart=$(sed -n 's/^ExecStart=//p' /usr/lib/systemd/system/porteiro.service)
# shellcheck disable=SC2086 # the unit's command line, split as systemd does
setpriv --reuid=porteiro --regid=porteiro --init-groups --inh-caps="$caps" --ambient-caps="$caps" \
	--bounding-set=-all,"$caps" $daemonstart --http "127.0.0.1:$hport" >"$work/watch.log" 2>&1 &
wpid=$!
for _ in $(seq 100); do
	curl -fsS "http://127.0.0.1:$hport/healthz" >/dev/null 2>&1 && break
	kill -0 "$wpid" 2>/dev/null || break
	sleep 0.2
done
metrics=$(curl -fsS "http://127.0.0.1:$hport/metrics") || {
	cat "$work/watch.log" >&2
	fail "the daemon does not serve /metrics"
}
for want in \
	"porteiro_build_info{goversion=\"$(go env GOVERSION)\",revision=\"$commit\",version=\"$version\"} 1" \
	'porteiro_unattributed_sockets{reason="not_permitted"} 0' \
	'porteiro_policy_violations{kind="unexpected"} 0'; do
	grep -qF "$want" <<<"$metrics" || fail "the daemon's /metrics lacks: $want"
done
# The JSON API is on the local socket, open to the porteiro group only.
sock=/run/porteiro/porteiro.sock
[ "$(stat -c '%a %G' "$sock")" = "660 porteiro" ] || fail "the socket is $(stat -c '%a %U:%G' "$sock"), want mode 660 and group porteiro"
listeners=$(curl -fsS --unix-socket "$sock" "http://localhost/api/v1/listeners") || fail "the daemon does not serve /api/v1/listeners on $sock"
grep -qE "\"pid\": $lpid\b" <<<"$listeners" ||
	fail "the daemon's /api/v1/listeners does not name holdport (pid $lpid)"
rc=0
out=$("$bin" events --since 1h 2>&1) || rc=$?
[ "$rc" = 0 ] || [ "$rc" = 1 ] || fail "porteiro events through the socket exited $rc: $out"
out=$(setpriv --reuid=nobody --regid=nogroup --clear-groups "$bin" events 2>&1) && fail "nobody read the events through the socket"
grep -q "permission denied\|root or as a member of group porteiro" <<<"$out" || fail "porteiro events as nobody said: $out"
kill -TERM "$wpid"
wait "$wpid" || fail "the daemon exited $? on SIGTERM, want 0"
wpid=
[ -n "$(find /var/lib/porteiro -user porteiro -type f)" ] || fail "the daemon wrote nothing to /var/lib/porteiro"
rm -rf /run/porteiro
echo "daemon: runs as porteiro with the installed config, sees root's listener, stops cleanly on SIGTERM"

# The timer's command, exactly as porteiro-check.service runs it, once the
# admin has written a policy and an alert channel: holdport is unexpected,
# so it exits 1 and the channel gets the alert.
spool=$(mktemp -d -p "$work")
chown porteiro: "$spool"
cat >/etc/porteiro/policy.yaml <<YAML
version: 1
default: deny
ignore:
  - name: every-other-port
    port: [1-$((port - 1)), $((port + 1))-65535]
YAML
cat >>/etc/porteiro/porteiro.yaml <<YAML
channels:
  exec:
    - name: spool
      command: [/bin/sh, -c, "cat > $spool/alert.json"]
YAML
execstart=$(sed -n 's/^ExecStart=//p' /usr/lib/systemd/system/porteiro-check.service)
set +e
# shellcheck disable=SC2086 # the unit's command line, split as systemd does
setpriv --reuid=porteiro --regid=porteiro --init-groups --inh-caps="$caps" --ambient-caps="$caps" \
	--bounding-set=-all,"$caps" $execstart >"$work/check.log" 2>&1
rc=$?
set -e
[ "$rc" = 1 ] || {
	cat "$work/check.log" >&2
	fail "'$execstart' exited $rc with an unexpected listener, want 1"
}
grep -qF "127.0.0.1:$port" "$spool/alert.json" 2>/dev/null || {
	cat "$work/check.log" >&2
	fail "the exec channel got no alert for 127.0.0.1:$port"
}
echo "timer: '$execstart' exits 1 and alerts about holdport"

# Removal keeps the admin's conffiles; purge deletes them.
dpkg -r porteiro >/dev/null
[ ! -e "$bin" ] || fail "dpkg -r left $bin"
[ -e /etc/porteiro/policy.yaml ] || fail "dpkg -r removed a conffile"
dpkg --purge porteiro >/dev/null
[ ! -e /etc/porteiro ] || fail "dpkg --purge left /etc/porteiro"
echo "package $version: installed, checked and purged"
