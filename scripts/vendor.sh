#!/usr/bin/env bash
# Re-fetch the console's vendored front-end files (a developer tool; CI never runs it, the files are committed).
# Each comes from its npm package through `npm pack`, at exactly the version below, into
# src/omnicrm/console/static/vendor/, with its licence, and VERSIONS.txt records what came from where.
# To upgrade: change a version here, run `bash scripts/vendor.sh`, check the console, commit the result.
set -euo pipefail
ECHARTS_VERSION=6.1.0
HTMX_VERSION=2.0.11

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/src/omnicrm/console/static/vendor"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$DEST"

# fetch NAME VERSION: packs NAME@VERSION into $WORK/NAME/ and appends its line to $WORK/versions.
fetch() {
  local name="$1" version="$2" tarball integrity
  mkdir -p "$WORK/$name"
  tarball="$(cd "$WORK" && npm pack --silent "$name@$version" 2>/dev/null | tail -n 1)"
  integrity="$(npm view "$name@$version" dist.integrity 2>/dev/null)"
  tar -xzf "$WORK/$tarball" -C "$WORK/$name" --strip-components=1
  printf '%s\t%s\t%s\t%s\n' "$name" "$version" "$tarball" "$integrity" >>"$WORK/versions"
}

fetch echarts "$ECHARTS_VERSION"
fetch htmx.org "$HTMX_VERSION"

install -m 0644 "$WORK/echarts/dist/echarts.min.js" "$DEST/echarts.min.js"
install -m 0644 "$WORK/echarts/LICENSE" "$DEST/echarts.LICENSE.txt"
install -m 0644 "$WORK/echarts/NOTICE" "$DEST/echarts.NOTICE.txt"
install -m 0644 "$WORK/htmx.org/dist/htmx.min.js" "$DEST/htmx.min.js"
install -m 0644 "$WORK/htmx.org/LICENSE" "$DEST/htmx.LICENSE.txt"

{
  echo "# Front-end files vendored into the package (served by the console, no CDN). Made by scripts/vendor.sh."
  echo "# Each came from the npm package's tarball, as \`npm pack <name>@<version>\` fetches it."
  printf '# %s\t%s\t%s\t%s\n' name version tarball integrity
  cat "$WORK/versions"
  echo "#"
  echo "# file                 from"
  echo "# echarts.min.js       echarts dist/echarts.min.js     (Apache-2.0: echarts.LICENSE.txt, echarts.NOTICE.txt)"
  echo "# htmx.min.js          htmx.org dist/htmx.min.js       (0BSD: htmx.LICENSE.txt)"
} >"$DEST/VERSIONS.txt"
ls -l "$DEST" >&2
