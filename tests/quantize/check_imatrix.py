"""check_imatrix.py - compare `quarrel imatrix` output with a reference of llama-imatrix's
(tests/quantize/data/imatrix-*.json and .bin, made by mk_imatrix_refs.sh through the peer).

  check_imatrix.py REF.json OUT.gguf DATASET [--dat OUT.dat] [--ppl X]

GGUF: the metadata keys, their order, types and values as llama-imatrix writes them
(general.type, imatrix.datasets = [DATASET], imatrix.chunk_count, imatrix.chunk_size); the
tensors <name>.in_sum2 F32 [n, 1] and <name>.counts F32 [1, 1] for exactly the reference's
entries, in name order; counts exact; sums within 1e-3 relative, or the entry's measured "tol"
where the reference has one (smol135: see mk_imatrix_refs.sh), and then also the entry's total
within its "tol_total".
--dat: the legacy imatrix.dat as save_imatrix_legacy writes it: the entries in name order,
ncall = ceil(count / chunk_size), values (sum / count) * ncall within the same tolerance, then the
chunk count and DATASET.
--ppl: the final perplexity within 0.02 in ln (the acceptance of perplexity.json).
Prints every difference (the first 20 per file) and exits 1 if there is any."""

import json
import math
import os
import struct
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gguf_tensors import _Reader  # noqa: E402

REL = 1e-3
errors = []


def err(msg):
    errors.append(msg)


def close(a, b, tol):
    return abs(a - b) <= tol * abs(b) + 1e-30


def read_gguf(path):
    """[(key, type, value)], [(name, type id, n_dims, ne, values)] with F32 data unpacked"""
    data = open(path, "rb").read()
    if data[:4] != b"GGUF":
        raise SystemExit("%s: not a GGUF file" % path)
    r = _Reader(data)
    r.pos = 4
    r.take("I")
    n_tensors, n_kv = r.take("Q"), r.take("Q")
    kvs = []
    for _ in range(n_kv):
        key = r.string()
        vtype = r.take("I")
        etype = None
        if vtype == 9:  # peek at the element type, then read the array
            etype = struct.unpack_from("<I", data, r.pos)[0]
        kvs.append((key, (vtype, etype), r.value(vtype)))
    infos = []
    for _ in range(n_tensors):
        name = r.string()
        n_dims = r.take("I")
        ne = [r.take("Q") for _ in range(n_dims)]
        infos.append((name, r.take("I"), n_dims, ne, r.take("Q")))
    base = (r.pos + 31) // 32 * 32
    tensors = []
    for name, tid, n_dims, ne, off in infos:
        n = 1
        for d in ne:
            n *= d
        vals = struct.unpack_from("<%df" % n, data, base + off) if tid == 0 else None
        tensors.append((name, tid, n_dims, ne, vals))
    return kvs, tensors


def mats(e):
    """an entry's matrices (an expert tensor's experts) and their counts"""
    n_mat = e.get("n_mat", 1)
    return n_mat, e["counts"] if n_mat > 1 else [e["count"]]


