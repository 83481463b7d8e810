#!/usr/bin/python3
"""Quarrel against llama.cpp on the same GGUF: pp and tg tokens/s, interleaved, several rounds.

usage: /usr/bin/python3 bench/compare.py MODEL.gguf [-t 1,2] [-p 128] [-n 64] [-r 3] [-d 0]
       [-ctk f16] [-ctv f16] [-fa auto|on|off] [--rounds 5] [--quarrel PATH]
       [--peer-script PATH] [-o md|json]

Each round runs, for every thread count, `quarrel bench -o json --tg-after-pp` and the peer's
`llamabench.py` (llama.cpp called directly through its C API, not through node-llama-cpp) with
the same model, threads, -p, -n, -r, -d (llama-bench's depth: each test after D tokens in the
cache, rows "tg64 @ d4096") and KV cache types, alternating which goes first; -fa goes to both
as given (auto means each engine's own default: llama.cpp's auto picks flash attention on the
CPU, Quarrel's only where the cache types need it). The peer script is bench/llamabench.py
(the shared driver with depth and cache settings added). tg is timed after an
untimed P-token prompt on both sides (llamabench.py's way; hence --tg-after-pp). Reported per
test: the median over rounds of each side's mean tok/s, the ratio Quarrel / llama.cpp, the
min..max over rounds, and each side's peak RSS (Quarrel's own getrusage figure from its JSON;
for llama.cpp ru_maxrss from wait4 of the Python process hosting libllama, interpreter included). Quarrel's GB/s and bandwidth share come
from its own JSON (bandwidth measured once per thread count in the first round, then passed with
--bw). Needs the peer installed as /work/shared/peer/README.md says (default /tmp/peer).
Uses only the standard library of Debian's python3.
"""
import sys

sys.dont_write_bytecode = True
import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PEER = os.path.join(HERE, 'llamabench.py')


def run(cmd):
    """Run cmd, return (stdout, peak RSS in bytes of the child)."""
    with tempfile.TemporaryFile() as err:  # a file, so a chatty stderr cannot block the child
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
        out = p.stdout.read()
        p.stdout.close()
        _, status, ru = os.wait4(p.pid, 0)  # reap it ourselves to get its rusage
        p.returncode = code = os.waitstatus_to_exitcode(status)
        if code != 0:
            err.seek(0)
            sys.exit(f'compare.py: {" ".join(cmd)} failed ({code}):\n'
                     f'{err.read().decode(errors="replace")[-4000:]}')
    return out.decode(), ru.ru_maxrss * 1024


