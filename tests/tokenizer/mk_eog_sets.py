#!/usr/bin/python3
"""llama.cpp's end-of-generation token sets (llama_vocab_is_eog) of the shared test vocabularies,
one line per vocabulary: NAME ID ID ... (tests/tokenizer/data/eog_sets.txt, which
test_eog.c checks Quarrel's against). Needs the peer (../shared/peer/README.md).

usage: /usr/bin/python3 mk_eog_sets.py NAME... > data/eog_sets.txt
       (NAME: ggml-vocab-NAME.gguf of ../shared/tokenizer-vectors)
"""
import os
import sys
sys.dont_write_bytecode = True
shared = os.environ.get("QR_SHARED_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared"))
sys.path.insert(0, os.path.join(shared, "peer"))
import libllama  # noqa: E402
L = libllama.lib()
for name in sys.argv[1:]:
    m = libllama.Model(os.path.join(shared, "tokenizer-vectors", "ggml-vocab-%s.gguf" % name), vocab_only=True)
    ids = [t for t in range(m.n_vocab) if L.llama_vocab_is_eog(m.vocab, t)]
    m.free()
    print(name, " ".join(map(str, ids)))
