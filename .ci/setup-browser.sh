#!/usr/bin/env bash
# Installs what tests/browser.rs needs, with apt-get, only when it is missing:
#   - Debian's Chromium at /usr/bin/chromium (the headless browser);
#   - Noto CJK fonts, so the dashboard screenshot shows Chinese instead of empty boxes.
# Idempotent; needs root (CI runs as root). .ci/run calls it before `cargo test`.
set -euo pipefail
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -e /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ] || need+=(fonts-noto-cjk)
if [ ${#need[@]} -eq 0 ]; then
    echo "setup-browser: chromium and CJK fonts already installed"
    exit 0
fi
echo "setup-browser: installing ${need[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${need[@]}"
/usr/bin/chromium --version 2>/dev/null || true
