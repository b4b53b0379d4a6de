#!/usr/bin/env python3
"""Time to first byte of a 1 MiB range read in the middle of a file, on
every node of a mesh of `nexnet serve` processes, for one or more `nexnet`
binaries side by side (say, the commit before chunks and this one).

    scripts/range_ttfb.py --bin old=/tmp/old-target/release/nexnet \\
        --bin new=target/release/nexnet --sizes 64M,1G --nodes 4 --replicas 2

For each binary and size: four nodes on loopback with `--replicas 2`, a file
of random bytes put through node 1, then on each node in turn a cold range
GET (`Range: bytes=MID-MID+1MiB-1`) and three warm ones at other offsets
near the middle; the first byte's time is measured from the request. A
node's `local` column says whether it held the file's object (the old
format) or root (the new) before its first read. Prints one line per node
and the medians of the cold reads per kind of node. Needs nothing but
python3 and the binaries; ports are picked free at start.
"""

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

MIB = 1 << 20


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_size(text):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if text[-1].upper() in units:
        return int(text[:-1]) * units[text[-1].upper()]
    return int(text)


def run(binary, *args):
    out = subprocess.run([binary, *args], check=True, capture_output=True, text=True)
    return out.stdout


def wait_api(port, deadline=30):
    end = time.time() + deadline
    while time.time() < end:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/v1/status")
            r = c.getresponse()
            body = r.read()
            if r.status == 200:
                return json.loads(body)
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"API on {port} did not come up")


def ranged_ttfb(port, name, offset, length=MIB):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    start = time.perf_counter()
    c.request("GET", f"/v1/files/{name}",
              headers={"Range": f"bytes={offset}-{offset + length - 1}"})
    r = c.getresponse()
    first = r.read(1)
    ttfb = time.perf_counter() - start
    rest = r.read()
    total = time.perf_counter() - start
    if r.status != 206 or len(first) + len(rest) != length:
        raise SystemExit(f"range read on {port}: {r.status}, {len(first) + len(rest)} bytes")
    return ttfb, total


def mesh(binary, root, n, replicas):
    dirs = [os.path.join(root, f"n{i}") for i in range(n)]
    run(binary, "init", "--data", dirs[0])
    for d in dirs[1:]:
        run(binary, "init", "--data", d, "--key-file", os.path.join(dirs[0], "data.key"),
            "--secret-file", os.path.join(dirs[0], "network.secret"))
    procs, apis = [], []
    peer0 = None
    for i, d in enumerate(dirs):
        listen, api = free_port(), free_port()
        args = [binary, "serve", "--data", d, "--listen", f"127.0.0.1:{listen}",
                "--api", f"127.0.0.1:{api}", "--replicas", str(replicas)]
        if peer0:
            args += ["--bootstrap", peer0]
        else:
            peer0 = f"127.0.0.1:{listen}"
        log = open(os.path.join(root, f"n{i}.log"), "w")
        procs.append(subprocess.Popen(args, stdout=log, stderr=log))
        apis.append(api)
    for api in apis:
        wait_api(api)
    end = time.time() + 30
    while any(wait_api(a)["peers"] < n - 1 for a in apis):
        if time.time() > end:
            raise SystemExit("the mesh did not form")
        time.sleep(0.2)
    return procs, apis


