#!/usr/bin/env bash
# test_embed_cli.sh - `quarrel embed`: its vectors are llama.cpp's (embed_refs.json, made by the
# peer with mk_embed_refs.py) within the measured tolerance, in every output format; the
# default is Euclidean-normalised; each input line is one embedding; bad flags and inputs fail
# with a message.
set -euo pipefail
: "${QUARREL:?}" "${QR_SHARED_DIR:?}" "${QR_TEST_DIR:?}"
refs="$QR_TEST_DIR/runtime/embed_refs.json"
stories="$QR_SHARED_DIR/models/stories260K.gguf"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
command -v node >/dev/null || { echo "FAIL: node is not installed (reads the JSON)"; exit 1; }
fail() { echo "FAIL: $*"; exit 1; }

# check POOLING NORM FILE: FILE (an array of arrays) against llama.cpp's vectors for the two
# texts below, normalised as NORM (-1 none, 2 Euclidean)
check() {
    node -e '
const fs = require("fs");
const [refsPath, pooling, norm, file] = process.argv.slice(1);
const refs = JSON.parse(fs.readFileSync(refsPath, "utf8"));
const tol = refs.tolerance["stories260K.gguf"].abs;
const got = JSON.parse(fs.readFileSync(file, "utf8"));
const texts = ["Once upon a time", "The cat sat on the mat and looked at the big red ball."];
let rows = [];
for (const t of texts) {
  const c = refs.cases.find((x) => x.model === "stories260K.gguf" && x.pooling === pooling && x.text === t);
  rows = rows.concat(c.rows);
}
if (got.length !== rows.length) { console.log(`FAIL: ${got.length} vectors, want ${rows.length}`); process.exit(1); }
for (let r = 0; r < rows.length; r++) {
  let want = rows[r];
  if (norm === "2") { const n = Math.sqrt(want.reduce((s, x) => s + x * x, 0)); want = want.map((x) => x / n); }
  // the tolerance scales with the vector: normalised, divide it by the norm
  const scale = norm === "2" ? Math.sqrt(rows[r].reduce((s, x) => s + x * x, 0)) : 1;
  const worst = Math.max(...want.map((x, j) => Math.abs(x - got[r][j])));
  if (worst > tol / scale) { console.log(`FAIL: vector ${r}: differs by ${worst} > ${tol / scale}`); process.exit(1); }
}' "$refs" "$@"
}

input=$'Once upon a time\nThe cat sat on the mat and looked at the big red ball.'
for pooling in mean cls last; do
    "$QUARREL" embed -m "$stories" -p "$input" --pooling "$pooling" --embd-normalize -1 \
        --embd-output-format array -t 2 >"$tmp/a.json" 2>"$tmp/err" || { cat "$tmp/err"; fail "embed $pooling"; }
    check "$pooling" -1 "$tmp/a.json" || fail "pooling $pooling, not normalised"
done
# the default: mean (stories260K declares no pooling), Euclidean-normalised; from a file
printf '%s\n' "$input" >"$tmp/in.txt"
"$QUARREL" embed -m "$stories" -f "$tmp/in.txt" --embd-output-format array >"$tmp/a.json" 2>"$tmp/err" ||
    { cat "$tmp/err"; fail "embed -f"; }
check mean 2 "$tmp/a.json" || fail "default pooling and normalisation"
# none: one vector per token (5 + 23 tokens with BOS)
"$QUARREL" embed -m "$stories" -p "$input" --pooling none --embd-normalize -1 --embd-output-format array \
    >"$tmp/a.json" 2>"$tmp/err" || { cat "$tmp/err"; fail "embed none"; }
check none -1 "$tmp/a.json" || fail "pooling none"
# the OpenAI-style list and the plain lines carry the same numbers
"$QUARREL" embed -m "$stories" -p "Once upon a time" --embd-output-format json >"$tmp/j.json"
node -e 'const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
if (j.object !== "list" || j.data.length !== 1 || j.data[0].object !== "embedding" ||
    j.data[0].index !== 0 || j.data[0].embedding.length !== 64) process.exit(1);' "$tmp/j.json" ||
    fail "json format: $(head -c 300 "$tmp/j.json")"
"$QUARREL" embed -m "$stories" -p "Once upon a time" >"$tmp/plain"
[ "$(wc -l <"$tmp/plain")" -eq 1 ] && grep -q '^embedding 0: ' "$tmp/plain" || fail "plain format: $(cat "$tmp/plain")"
[ "$(cut -d: -f2 "$tmp/plain" | wc -w)" -eq 64 ] || fail "plain format: not 64 numbers"

# errors
expect_fail() { # STATUS PATTERN ARGS...
    local want=$1 pattern=$2
    shift 2
    set +e
    "$QUARREL" embed "$@" >/dev/null 2>"$tmp/err"
    local rc=$?
    set -e
    [ "$rc" -eq "$want" ] || { cat "$tmp/err"; fail "$*: exit $rc, want $want"; }
    grep -qiE -- "$pattern" "$tmp/err" || { cat "$tmp/err"; fail "$*: no message matching '$pattern'"; }
}
expect_fail 2 "pooling expects" -m "$stories" -p hi --pooling max
expect_fail 2 "either -p" -m "$stories"
expect_fail 2 "needs a value" -m "$stories" -p
expect_fail 2 "json or array" -m "$stories" -p hi --embd-output-format xml
expect_fail 1 "holds 8|larger -c" -m "$stories" -c 8 -p "Once upon a time there was a little girl named Lily"
expect_fail 1 "cannot open" -m "$stories" -f "$tmp/missing.txt"
echo PASS
