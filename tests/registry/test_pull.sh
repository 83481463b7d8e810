#!/usr/bin/env bash
# `quarrel pull`, `list` and `rm` against a registry on 127.0.0.1 (registry_server.py) serving
# stories260K as an ollama model: ollama's store layout exactly, the pulled model runs like the
# file, a corrupted blob installs nothing, a dropped download resumes with a Range request, a
# second pull downloads nothing, rm keeps shared blobs, and each failure has a clear message.
set -euo pipefail
Q=${QUARREL:?} S=${QR_SHARED_DIR:?} T=${QR_TEST_DIR:?}
fail() { echo "FAIL: $*" >&2; exit 1; }
tmp=$(mktemp -d)
server=
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$tmp"' EXIT

echo ok > "$tmp/mode"
python3 "$T/registry/registry_server.py" --model "$S/models/stories260K.gguf" \
    --port-file "$tmp/port" --mode-file "$tmp/mode" --log "$tmp/log" --digests "$tmp/digests" &
server=$!
for _ in $(seq 100); do [ -s "$tmp/port" ] && break; sleep 0.1; done
[ -s "$tmp/port" ] || fail "test registry did not start"
port=$(cat "$tmp/port")
URL=http://127.0.0.1:$port
digest() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]][7:])" "$tmp/digests" "$1"; }
model=$(digest model) template=$(digest template)
params_a=$(digest params_a) config_a=$(digest config_a) params_b=$(digest params_b) config_b=$(digest config_b)

export OLLAMA_MODELS=$tmp/store
store=$OLLAMA_MODELS
unset QUARREL_REGISTRY
pull() { "$Q" pull "$@" >"$tmp/out" 2>"$tmp/err"; }
mirror() { pull --registry "$URL" --insecure "$@"; }
expect_fail() { # expect_fail MESSAGE CMD...: non-zero exit and MESSAGE in stderr
    local msg=$1; shift
    set +e; "$@" >"$tmp/out" 2>"$tmp/err"; local rc=$?; set -e
    [ $rc -ne 0 ] || fail "'$*' succeeded"
    # under the sanitizers a failure path must still be clean (no leak, no UB)
    ! grep -qE "Sanitizer|runtime error" "$tmp/err" || fail "'$*': $(cat "$tmp/err")"
    grep -qF -- "$msg" "$tmp/err" || fail "'$*': expected [$msg], got: $(cat "$tmp/err")"
}
no_files() { # nothing of the model installed: no manifest, no model blob, no partial
    [ ! -e "$store/manifests/registry.ollama.ai/library/stories/latest" ] || fail "$1: manifest written"
    [ ! -e "$store/blobs/sha256-$model" ] || fail "$1: bad blob kept"
    [ ! -e "$store/blobs/sha256-$model-partial" ] || fail "$1: partial kept"
}

# refusals before any download
expect_fail "is plain http: pass --insecure" pull --registry "$URL" stories
expect_fail "is not http:// or https://" pull --registry "ftp://127.0.0.1:$port" --insecure stories
expect_fail "invalid model name 'a/b/c/d'" mirror a/b/c/d
expect_fail "bad tag '..'" mirror "stories:.."
expect_fail "model 'nope' not found in registry $URL" mirror nope
expect_fail "model 'stories:v9' not found in registry $URL" mirror stories:v9
expect_fail "cannot reach registry http://127.0.0.1:1" pull --registry http://127.0.0.1:1 --insecure stories
echo 401 > "$tmp/mode"
expect_fail "registry $URL refused access to the manifest (HTTP 401: test server says no)" mirror stories
echo 500 > "$tmp/mode"
expect_fail "registry $URL failed on the manifest (HTTP 500 server error: test server says no)" mirror stories
# a manifest that is not what the registry's Docker-Content-Digest says
echo baddigest > "$tmp/mode"
expect_fail "manifest of 'stories' does not match its digest sha256:" mirror stories
echo ok > "$tmp/mode"
# a manifest with a path trick in a digest is refused before anything is written
expect_fail "layers[0].digest 'sha256:../../../../tmp/evil' is not sha256:<64 hex digits>" mirror badpath
[ ! -e "$store/manifests/registry.ollama.ai/library/badpath" ] || fail "badpath: manifest written"

