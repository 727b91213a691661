#!/usr/bin/env bash
# Make sure a Java runtime (17 or newer) is there for PySpark's local mode; installs Debian's if not.
set -euo pipefail
if java -version 2>&1 | grep -qE 'version "(1[7-9]|[2-9][0-9])'; then
  exit 0
fi
echo "installing a Java runtime for Spark…" >&2
if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
$SUDO apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq openjdk-17-jre-headless >&2
