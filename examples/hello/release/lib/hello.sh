# lib/hello.sh: shell functions shared by bin/restart and bin/stop.
# Sourced, not run; POSIX sh only (dash, busybox ash, bash).
#
# Host layout (drover's contract, under the deploy root ROOT):
#   ROOT/current -> releases/<slot>   the release to run
#   ROOT/run/hello.pid                the running instance (written here)
#   ROOT/run/hello.log                its stdout and stderr, appended

# hello_root ARG NEED: print the deploy root. drover passes it as the first
# argument; if that is missing or is not a directory holding NEED, fall back
# to the root this release lives in (ROOT/releases/<slot>/bin/this-script),
# so the hook still works wherever drover rendered {{.Root}} differently.
hello_root() {
	if [ -n "$1" ] && [ -d "$1" ] && { [ -z "$2" ] || [ -e "$1/$2" ]; }; then
		(cd "$1" && pwd)
		return
	fi
	_cand=$(cd "$(dirname "$0")/../../.." && pwd)
	if [ -d "$_cand/releases" ] && { [ -z "$2" ] || [ -e "$_cand/$2" ]; }; then
		[ -z "$1" ] || echo "hello: $1 is not a deploy root; using $_cand" >&2
		echo "$_cand"
		return
	fi
	echo "hello: no deploy root: argument ${1:-(none)} has no ${2:-directory}, and $0 is not inside ROOT/releases/<slot>/" >&2
	exit 2
}

# Sleeps in tenths of a second where sleep allows it (GNU, busybox, BSD).
if sleep 0.1 2>/dev/null; then
	_hello_tick=0.1 _hello_ticks_per_s=10
else
	_hello_tick=1 _hello_ticks_per_s=1
fi

# hello_alive PID: true while PID runs. A zombie counts as gone: it has
# exited and only waits for a parent to reap it (the service is re-parented
# when the hook exits, and not every init reaps promptly).
hello_alive() {
	kill -0 "$1" 2>/dev/null || return 1
	if [ -r "/proc/$1/stat" ]; then
		_state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
		[ "$_state" != Z ] || return 1
	fi
	return 0
}

# hello_ours PID: true when PID is a sample-service process, or the
# hello-start shell of hello_start about to become one: it writes the
# pidfile before it execs the service, and a restart that came in that
# window (a busy machine, a hook of a dead deploy finishing just before
# recovery restarts the host) took it for a stranger, left it running and
# started a second instance beside it that could not bind the port. A
# pidfile can outlive its process (a crash, a reboot) and the number can
# be reused by an unrelated process, which must never be signalled.
# Without /proc the pidfile is trusted.
hello_ours() {
	[ -r "/proc/$1/cmdline" ] || return 0
	tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qE 'sample-service|hello-start'
}

# hello_wait_gone PID SECONDS: wait until PID is gone; false on timeout.
hello_wait_gone() {
	_n=$(($2 * _hello_ticks_per_s))
	while hello_alive "$1"; do
		[ "$_n" -gt 0 ] || return 1
		sleep "$_hello_tick"
		_n=$((_n - 1))
	done
	return 0
}

# hello_stop ROOT: stop the instance in ROOT/run/hello.pid, if any: TERM,
# up to 5s for a graceful shutdown, then KILL. The signals go to the
# process group (setsid made the service its leader) so nothing it started
# survives it; `kill -SIG -PID` is the spelling dash, bash and busybox share.
hello_stop() {
	_pidfile=$1/run/hello.pid
	[ -f "$_pidfile" ] || return 0
	_pid=$(cat "$_pidfile" 2>/dev/null || true)
	case $_pid in
	'' | *[!0-9]*)
		echo "hello: ignoring malformed pidfile $_pidfile" >&2
		rm -f "$_pidfile"
		return 0
		;;
	esac
	if hello_alive "$_pid" && hello_ours "$_pid"; then
		kill -TERM "-$_pid" 2>/dev/null || kill -TERM "$_pid" 2>/dev/null || true
		if ! hello_wait_gone "$_pid" 5; then
			echo "hello: pid $_pid did not stop within 5s; sending KILL" >&2
			kill -KILL "-$_pid" 2>/dev/null || kill -KILL "$_pid" 2>/dev/null || true
			hello_wait_gone "$_pid" 2 || {
				echo "hello: pid $_pid survived KILL" >&2
				return 1
			}
		fi
		echo "hello: stopped pid $_pid"
	fi
	rm -f "$_pidfile"
}

# hello_start ROOT: start the release ROOT/current points at, detached, and
# return once its pid is recorded.
hello_start() {
	# Resolve the link once: the service then runs code and config from the
	# one release directory drover just switched to, even if current moves
	# again while it starts.
	_rel=$(cd -P "$1/current" && pwd)
	mkdir -p "$1/run"
	cd "$_rel"
	_pidfile=$1/run/hello.pid
	rm -f "$_pidfile"
	# Fully detached, so the hook can return and drover is never left
	# waiting on the service it started:
	#  - setsid: a session and process group of its own, so a signal to the
	#    hook's group (a timeout, ^C on drover) does not reach the service;
	#  - nohup, </dev/null, output to the log, fds 3-9 closed: the service
	#    holds none of the hook's descriptors, so whoever reads the hook's
	#    output sees EOF when the hook exits, not when the service does;
	#  - the inner sh writes its own pid and then execs, so the pidfile
	#    names the service itself whether or not setsid had to fork.
	_setsid=
	if command -v setsid >/dev/null 2>&1; then
		_setsid=setsid
	fi
	$_setsid nohup /bin/sh -c 'echo $$ >"$1.tmp" && mv "$1.tmp" "$1" && shift && exec "$@"' \
		hello-start "$_pidfile" "$_rel/bin/hello" -config "$_rel/hello.conf" \
		>>"$1/run/hello.log" 2>&1 </dev/null 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&- &
	# Only the pidfile is waited for (milliseconds), never the service:
	# drover's checks decide whether it came up.
	_n=$((5 * _hello_ticks_per_s))
	while [ ! -s "$_pidfile" ]; do
		if [ "$_n" -le 0 ]; then
			echo "hello: no pid in $_pidfile after 5s; see $1/run/hello.log" >&2
			return 1
		fi
		sleep "$_hello_tick"
		_n=$((_n - 1))
	done
	echo "hello: started pid $(cat "$_pidfile") from $_rel"
}