# a corrupted blob: an error naming its digest, nothing installed, nothing partial left
echo corrupt > "$tmp/mode"
expect_fail "blob sha256:$model of 'stories' failed its sha256 check" mirror stories
no_files corrupt
# the good blobs before it are kept (content-addressed, checked); no manifest
[ -e "$store/blobs/sha256-$config_a" ] || fail "corrupt: config blob not kept"

# a blob longer than its manifest says: refused as it arrives, nothing kept
echo long > "$tmp/mode"
expect_fail "blob sha256:$model is larger than the manifest's $(stat -c %s "$S/models/stories260K.gguf") bytes" mirror stories
no_files long

# a dropped connection: a failure, the partial file stays; the next pull resumes from it
echo drop > "$tmp/mode"
expect_fail "sha256:$model" mirror stories
[ ! -e "$store/manifests/registry.ollama.ai/library/stories/latest" ] || fail "drop: manifest written"
partial=$store/blobs/sha256-$model-partial
[ -f "$partial" ] || fail "drop: no partial file"
have=$(stat -c %s "$partial")
full=$(stat -c %s "$S/models/stories260K.gguf")
[ "$have" -gt 0 ] && [ "$have" -lt "$full" ] || fail "drop: partial has $have of $full bytes"
echo ok > "$tmp/mode"
: > "$tmp/log"
mirror stories || fail "resume: $(cat "$tmp/err")"
grep -q "GET /v2/library/stories/blobs/sha256:$model range=bytes=$have-" "$tmp/log" ||
    fail "resume: no Range request from $have: $(cat "$tmp/log")"
grep -q "resuming at" "$tmp/err" || fail "resume not reported: $(cat "$tmp/err")"
# the manifest is asked for with ollama's Accept header
grep -q "GET /v2/library/stories/manifests/latest range=- accept=application/vnd.docker.distribution.manifest.v2+json$" \
    "$tmp/log" || fail "manifest request: $(cat "$tmp/log")"

# ollama's layout, exactly: the manifest as served, every blob under its digest, nothing else
m=$store/manifests/registry.ollama.ai/library/stories/latest
[ -f "$m" ] || fail "no manifest at $m"
python3 -c "import sys, urllib.request as u; sys.stdout.buffer.write(u.urlopen(sys.argv[1]).read())" \
    "$URL/v2/library/stories/manifests/latest" | cmp -s - "$m" || fail "manifest differs from the served one"
cmp -s "$store/blobs/sha256-$model" "$S/models/stories260K.gguf" || fail "model blob differs"
expected=$(printf '%s\n' "blobs/sha256-$config_a" "blobs/sha256-$model" "blobs/sha256-$params_a" \
    "blobs/sha256-$template" "manifests/registry.ollama.ai/library/stories/latest" | sort)
actual=$(cd "$store" && find . -type f | sed 's|^\./||' | sort)
[ "$actual" = "$expected" ] || fail "store layout: got
$actual
expected
$expected"
for d in $model $template $params_a $config_a; do
    [ "$(sha256sum < "$store/blobs/sha256-$d" | cut -d' ' -f1)" = "$d" ] || fail "blob $d"
done

# the pulled model runs, and as the file itself does
gen() { "$Q" run -m "$1" -n 8 --temp 0 -p "Once upon a time" 2>/dev/null; }
by_name=$(gen stories:latest) || fail "run -m stories:latest"
by_file=$(gen "$S/models/stories260K.gguf")
[ -n "$by_name" ] && [ "$by_name" = "$by_file" ] || fail "run: [$by_name] vs [$by_file]"

# a second pull fetches the manifest and no blob
: > "$tmp/log"
mirror stories || fail "second pull: $(cat "$tmp/err")"
grep -q "/blobs/" "$tmp/log" && fail "second pull downloaded: $(cat "$tmp/log")"
[ "$(grep -c "already present" "$tmp/err")" = 4 ] || fail "second pull: $(cat "$tmp/err")"

