#!/usr/bin/env bash
# The end-to-end load harness: mediagate vs nginx secure_link vs a Django view.
# Usage: benches/load/run.sh [--quick]
# Installs nginx (with ngx_http_secure_link_module) and wrk from Debian's
# packages and Django + gunicorn into target/load-venv when missing, builds
# the release binary, then runs benches/load/harness.py.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v wrk >/dev/null || ! { command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; }; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends nginx-light wrk >/dev/null
fi
if [ ! -x target/load-venv/bin/gunicorn ]; then
  python3 -m venv target/load-venv
  target/load-venv/bin/pip install -q --disable-pip-version-check 'django>=4.2,<6' 'gunicorn>=21'
fi
cargo build --release --locked --quiet --bin mediagate
exec python3 benches/load/harness.py "$@"
