#!/usr/bin/python3
"""llama.cpp's reference outputs with LoRA adapters: ../shared/peer/llamaref.py (same options,
same files) with llama.cpp's own adapter path added: each adapter loaded once per model with
llama_adapter_lora_init and set on every context with llama_set_adapters_lora (v0.5.0 llama.h).

usage: llamaref_lora.py [--lora FILE]... [--lora-scaled FILE:SCALE]... LLAMAREF_ARGS...

The output JSON gains "loras": [{"file", "sha256", "scale"}] in the order given.
"""
import ctypes
import hashlib
import json
import os
import sys

sys.dont_write_bytecode = True
shared = os.environ.get("QR_SHARED_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                      "../../../shared"))
sys.path.insert(0, os.path.join(shared, "peer"))
import libllama  # noqa: E402
import llamaref  # noqa: E402


def main():
    argv, loras, i = [], [], 1
    while i < len(sys.argv):
        a = sys.argv[i]
        if a in ("--lora", "--lora-scaled") and i + 1 < len(sys.argv):
            for item in sys.argv[i + 1].split(","):
                if a == "--lora":
                    loras.append((item, 1.0))
                else:
                    f, s = item.rsplit(":", 1)
                    loras.append((f, float(s)))
            i += 2
            continue
        argv.append(a)
        i += 1

    L = libllama.load()
    P = ctypes.c_void_p
    L.llama_adapter_lora_init.restype = P
    L.llama_adapter_lora_init.argtypes = [P, ctypes.c_char_p]
    L.llama_set_adapters_lora.restype = ctypes.c_int32
    L.llama_set_adapters_lora.argtypes = [P, ctypes.POINTER(P), ctypes.c_size_t,
                                          ctypes.POINTER(ctypes.c_float)]
    L.llama_adapter_lora_free.restype = None
    L.llama_adapter_lora_free.argtypes = [P]

    adapters = {}  # model pointer -> adapter pointers, loaded once per model
    model_init = libllama.Model.__init__
    context_init = libllama.Context.__init__

    def model_init_lora(self, *a, **k):
        model_init(self, *a, **k)
        if k.get("vocab_only"):
            return
        ptrs = []
        for path, _ in loras:
            p = L.llama_adapter_lora_init(self.ptr, path.encode())
            if not p:
                raise RuntimeError("llama_adapter_lora_init failed: %s" % path)
            ptrs.append(p)
        adapters[self.ptr] = ptrs

    def context_init_lora(self, model, *a, **k):
        context_init(self, model, *a, **k)
        ptrs = adapters[model.ptr]
        if ptrs:
            arr = (P * len(ptrs))(*ptrs)
            scales = (ctypes.c_float * len(ptrs))(*[s for _, s in loras])
            rc = L.llama_set_adapters_lora(self.ptr, arr, len(ptrs), scales)
            if rc != 0:
                raise RuntimeError("llama_set_adapters_lora returned %d" % rc)

    libllama.Model.__init__ = model_init_lora
    libllama.Context.__init__ = context_init_lora
    llamaref.main(argv)

    out = argv[argv.index("--out") + 1] + ".json"
    d = json.load(open(out))
    d["loras"] = [{"file": os.path.basename(f),
                   "sha256": hashlib.sha256(open(f, "rb").read()).hexdigest(),
                   "scale": s} for f, s in loras]
    json.dump(d, open(out, "w"), ensure_ascii=False, indent=1)
    open(out, "a").write("\n")


if __name__ == "__main__":
    main()
