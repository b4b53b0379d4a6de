#!/usr/bin/env bash
# Measures nexnet's streaming AES-256-CTR and SHA-1 next to `openssl speed`
# on this machine, in one sitting, and prints the ratios the README records.
#
#   bash benches/compare-openssl.sh            # 5 rounds
#   ROUNDS=9 bash benches/compare-openssl.sh
#
# Shared machines drift by tens of percent from one second to the next, so
# each round runs openssl right before and right after the Rust benches and
# compares against the mean of the two; the median ratio over the rounds is
# the figure to quote.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-5}
filter='aes256ctr/(encrypt_read|decrypt_read|encrypt_async_read)/64KiB|hash/sha1/64KiB'
log=$(mktemp)
trap 'rm -f "$log"' EXIT

openssl_bps() { # algorithm -> bytes per second at 64 KiB buffers, one core
  openssl speed -seconds 2 -bytes 65536 -evp "$1" 2>/dev/null |
    awk -v alg="$1" 'tolower($1) == tolower(alg) { sub(/k$/, "", $2); print $2 * 1000 }'
}

cargo bench --bench crypto --no-run 2>/dev/null
for round in $(seq "$rounds"); do
  aes_before=$(openssl_bps aes-256-ctr)
  sha_before=$(openssl_bps sha1)
  cargo bench --bench crypto -- --noplot --warm-up-time 1 --measurement-time 3 "$filter" >/dev/null 2>&1
  aes_after=$(openssl_bps aes-256-ctr)
  sha_after=$(openssl_bps sha1)
  python3 - "$round" "$aes_before" "$aes_after" "$sha_before" "$sha_after" >>"$log" <<'PY'
import json, os, sys, pathlib
rnd, ab, aa, sb, sa = sys.argv[1], *map(float, sys.argv[2:])
aes, sha = (ab + aa) / 2, (sb + sa) / 2
root = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", "target")) / "criterion"
def bps(group, bench):
    est = json.loads((root / group / bench / "64KiB" / "new" / "estimates.json").read_text())
    return 65536 / (est["mean"]["point_estimate"] * 1e-9)
for name, ours, ref in [
    ("AES-256-CTR encrypt, Read adapter", bps("aes256ctr", "encrypt_read"), aes),
    ("AES-256-CTR decrypt, Read adapter", bps("aes256ctr", "decrypt_read"), aes),
    ("AES-256-CTR encrypt, AsyncRead adapter", bps("aes256ctr", "encrypt_async_read"), aes),
    ("SHA-1 (CidHasher)", bps("hash", "sha1"), sha),
]:
    print(f"{rnd}\t{name}\t{ours}\t{ref}")
PY
  echo "round $round of $rounds done" >&2
done

python3 - "$log" <<'PY'
import sys, statistics, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    rnd, name, ours, ref = line.rstrip("\n").split("\t")
    rows[name].append((float(ours), float(ref)))
print(f"{'64 KiB buffers, one core':40} {'nexnet':>10} {'openssl':>10} {'ratio (median, min-max)':>24}")
for name, vals in rows.items():
    ratios = [o / r for o, r in vals]
    ours = statistics.median(o for o, _ in vals)
    ref = statistics.median(r for _, r in vals)
    print(f"{name:40} {ours/1e9:5.2f} GB/s {ref/1e9:5.2f} GB/s "
          f"{statistics.median(ratios):8.2f} ({min(ratios):.2f}-{max(ratios):.2f})")
PY
