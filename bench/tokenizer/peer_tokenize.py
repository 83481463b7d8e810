"""Time llama.cpp's tokenizer (the peer, through ../shared/peer/libllama.py) on the text written
by bench_tokenize (its second argument). Usage:
  /usr/bin/python3 bench/tokenizer/peer_tokenize.py SHARED_DIR TEXT_PATH"""
import sys
import time

shared, text_path = sys.argv[1], sys.argv[2]
sys.path.insert(0, shared + "/peer")
import libllama as ll  # noqa: E402

text = open(text_path, "rb").read()
print("text: %.2f MB" % (len(text) / 1e6))
for name in ["llama-spm", "llama-bpe", "qwen2"]:
    m = ll.Model("%s/tokenizer-vectors/ggml-vocab-%s.gguf" % (shared, name), vocab_only=True)
    best, n = 1e30, 0
    for _ in range(5):
        t0 = time.perf_counter()
        n = len(m.tokenize(text, add_special=False, parse_special=False))
        best = min(best, time.perf_counter() - t0)
    print("%-10s %8d tokens  %7.1f ms  %6.2f MB/s" % (name, n, best * 1e3, len(text) / 1e6 / best))
    m.free()
