#!/usr/bin/env bash
# Coverage-guided fuzzing with libFuzzer on the stable toolchain (the
# sanitizer-coverage flags below are stable; no nightly, no cargo-fuzz).
# Usage: fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]   (default: 60, all)
# Corpora live in fuzz/corpus/<target> (seeded from the test data);
# crashes are written to fuzz/artifacts/<target>.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-60}; shift || true
targets=("$@"); [ ${#targets[@]} -gt 0 ] || targets=(token path request signed)
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# An explicit --target keeps RUSTFLAGS off build scripts.
triple=$(rustc -vV | sed -n 's/^host: //p')
cargo build --release --quiet --target "$triple" --target-dir target $(printf -- '--bin %s ' "${targets[@]}")
mkdir -p corpus/path corpus/request corpus/token corpus/signed
# Seed the path and request corpora from the traversal payloads.
for f in ../crates/verifier/tests/data/traversal-extra.txt ../../shared/corpus/traversal-public.txt; do
  [ -f "$f" ] || continue
  n=0; while IFS= read -r line; do n=$((n+1)); printf '%s' "$line" > "corpus/path/seed-$(basename "$f")-$n"; printf '%s\nbytes=0-1\n' "$line" > "corpus/request/seed-$(basename "$f")-$n"; done < "$f"
done
# Cross-origin requests: a preflight from the listed origin, a GET from it,
# and a preflight from another (the lines after the target are the
# headers, in the order request.rs names them).
printf '!/pub/a.txt\n\n\n\n\n\n\n\nhttps://app.example\nGET\n' > corpus/request/seed-cors-preflight
printf '/pub/a.txt\nbytes=0-3\n\n\n\n\n\n\nhttps://app.example\n' > corpus/request/seed-cors-get
printf '!/pub/a.txt\n\n\n\n\n\n\n\nhttps://evil.example\nGET\n' > corpus/request/seed-cors-other
# Uploads (a leading ^ is a PUT; its body is the last line).
printf '^/pub/new.txt\n\n\n\n\n\n\n\n\n\ntext/plain\n\n\n\nhello\n' > corpus/request/seed-upload
printf '^/pub/out/x\n\n\n\n\n\n\n\n\n\n\n\n100-continue\n\nx' > corpus/request/seed-upload-symlink
# Seed the signed-payload corpus with the payloads of the format vectors.
python3 - <<'PY'
import base64, json, pathlib
vectors = json.loads(pathlib.Path("../crates/signer/tests/vectors.json").read_text())
for i, case in enumerate(vectors["valid"] + vectors["invalid"]):
    token = case.get("token", "")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except Exception:
        continue
    if len(raw) > 32:
        path = case.get("request", {}).get("path") or case.get("claims", {}).get("path", "/a/b")
        pathlib.Path(f"corpus/signed/seed-{i}").write_bytes(path.encode() + b"\0" + raw[:-32])
PY
for t in "${targets[@]}"; do
  mkdir -p "artifacts/$t"
  echo "== fuzzing $t for ${secs}s"
  ./target/"$triple"/release/"$t" -max_total_time="$secs" -print_final_stats=1 \
    -artifact_prefix="artifacts/$t/" "corpus/$t" 2>&1 | grep -E 'stat::number_of_executed_units|stat::peak_rss|ERROR|panicked|SUMMARY' || true
  if ls "artifacts/$t"/crash-* >/dev/null 2>&1; then echo "fuzz target $t found a crash: fuzz/artifacts/$t"; exit 1; fi
done
