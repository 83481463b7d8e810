# server_lib.sh - what the server's end-to-end tests share (sourced, not run): the checks for
# node, npm and curl, installing the pinned npm packages of package.json into a work folder of
# the build directory, and starting `quarrel serve` on a free port (killed when the test exits).
# Needs QUARREL, QR_SHARED_DIR and QR_TEST_DIR from ctest.
: "${QUARREL:?}" "${QR_SHARED_DIR:?}" "${QR_TEST_DIR:?}"

command -v node >/dev/null || { echo "FAIL: node is not installed (needed for the SDK tests)"; exit 1; }
command -v npm >/dev/null || { echo "FAIL: npm is not installed (needed for the SDK tests)"; exit 1; }
command -v curl >/dev/null || { echo "FAIL: curl is not installed"; exit 1; }

# npm_setup WORK FILES...: copies package.json and FILES (from tests/server) into WORK and
# installs the pinned packages unless every one is already there at its pinned version.
npm_setup() {
    local work=$1
    shift
    mkdir -p "$work"
    cp "$QR_TEST_DIR/server/package.json" "$work/"
    for f in "$@"; do cp "$QR_TEST_DIR/server/$f" "$work/"; done
    local missing
    missing=$(cd "$work" && node -e '
        const fs = require("fs");
        const deps = JSON.parse(fs.readFileSync("package.json")).dependencies;
        for (const [name, version] of Object.entries(deps)) {
            let have = null;
            try { have = JSON.parse(fs.readFileSync(`node_modules/${name}/package.json`)).version; } catch {}
            if (have !== version) console.log(name);
        }')
    if [ -n "$missing" ]; then
        (cd "$work" && timeout 300 npm install --no-audit --no-fund --loglevel=error) ||
            { echo "FAIL: npm install of the pinned packages failed"; exit 1; }
    fi
}

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

# start_server LOG ARGS...: quarrel serve ARGS on a free port; sets PORT and SERVER_PID and
# waits until /health answers 200.
start_server() {
    local log=$1
    shift
    : >"$log" # exists before the server writes to it, for the sed below
    "$QUARREL" serve --port 0 "$@" 2>"$log" &
    SERVER_PID=$!
    pids+=("$SERVER_PID")
    PORT=
    for _ in $(seq 1 300); do
        PORT=$(sed -n 's/^quarrel serve: listening on http:\/\/127\.0\.0\.1:\([0-9]*\)$/\1/p' "$log")
        [ -n "$PORT" ] && break
        kill -0 "$SERVER_PID" 2>/dev/null || { echo "FAIL: the server exited:"; cat "$log"; exit 1; }
        sleep 0.1
    done
    [ -n "$PORT" ] || { echo "FAIL: the server did not report its port"; cat "$log"; exit 1; }
    for _ in $(seq 1 600); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/health")" = 200 ] && return 0
        sleep 0.1
    done
    echo "FAIL: /health never answered 200"
    cat "$log"
    exit 1
}
