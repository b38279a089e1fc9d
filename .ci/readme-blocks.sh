#!/usr/bin/env bash
# Runs every shell block of README.md, in order, as a new user pastes them:
# in a fresh clone, with `mediagate` installed by the README's own
# `cargo install` (into a throwaway root, reusing this checkout's release
# build). Skipped: the first screen's two commands (the demo runs until
# Ctrl-C; .ci/run is what runs this) and the Tests section's .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone -q . "$work/fresh"
export CARGO_TARGET_DIR="$top/target" CARGO_INSTALL_ROOT="$work/install"
export PATH="$work/install/bin:$PATH"
python3 - "$top/README.md" "$work/blocks" <<'PY'
import pathlib, re, sys
text = pathlib.Path(sys.argv[1]).read_text()
out = pathlib.Path(sys.argv[2]); out.mkdir()
blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
n = 0
for block in blocks:
    if "cargo run --release -- demo" in block or block.strip() == ".ci/run":
        continue
    n += 1
    (out / f"{n:02}.sh").write_text(block)
print(f"README: {n} shell blocks to run")
PY
cd "$work/fresh"
for block in "$work"/blocks/*.sh; do
  name=$(basename "$block" .sh)
  echo "--- README block $name"
  sed 's/^/    /' "$block"
  bash -euo pipefail "$block" > "$work/out-$name" 2>&1 || {
    cat "$work/out-$name"; echo "README block $name failed"; exit 1; }
  # head reads the file itself: a pipe from sed into head would fail the
  # run (SIGPIPE under pipefail) whenever a block prints a lot.
  head -n 20 "$work/out-$name" | sed 's/^/  > /'
done
# What the serve block promises in its comments.
grep -q 'hello from mediagate' "$work"/out-* || { echo "README: the link did not serve the file"; exit 1; }
grep -q 'missing_token' "$work"/out-* || { echo "README: the bare URL was not refused"; exit 1; }
echo "README blocks: all ran"
