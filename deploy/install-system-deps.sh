#!/usr/bin/env bash
# Installs the Debian packages the tests need (Chromium for the page tests),
# when they are missing and we may install them.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "The page tests need Chromium: run 'sudo apt-get install chromium' and try again." >&2
  exit 1
fi
echo "Installing Chromium for the page tests..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
