# serve_health.sh - sourced by the CLI tests: serve_health LOG ARGS... starts `$Q serve ARGS...`
# (stderr to LOG; the caller's ARGS include --port 0), waits for its "listening on" line and for
# GET /health to answer 200, then stops it. Returns 0 when /health answered 200. Sets and clears
# the caller's server_pid, so the caller's cleanup trap can stop a server left running.
serve_health() {
    local log=$1 port= healthy=1 code
    shift
    : >"$log"
    "$Q" serve "$@" 2>"$log" &
    server_pid=$!
    for _ in $(seq 1 300); do
        port=$(sed -n 's/^quarrel serve: listening on http:\/\/127\.0\.0\.1:\([0-9]*\)$/\1/p' "$log")
        [ -n "$port" ] && break
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ -n "$port" ]; then
        for _ in $(seq 1 300); do
            code=$(/usr/bin/python3 - "$port" <<'PY'
import sys, urllib.request, urllib.error
try:
    print(urllib.request.urlopen("http://127.0.0.1:%s/health" % sys.argv[1], timeout=5).status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print(0)
PY
)
            [ "$code" = 200 ] && healthy=0 && break
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    kill "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
    server_pid=
    return $healthy
}
