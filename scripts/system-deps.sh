#!/usr/bin/env bash
# Installs the system packages the test suite needs (Debian), when missing: PostgreSQL server binaries, and for the
# browser tests Debian's chromium with Thai and emoji fonts. Quick when everything is there; apt-get update runs
# at most once.
set -euo pipefail

have_pg() {
  command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
}

have_pkg() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

missing=()
have_pg || missing+=(postgresql)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
have_pkg fonts-thai-tlwg || missing+=(fonts-thai-tlwg)
have_pkg fonts-noto-color-emoji || missing+=(fonts-noto-color-emoji)
command -v npm >/dev/null 2>&1 || missing+=(npm)  # the browser SDKs of the e2e tests

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "system-deps: missing ${missing[*]}; run as root or install them" >&2
    exit 1
  fi
  echo "system-deps: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