def whole_get(api, name):
    conn = http.client.HTTPConnection("127.0.0.1", api, timeout=600)
    conn.request("GET", f"/v1/files/{name}")
    resp = conn.getresponse()
    if resp.status != 200:
        raise SystemExit(f"whole GET: HTTP {resp.status}")
    got = 0
    while True:
        piece = resp.read(1 << 20)
        if not piece:
            break
        got += len(piece)
    conn.close()
    return got


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def measure(label, binary, size, n, replicas, work, full_get=False):
    root = tempfile.mkdtemp(prefix=f"ttfb-{label}-", dir=work)
    procs, apis = mesh(binary, root, n, replicas)
    try:
        src = os.path.join(root, "file")
        with open(src, "wb") as f:
            left = size
            while left:
                k = min(left, 64 * MIB)
                f.write(os.urandom(k))
                left -= k
        t = time.perf_counter()
        run(binary, "put", src, "--name", "big", "--api", f"127.0.0.1:{apis[0]}")
        put_secs = time.perf_counter() - t
        os.remove(src)
        listing = {i: json.loads(run(binary, "ls", "--json", "--api", f"127.0.0.1:{a}"))
                   for i, a in enumerate(apis)}
        mid = (size // 2) // MIB * MIB
        rows = []
        for i, api in enumerate(apis):
            local = any(f.get("local") for f in listing[i])
            cold, _ = ranged_ttfb(api, "big", mid)
            warm = [ranged_ttfb(api, "big", mid + k * 3 * MIB)[0] for k in (1, 2, 3)]
            rows.append((i + 1, local, cold, statistics.median(warm)))
        whole = None
        if full_get:
            # The whole file from a node without the root, and what each
            # node sent its peers meanwhile.
            reader = next((i for i in range(n) if not rows[i][1]), 0)
            before = [wait_api(a)["served_bytes"] for a in apis]
            t = time.perf_counter()
            got = whole_get(apis[reader], "big")
            secs = time.perf_counter() - t
            if got != size:
                raise SystemExit(f"the whole get read {got} bytes of {size}")
            served = [wait_api(a)["served_bytes"] - b for a, b in zip(apis, before)]
            whole = (reader + 1, secs, served, [peak_rss_kib(p.pid) for p in procs])
        return put_secs, rows, whole
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
        shutil.rmtree(root, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", action="append", required=True, help="LABEL=PATH")
    ap.add_argument("--sizes", default="64M,1G")
    ap.add_argument("--nodes", type=int, default=4)
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1, help="meshes per binary and size")
    ap.add_argument("--work", default=None, help="directory for the data (default: /tmp)")
    ap.add_argument("--full-get", action="store_true",
                    help="then GET the whole file from a node without the root, and print "
                         "the throughput, the bytes each node sent its peers meanwhile and "
                         "each node's peak RSS (needs a binary with served_bytes in its status)")
    args = ap.parse_args()
    bins = [b.split("=", 1) for b in args.bin]
    print(f"{'binary':<8} {'size':>6} {'node':>4} {'local':>5} {'cold ms':>9} {'warm ms':>9}")
    summary = {}
    for size_text in args.sizes.split(","):
        size = parse_size(size_text)
        for _ in range(args.rounds):
            # Interleaved, so that both see the same machine.
            for label, binary in bins:
                put_secs, rows, whole = measure(label, binary, size, args.nodes, args.replicas,
                                                args.work, args.full_get)
                for node, local, cold, warm in rows:
                    print(f"{label:<8} {size_text:>6} {node:>4} {str(local):>5} "
                          f"{cold * 1e3:>9.1f} {warm * 1e3:>9.1f}")
                    summary.setdefault((label, size_text, local), []).append(cold)
                print(f"{label:<8} {size_text:>6} put {put_secs:.2f} s "
                      f"({size / put_secs / 1e6:.0f} MB/s)")
                if whole:
                    reader, secs, served, rss = whole
                    print(f"{label:<8} {size_text:>6} whole get on node {reader}: {secs:.2f} s "
                          f"({size / secs / 1e6:.0f} MB/s); MiB sent to peers per node: "
                          f"{[round(b / MIB) for b in served]}; peak RSS MiB per node: "
                          f"{[round(k / 1024) for k in rss]}")
                sys.stdout.flush()
    print("\nmedian cold time to first byte (ms), by whether the node held the file's object/root")
    for (label, size_text, local), v in sorted(summary.items()):
        print(f"{label:<8} {size_text:>6} local={str(local):<5} {statistics.median(v) * 1e3:8.1f}  (n={len(v)})")


if __name__ == "__main__":
    main()
