#!/usr/bin/env python3
"""mk_state_corpus.py QUARREL MODEL OUT_DIR - the seed corpus of fuzz_state.c: state files of
the model (stories260K) made by `quarrel run --prompt-cache`, and variants: truncated, a flipped
header field, no tokens at all (valid), a token id out of the vocabulary and a token count past the context with the
checksum made to match (so the reader's checks after the checksum are reached), an f32-cache
file, trailing bytes, an empty file. The checksum is state.c's hash_bytes, written again here."""
import os, struct, subprocess, sys, tempfile

SEED, MUL, M64 = 0x6A09E667F3BCC909, 0x9E3779B97F4A7C15, (1 << 64) - 1


def hash_bytes(h, data):
    i, n = 0, len(data)
    while i + 8 <= n:
        h = ((h ^ int.from_bytes(data[i:i + 8], "little")) * MUL) & M64
        h ^= h >> 29
        i += 8
    for b in data[i:]:
        h = ((h ^ b) * 0x100000001B3) & M64
    return h


def resum(body):
    return body + struct.pack("<Q", hash_bytes(SEED, body))


def main():
    quarrel, model, out = sys.argv[1:4]
    os.makedirs(out, exist_ok=True)
    files = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, prompt, extra in [("one", "Once", []), ("five", "Once upon a time", []),
                                    ("f32", "Once upon", ["--kv-type", "f32"])]:
            path = os.path.join(tmp, name)
            subprocess.run([quarrel, "run", "-m", model, "-p", prompt, "-n", "0", "-t", "1",
                            "--prompt-cache", path, *extra], check=True, capture_output=True)
            files[name] = open(path, "rb").read()
    five = files["five"]
    files["truncated-header"] = five[:100]
    files["truncated-rows"] = five[:len(five) - 100]
    files["trailing"] = five + b"\0"
    files["empty"] = b""
    files["header-only"] = five[:128]
    bad_token = bytearray(five[:-8])
    struct.pack_into("<i", bad_token, 128 + 4, 99999)
    files["bad-token-resummed"] = resum(bytes(bad_token))
    neg_token = bytearray(five[:-8])
    struct.pack_into("<i", neg_token, 128, -1)
    files["negative-token-resummed"] = resum(bytes(neg_token))
    long_count = bytearray(five[:-8])
    struct.pack_into("<I", long_count, 96, 1000)
    files["count-past-context-resummed"] = resum(bytes(long_count))
    huge_count = bytearray(five[:-8])
    struct.pack_into("<I", huge_count, 96, 0xFFFFFFFF)
    files["huge-count-resummed"] = resum(bytes(huge_count))
    rows = bytearray(five[:-8])
    struct.pack_into("<Q", rows, 104, 1 << 62)
    files["huge-rows-resummed"] = resum(bytes(rows))
    zero = bytearray(five[:128])
    struct.pack_into("<I", zero, 96, 0)
    files["zero-tokens-resummed"] = resum(bytes(zero))
    flipped = bytearray(five)
    flipped[200] ^= 0x10
    files["flipped-row"] = bytes(flipped)
    for name, data in files.items():
        open(os.path.join(out, name), "wb").write(data)


if __name__ == "__main__":
    main()