# a Range the server ignores (200 and the whole blob): the download starts over and succeeds
rm "$store/blobs/sha256-$model" "$m"
echo drop > "$tmp/mode"
expect_fail "sha256:$model" mirror stories
echo norange > "$tmp/mode"
mirror stories || fail "norange: $(cat "$tmp/err")"
cmp -s "$store/blobs/sha256-$model" "$S/models/stories260K.gguf" || fail "norange: blob differs"
echo ok > "$tmp/mode"

# $QUARREL_REGISTRY is the mirror too; a second model shares the model and template blobs
QUARREL_REGISTRY=$URL pull --insecure alice/stories:v2 || fail "alice: $(cat "$tmp/err")"
[ -f "$store/manifests/registry.ollama.ai/alice/stories/v2" ] || fail "alice: no manifest"
# a name with its own host pulls from it (plain http with --insecure) and is stored under it
pull --insecure "127.0.0.1:$port/alice/stories:v2" || fail "host name: $(cat "$tmp/err")"
[ -f "$store/manifests/127.0.0.1:$port/alice/stories/v2" ] || fail "host name: no manifest"
out=$(gen "127.0.0.1:$port/alice/stories:v2") || fail "run -m host/ns/model:tag"
[ "$out" = "$by_file" ] || fail "run -m host name: [$out]"

# list: ollama's names (default host and library/ hidden), ids, sizes
"$Q" list > "$tmp/list" || fail "list"
head -1 "$tmp/list" | grep -q "^NAME *ID *SIZE *MODIFIED" || fail "list header: $(cat "$tmp/list")"
for name in "stories:latest" "alice/stories:v2" "127.0.0.1:$port/alice/stories:v2"; do
    grep -q "^$name .* 1.2 MB .* ago$" "$tmp/list" || fail "list: no $name: $(cat "$tmp/list")"
done
[ "$(wc -l < "$tmp/list")" = 4 ] || fail "list: $(cat "$tmp/list")"
id=$(sha256sum < "$m" | cut -c1-12)
grep -q "^stories:latest *$id " "$tmp/list" || fail "list id: $(cat "$tmp/list")"

# rm: the manifest and the blobs no other model uses; shared ones stay
"$Q" rm stories > "$tmp/out" 2>"$tmp/err" || fail "rm: $(cat "$tmp/err")"
grep -q "deleted 'stories' (2 blobs removed)" "$tmp/out" || fail "rm: $(cat "$tmp/out")"
[ ! -e "$m" ] && [ ! -e "$store/manifests/registry.ollama.ai/library" ] || fail "rm: manifest left"
for d in $params_a $config_a; do [ ! -e "$store/blobs/sha256-$d" ] || fail "rm: $d left"; done
for d in $model $template $params_b $config_b; do
    [ -e "$store/blobs/sha256-$d" ] || fail "rm: shared blob $d removed"
done
expect_fail "model 'stories' not found in $store" "$Q" rm stories
expect_fail "invalid model name" "$Q" rm "../x"
"$Q" rm alice/stories:v2 "127.0.0.1:$port/alice/stories:v2" > "$tmp/out" 2>"$tmp/err" || fail "rm both"
[ -z "$(cd "$store" && find . -type f)" ] || fail "rm: files left: $(cd "$store" && find . -type f)"
[ "$("$Q" list | wc -l)" = 1 ] || fail "list after rm"
# a file under manifests/ that is not a manifest: list passes over it, rm removes just it
mkdir -p "$store/manifests/registry.ollama.ai/library/junk"
echo "not json" > "$store/manifests/registry.ollama.ai/library/junk/latest"
[ "$("$Q" list | wc -l)" = 1 ] || fail "list shows junk: $("$Q" list)"
"$Q" rm junk > "$tmp/out" 2>"$tmp/err" || fail "rm junk: $(cat "$tmp/err")"
grep -q "deleted 'junk' (0 blobs removed)" "$tmp/out" || fail "rm junk: $(cat "$tmp/out")"

# on a terminal: a progress bar with bytes, rate and ETA
if command -v script > /dev/null; then
    script -qec "$Q pull --registry $URL --insecure stories" /dev/null > "$tmp/tty" 2>&1 ||
        fail "tty pull: $(cat "$tmp/tty")"
    grep -q "100% \[##############################\] 1.2 MB/1.2 MB .*/s" "$tmp/tty" ||
        fail "no progress bar: $(cat "$tmp/tty")"
fi
echo ok
