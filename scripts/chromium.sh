#!/usr/bin/env bash
# Make sure Debian's Chromium and ChromeDriver are there for the browser tests (tests/console) and print
# Chromium's path. Installs the packages chromium and chromium-driver when either is missing, and a small
# Chinese font (fonts-wqy-microhei): without one, zh-CN pages show empty boxes in the screenshots.
# Playwright drives this Chromium; never `playwright install` (it downloads a browser, which fails here).
set -euo pipefail
CHROMIUM=/usr/bin/chromium
CHROMEDRIVER=/usr/bin/chromedriver
CJK_FONT=/usr/share/fonts/truetype/wqy/wqy-microhei.ttc
if [ -x "$CHROMIUM" ] && [ -x "$CHROMEDRIVER" ] && [ -f "$CJK_FONT" ]; then
  echo "$CHROMIUM"
  exit 0
fi
echo "installing Debian's chromium, chromium-driver and fonts-wqy-microhei for the browser tests…" >&2
if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
install() {
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    chromium chromium-driver fonts-wqy-microhei >&2
}
# The package lists may be missing or stale on a new machine: update them only when the install needs it.
if ! install; then
  $SUDO apt-get update -qq >&2
  install
fi
test -x "$CHROMIUM" && test -x "$CHROMEDRIVER" && test -f "$CJK_FONT"
echo "$CHROMIUM"