def find_quarrel():
    for d in sorted(os.listdir(os.path.join(HERE, '..'))):
        q = os.path.join(HERE, '..', d, 'quarrel')
        if d.startswith('build') and os.access(q, os.X_OK):
            return os.path.normpath(q)
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('model')
    ap.add_argument('-t', default='1,2', help='comma-separated thread counts')
    ap.add_argument('-p', type=int, default=128)
    ap.add_argument('-n', type=int, default=64)
    ap.add_argument('-r', type=int, default=3, help='repetitions inside each run')
    ap.add_argument('-d', default='0', help='comma-separated cache depths (llama-bench -d)')
    ap.add_argument('-ctk', default='f16', help='K cache type')
    ap.add_argument('-ctv', default='f16', help='V cache type')
    ap.add_argument('-fa', default='auto', choices=['auto', 'on', 'off'])
    ap.add_argument('--rounds', type=int, default=5)
    ap.add_argument('--quarrel', default=os.environ.get('QUARREL') or find_quarrel())
    ap.add_argument('--peer-script', default=os.path.normpath(DEFAULT_PEER))
    ap.add_argument('-o', default='md', choices=['md', 'json'])
    a = ap.parse_args()
    if not a.quarrel or not os.access(a.quarrel, os.X_OK):
        sys.exit('compare.py: no quarrel binary: build one or give --quarrel PATH')
    if not os.path.exists(a.model):
        sys.exit(f'compare.py: no such model file: {a.model}')
    threads = [int(x) for x in a.t.split(',')]
    common = ['-p', str(a.p), '-n', str(a.n), '-r', str(a.r), '-d', a.d, '-ctk', a.ctk,
              '-ctv', a.ctv, '-fa', a.fa]

    bw = {}  # threads -> GB/s measured by quarrel in its first run
    q_runs, l_runs = {}, {}  # (threads, test) -> [tok/s per round]
    q_info, q_rss, l_rss = {}, {}, {}
    for rnd in range(a.rounds):
        for t in threads:
            def quarrel():
                cmd = [a.quarrel, 'bench', '-m', a.model, '-t', str(t), '-o', 'json',
                       '--tg-after-pp'] + common
                if t in bw:
                    cmd += ['--bw', f'{bw[t]:.3f}']
                out, _ = run(cmd)
                js = json.loads(out)
                # its own getrusage(RUSAGE_SELF): wait4's figure would include the child process
                # that measured the bandwidth with a 512 MB buffer
                q_rss.setdefault(t, []).append(js['peak_rss_bytes'])
                for r in js['results']:
                    q_runs.setdefault((t, r['test']), []).append(r['avg_ts'])
                    q_info[(t, r['test'])] = r
                    if r.get('bw_gbps') and t not in bw:
                        bw[t] = r['bw_gbps']

            def llama():
                out, rss = run([sys.executable, a.peer_script, a.model, '-t', str(t), '-o', 'json']
                               + common)
                l_rss.setdefault(t, []).append(rss)
                for r in json.loads(out):
                    l_runs.setdefault((t, r['test']), []).append(r['tok_s'])

            for f in ((quarrel, llama) if rnd % 2 == 0 else (llama, quarrel)):
                f()
            print(f'compare.py: round {rnd + 1}/{a.rounds}, {t} thread(s) done', file=sys.stderr)

    rows = []
    for (t, test), qv in q_runs.items():
        lv = l_runs.get((t, test), [])
        qm = statistics.median(qv)
        lm = statistics.median(lv) if lv else None
        info = q_info[(t, test)]
        rows.append(dict(threads=t, test=test, quarrel_ts=qm, llama_ts=lm,
                         ratio=qm / lm if lm else None,
                         quarrel_range=[min(qv), max(qv)],
                         llama_range=[min(lv), max(lv)] if lv else None,
                         quarrel_gbps=info['bytes_per_token'] * qm / 1e9,
                         bw_gbps=info.get('bw_gbps'),
                         quarrel_peak_rss=max(q_rss[t]), llama_peak_rss=max(l_rss[t])))
    rows.sort(key=lambda r: (r['threads'], int(r['test'].partition(' @ d')[2] or 0),
                             not r['test'].startswith('pp')))
    meta = dict(model=os.path.basename(a.model), rounds=a.rounds, repetitions=a.r,
                cache_type_k=a.ctk, cache_type_v=a.ctv, flash_attn=a.fa,
                date=datetime.datetime.now().isoformat(timespec='seconds'),
                quarrel=a.quarrel, peer=a.peer_script)
    if a.o == 'json':
        print(json.dumps(dict(meta, results=rows), indent=1))
        return
    mib = 1024 * 1024
    print(f"{meta['model']}: median of {a.rounds} rounds (each the mean of {a.r} repetitions), "
          f"K {a.ctk}, V {a.ctv}, -fa {a.fa}, {meta['date']}")
    print('| threads | test | Quarrel t/s | llama.cpp t/s | Quarrel / llama.cpp | '
          'Quarrel range | llama.cpp range | Quarrel GB/s (bw share) | peak RSS Q / L (MiB) |')
    print('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |')
    for r in rows:
        share = f" ({100 * r['quarrel_gbps'] / r['bw_gbps']:.0f}% of {r['bw_gbps']:.1f})" \
            if r['bw_gbps'] else ''
        lr = r['llama_range']
        lts = f"{r['llama_ts']:.1f}" if lr else '-'
        ratio = f"{r['ratio']:.2f}" if lr else '-'
        lrange = f"{lr[0]:.0f}..{lr[1]:.0f}" if lr else '-'
        print(f"| {r['threads']} | {r['test']} | {r['quarrel_ts']:.1f} | {lts} | {ratio} | "
              f"{r['quarrel_range'][0]:.0f}..{r['quarrel_range'][1]:.0f} | "
              f"{lrange} | {r['quarrel_gbps']:.2f}{share} | "
              f"{r['quarrel_peak_rss'] / mib:.0f} / {r['llama_peak_rss'] / mib:.0f} |")


if __name__ == '__main__':
    main()
