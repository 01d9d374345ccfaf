#!/usr/bin/env bash
# Installs the Debian packages the tests need, when they are missing and we may
# install them: Chromium for the page tests, Prometheus for the metrics test
# (it scrapes a live node and answers a query, as an operator's would).
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium fonts-dejavu-core)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "The tests need ${missing[*]}: run 'sudo apt-get install ${missing[*]}' and try again." >&2
  exit 1
fi
echo "Installing ${missing[*]} for the tests..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
