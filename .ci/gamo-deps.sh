#!/usr/bin/env bash
# OS packages of the GaMo browser test: Debian's chromium and its chromedriver (Selenium drives
# them; no browser is ever downloaded) and an emoji font (the bombs' icons in screenshots).
# Without root or apt-get nothing is installed and the browser test skips, saying why.
set -uo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        chromium chromium-driver fonts-noto-color-emoji >/dev/null || echo "gamo-deps: apt-get failed; the browser test will skip"
else
    echo "gamo-deps: not root or no apt-get; the browser test will skip (install chromium chromium-driver)"
fi
exit 0
