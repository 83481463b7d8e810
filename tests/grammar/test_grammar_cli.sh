#!/usr/bin/env bash
# test_grammar_cli.sh - the grammar flags of `quarrel run` and `quarrel chat`: --grammar,
# --grammar-file, -j/--json-schema, -jf/--json-schema-file give llama.cpp's greedy text and
# tokens (greedy_refs.json, made by the peer with mk_grammar_refs.py), `run --json` works with
# them, chat restarts the grammar for each reply, and bad grammars, schemas and flags fail with
# a message naming the problem before the model is loaded.
set -euo pipefail
: "${QUARREL:?}" "${QR_SHARED_DIR:?}" "${QR_TEST_DIR:?}"
here="$QR_TEST_DIR/grammar"
refs="$here/greedy_refs.json"
stories="$QR_SHARED_DIR/models/stories260K.gguf"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
command -v node >/dev/null || { echo "FAIL: node is not installed (reads the JSON references)"; exit 1; }
fail() { echo "FAIL: $*"; exit 1; }

# ref CASE FIELD: a field of a reference case (strings raw, arrays one item per line)
ref() {
    node -e '
const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
const c = r.cases.find((x) => x.name === process.argv[2]);
if (!c) { console.error("no case " + process.argv[2]); process.exit(1); }
const v = c[process.argv[3]];
if (Array.isArray(v)) console.log(v.join("\n"));
else if (typeof v === "string") process.stdout.write(v);
else console.log(JSON.stringify(v));' "$refs" "$1" "$2"
}

# 1. --grammar and --grammar-file: llama.cpp's greedy text (stories260K-choice ends at EOG with
#    no near-tie before it)
grammar=$(ref stories260K-choice grammar)
prompt=$(ref stories260K-choice prompt)
want="$prompt$(ref stories260K-choice greedy_text)"
got=$("$QUARREL" run -m "$stories" -p "$prompt" --temp 0 -n 20 --grammar "$grammar" 2>"$tmp/err")
[ "$got" = "$want" ] || fail "--grammar: got '$got', llama.cpp '$want'"
printf '%s' "$grammar" >"$tmp/g.gbnf"
got=$("$QUARREL" run -m "$stories" -p "$prompt" --temp 0 -n 20 --grammar-file "$tmp/g.gbnf" 2>"$tmp/err")
[ "$got" = "$want" ] || fail "--grammar-file: got '$got', llama.cpp '$want'"

# 2. -j / -jf with --json: llama.cpp's token ids for a schema it converted itself
#    (stories260K-schema-enum: 42 tokens, no near-tie, ends at EOG)
schema=$(ref stories260K-schema-enum schema)
prompt=$(ref stories260K-schema-enum prompt)
ref stories260K-schema-enum greedy_ids >"$tmp/want_ids"
"$QUARREL" run -m "$stories" -p "$prompt" --temp 0 -n 60 --json -j "$schema" >"$tmp/out.jsonl" 2>"$tmp/err" ||
    { cat "$tmp/err"; fail "-j --json failed"; }
node -e 'for (const l of require("fs").readFileSync(process.argv[1], "utf8").split("\n"))
  if (l.trim()) console.log(JSON.parse(l).id);' "$tmp/out.jsonl" >"$tmp/got_ids"
cmp -s "$tmp/want_ids" "$tmp/got_ids" ||
    { paste "$tmp/want_ids" "$tmp/got_ids" | head -50; fail "-j --json: ids differ from llama.cpp's (left)"; }
printf '%s' "$schema" >"$tmp/s.json"
want="$prompt$(ref stories260K-schema-enum greedy_text)"
got=$("$QUARREL" run -m "$stories" -p "$prompt" --temp 0 -n 60 -jf "$tmp/s.json" 2>"$tmp/err")
[ "$got" = "$want" ] || fail "-jf: got '$got', llama.cpp '$want'"
got=$("$QUARREL" run -m "$stories" -p "$prompt" --temp 0 -n 60 --json-schema-file "$tmp/s.json" 2>"$tmp/err")
[ "$got" = "$want" ] || fail "--json-schema-file: got '$got'"

# 3. chat: every reply is matched against the grammar from its start
printf 'hello\nagain\n' | "$QUARREL" chat -m "$stories" --temp 0 -n 30 \
    --grammar 'root ::= "Reply " [0-9] "."' >"$tmp/chat" 2>"$tmp/err" ||
    { cat "$tmp/err"; fail "chat with a grammar failed"; }
n=$(grep -o 'Reply [0-9]\.' "$tmp/chat" | wc -l)
[ "$n" -eq 2 ] || { cat "$tmp/chat"; fail "chat: $n replies of the grammar's form, want 2"; }

# 4. errors: exit status and a message naming the problem, before the model is looked for
expect_fail() { # STATUS PATTERN ARGS...
    local want_rc=$1 pattern=$2
    shift 2
    set +e
    "$QUARREL" "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    set -e
    [ "$rc" -eq "$want_rc" ] || { cat "$tmp/err"; fail "$*: exit $rc, want $want_rc"; }
    grep -qiE -- "$pattern" "$tmp/err" || { cat "$tmp/err"; fail "$*: no message matching '$pattern'"; }
}
# the model does not exist: the grammar's error must come first
expect_fail 1 'line 1, column [0-9]+' run -m "$tmp/no-model.gguf" --grammar 'root ::= "abc'
expect_fail 1 'line 2, column [0-9]+' run -m "$tmp/no-model.gguf" --grammar $'root ::= "a"\nx ::= [a-'
expect_fail 1 "undefined.*foo" run -m "$tmp/no-model.gguf" --grammar 'root ::= foo'
expect_fail 1 "root" run -m "$tmp/no-model.gguf" --grammar 'start ::= "a"'
expect_fail 1 "maxProperties" run -m "$tmp/no-model.gguf" -j '{"type": "object", "maxProperties": 2}'
expect_fail 1 "json|parse" run -m "$tmp/no-model.gguf" -j '{"type": '
expect_fail 1 "cannot open" run -m "$tmp/no-model.gguf" --grammar-file "$tmp/missing.gbnf"
expect_fail 1 "cannot open" chat -m "$tmp/no-model.gguf" -jf "$tmp/missing.json"
expect_fail 1 "line 1, column" chat -m "$tmp/no-model.gguf" --grammar 'root ::= [a-z'
expect_fail 2 "both give a grammar" run -m "$tmp/no-model.gguf" --grammar 'root ::= "a"' -j '{}'
expect_fail 2 "needs a value" run -m "$stories" --grammar
echo "PASS"
