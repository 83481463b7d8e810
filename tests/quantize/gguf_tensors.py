"""gguf_tensors.py - list a GGUF file's tensors (name, ggml type name, sha256 of the bytes) with
the standard library only; shared by mk_mix_refs.py (llama.cpp's files) and test_mix_arch.sh
(Quarrel's). Only the types a quantizer writes are known; any other type is an error."""

import hashlib
import struct
import sys

# ggml type id -> (name as ggml_type_name prints it, block size, bytes per block)
GGML_TYPES = {
    0: ("f32", 1, 4), 1: ("f16", 1, 2), 2: ("q4_0", 32, 18), 3: ("q4_1", 32, 20),
    6: ("q5_0", 32, 22), 7: ("q5_1", 32, 24), 8: ("q8_0", 32, 34), 10: ("q2_K", 256, 84),
    11: ("q3_K", 256, 110), 12: ("q4_K", 256, 144), 13: ("q5_K", 256, 176),
    14: ("q6_K", 256, 210), 16: ("iq2_xxs", 256, 66), 17: ("iq2_xs", 256, 74),
    18: ("iq3_xxs", 256, 98), 19: ("iq1_s", 256, 50), 20: ("iq4_nl", 32, 18),
    21: ("iq3_s", 256, 110), 22: ("iq2_s", 256, 82), 23: ("iq4_xs", 256, 136),
    29: ("iq1_m", 256, 56), 30: ("bf16", 1, 2), 34: ("tq1_0", 256, 54), 35: ("tq2_0", 256, 66),
    39: ("mxfp4", 32, 17),
}
# GGUF metadata value types: fixed sizes (8 string, 9 array are read apart)
_SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


class _Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, fmt):
        v = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return v[0]

    def string(self):
        n = self.take("Q")
        s = self.data[self.pos:self.pos + n].decode("utf-8")
        self.pos += n
        return s

    def value(self, vtype):
        if vtype == 8:
            return self.string()
        if vtype == 9:
            etype, n = self.take("I"), self.take("Q")
            return [self.value(etype) for _ in range(n)]
        fmt = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q",
               12: "d"}[vtype]
        return self.take(fmt)


def read(path, data=False):
    """(metadata dict, [(name, type name, [ne...], sha256 hex)]) in the file's tensor order;
    with data=True the tensor's bytes in place of their sha256."""
    with open(path, "rb") as f:
        raw = f.read()
    keep_bytes, data = data, raw
    r = _Reader(data)
    if data[:4] != b"GGUF":
        raise ValueError("%s: not a GGUF file" % path)
    r.pos = 4
    version = r.take("I")
    if version not in (2, 3):
        raise ValueError("%s: GGUF version %d" % (path, version))
    n_tensors, n_kv = r.take("Q"), r.take("Q")
    meta = {}
    for _ in range(n_kv):
        key = r.string()
        meta[key] = r.value(r.take("I"))
    infos = []
    for _ in range(n_tensors):
        name = r.string()
        ne = [r.take("Q") for _ in range(r.take("I"))]
        infos.append((name, r.take("I"), ne, r.take("Q")))
    align = meta.get("general.alignment", 32)
    base = (r.pos + align - 1) // align * align
    out = []
    for name, tid, ne, offset in infos:
        if tid not in GGML_TYPES:
            raise ValueError("%s: tensor %s has ggml type %d, unknown here" % (path, name, tid))
        tname, blck, tsize = GGML_TYPES[tid]
        rows = 1
        for d in ne[1:]:
            rows *= d
        nbytes = rows * (ne[0] // blck) * tsize
        start = base + offset
        if start + nbytes > len(data):
            raise ValueError("%s: tensor %s runs past the end of the file" % (path, name))
        body = data[start:start + nbytes]
        out.append((name, tname, ne, body if keep_bytes else hashlib.sha256(body).hexdigest()))
    return meta, out


if __name__ == "__main__":
    for p in sys.argv[1:]:
        for name, tname, ne, digest in read(p)[1]:
            print(name, tname, digest)
