#!/usr/bin/env bash
# Model names (../shared/models/README.md): a path; $QUARREL_MODELS/NAME(.gguf); the ollama
# store ($OLLAMA_MODELS or ~/.ollama/models: manifest -> blob); a clear error listing where it
# looked. The store here is a temporary one whose blob is a link to stories260K.
set -euo pipefail
Q=${QUARREL:?} S=${QR_SHARED_DIR:?}
fail() { echo "FAIL: $*" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
story="Once upon a time, there was a little"

# an ollama store: library/tiny:latest and someone/tiny:q8
hex=270cba1b0000000000000000000000000000000000000000000000000000d256
mkdir -p "$tmp/ollama/blobs" "$tmp/ollama/manifests/registry.ollama.ai/library/tiny" \
    "$tmp/ollama/manifests/registry.ollama.ai/someone/tiny"
ln -s "$S/models/stories260K.gguf" "$tmp/ollama/blobs/sha256-$hex"
cat > "$tmp/ollama/manifests/registry.ollama.ai/library/tiny/latest" <<JSON
{"schemaVersion": 2, "layers": [
  {"mediaType": "application/vnd.ollama.image.template", "digest": "sha256:0000", "size": 1},
  {"mediaType": "application/vnd.ollama.image.model", "digest": "sha256:$hex", "size": 1185376}]}
JSON
cp "$tmp/ollama/manifests/registry.ollama.ai/library/tiny/latest" "$tmp/ollama/manifests/registry.ollama.ai/someone/tiny/q8"
run() { "$Q" run -n 6 --temp 0 -p "Once upon a time" "$@" 2>"$tmp/err"; }
for name in tiny tiny:latest someone/tiny:q8; do
    out=$(OLLAMA_MODELS=$tmp/ollama run -m "$name") || fail "$name: $(cat "$tmp/err")"
    [[ "$out" == "$story"* ]] || fail "$name: got [$out]"
done
# HOME's store when OLLAMA_MODELS is unset
mkdir -p "$tmp/home/.ollama" && ln -s "$tmp/ollama" "$tmp/home/.ollama/models"
out=$(env -u OLLAMA_MODELS HOME=$tmp/home "$Q" run -m tiny -n 6 --temp 0 -p "Once upon a time" 2>/dev/null) ||
    fail "~/.ollama/models"
[[ "$out" == "$story"* ]] || fail "~/.ollama/models: got [$out]"
# $QUARREL_MODELS: NAME.gguf or NAME
mkdir -p "$tmp/models" && ln -s "$S/models/stories260K.gguf" "$tmp/models/mine.gguf"
out=$(QUARREL_MODELS=$tmp/models run -m mine) || fail "QUARREL_MODELS: $(cat "$tmp/err")"
[[ "$out" == "$story"* ]] || fail "QUARREL_MODELS: got [$out]"
# not found: the error names every place it looked
set +e
OLLAMA_MODELS=$tmp/ollama QUARREL_MODELS=$tmp/models run -m tiny:nope; rc=$?
set -e
[ $rc -eq 1 ] || fail "missing tag exit $rc"
grep -q "model 'tiny:nope' not found; looked at:" "$tmp/err" || fail "message: $(cat "$tmp/err")"
grep -q "$tmp/models/tiny:nope.gguf" "$tmp/err" || fail "QUARREL_MODELS not listed: $(cat "$tmp/err")"
grep -q "manifests/registry.ollama.ai/library/tiny/nope" "$tmp/err" || fail "manifest not listed: $(cat "$tmp/err")"
# a manifest whose blob is missing is not found either
rm "$tmp/ollama/blobs/sha256-$hex"
set +e
OLLAMA_MODELS=$tmp/ollama run -m tiny; rc=$?
set -e
[ $rc -eq 1 ] && grep -q "not found" "$tmp/err" || fail "missing blob: $rc $(cat "$tmp/err")"
echo ok