def check_gguf(ref, sums, path, dataset):
    kvs, tensors = read_gguf(path)
    want_kv = [("general.type", (8, None), "imatrix"),
               ("imatrix.datasets", (9, 8), [dataset]),
               ("imatrix.chunk_count", (4, None), ref["imatrix.chunk_count"]),
               ("imatrix.chunk_size", (4, None), ref["imatrix.chunk_size"])]
    if kvs != want_kv:
        err("%s: metadata %r, llama-imatrix writes %r" % (path, kvs, want_kv))
    want_names = []
    for e in ref["entries"]:
        want_names += [e["name"] + ".in_sum2", e["name"] + ".counts"]
    names = [t[0] for t in tensors]
    if names != want_names:
        missing = sorted(set(want_names) - set(names))
        extra = sorted(set(names) - set(want_names))
        err("%s: tensor names differ: missing %s, extra %s%s" % (
            path, missing[:6], extra[:6], "" if missing or extra else " (order)"))
        return
    for i, e in enumerate(ref["entries"]):
        s, c = tensors[2 * i], tensors[2 * i + 1]
        n_mat, counts = mats(e)
        if (s[1], s[2], s[3]) != (0, 2, [e["n"], n_mat]) or (c[1], c[2], c[3]) != (0, 2, [1, n_mat]):
            err("%s: %s: types/shapes %s %s, llama-imatrix F32 [%d, %d] and F32 [1, %d]" % (
                path, e["name"], (s[1], s[3]), (c[1], c[3]), e["n"], n_mat, n_mat))
            continue
        if list(c[4]) != counts:
            err("%s: %s.counts is %r, llama-imatrix %s" % (
                path, e["name"], c[4][0] if n_mat == 1 else list(c[4]),
                counts[0] if n_mat == 1 else counts))
        nv = e["n"] * n_mat
        want = sums[e["offset"]:e["offset"] + nv]
        tol = e.get("tol", REL)
        bad = [j for j in range(nv) if not close(s[4][j], want[j], tol)]
        if bad:
            j = bad[0]
            err("%s: %s.in_sum2: %d of %d values off by more than %g relative (first [%d]: %r, "
                "llama-imatrix %r)" % (path, e["name"], len(bad), nv, tol, j, s[4][j],
                                       want[j]))
        if "tol_total" in e and not close(sum(s[4]), sum(want), e["tol_total"]):
            err("%s: %s.in_sum2: total %r, llama-imatrix %r (more than %g relative apart)" % (
                path, e["name"], sum(s[4]), sum(want), e["tol_total"]))


def check_dat(ref, sums, path, dataset):
    data = open(path, "rb").read()
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return v

    chunk = ref["imatrix.chunk_size"]
    (n,) = take("i")
    if n != len(ref["entries"]):
        err("%s: %d entries, llama-imatrix %d" % (path, n, len(ref["entries"])))
        return
    for e in ref["entries"]:
        (ln,) = take("i")
        name = data[pos:pos + ln].decode()
        pos += ln
        ncall, nval = take("ii")
        n_mat, counts = mats(e)
        want_ncall = (max(counts) + chunk - 1) // chunk
        if name != e["name"] or ncall != want_ncall or nval != e["n"] * n_mat:
            err("%s: entry %r ncall %d nval %d, llama-imatrix %r %d %d" % (
                path, name, ncall, nval, e["name"], want_ncall, e["n"] * n_mat))
            return
        vals = take("%df" % nval)
        # llama-imatrix stores 1 (times ncall) for an expert no row reached
        want = [v / counts[j // e["n"]] * ncall if counts[j // e["n"]] else float(ncall)
                for j, v in enumerate(sums[e["offset"]:e["offset"] + nval])]
        bad = [j for j in range(nval) if not close(vals[j], want[j], e.get("tol", REL))]
        if bad:
            err("%s: %s: %d values off (first [%d]: %r, expected %r)" % (
                path, name, len(bad), bad[0], vals[bad[0]], want[bad[0]]))
    n_chunk, ln = take("ii")
    tail = data[pos:]
    if n_chunk != ref["imatrix.chunk_count"] or tail != dataset.encode() or ln != len(tail):
        err("%s: trailer chunk count %d, dataset %r (%d), llama-imatrix %d, %r" % (
            path, n_chunk, tail, ln, ref["imatrix.chunk_count"], dataset))


def main():
    args = sys.argv[1:]
    opts = {}
    while len(args) > 3 and args[-2] in ("--dat", "--ppl"):
        opts[args[-2]] = args[-1]
        args = args[:-2]
    if len(args) != 3:
        raise SystemExit(__doc__)
    ref_path, out, dataset = args
    ref = json.load(open(ref_path))
    raw = open(os.path.join(os.path.dirname(ref_path), ref["bin"]), "rb").read()
    sums = struct.unpack("<%df" % (len(raw) // 4), raw)
    check_gguf(ref, sums, out, dataset)
    if "--dat" in opts:
        check_dat(ref, sums, opts["--dat"], dataset)
    if "--ppl" in opts:
        ppl = float(opts["--ppl"])
        if not abs(math.log(ppl) - math.log(ref["ppl"])) <= 0.02:
            err("PPL %g, llama-imatrix %g (more than 0.02 apart in ln)" % (ppl, ref["ppl"]))
    for m in errors[:20]:
        print(m)
    if len(errors) > 20:
        print("... %d more" % (len(errors) - 20))
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
