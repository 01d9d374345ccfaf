#!/usr/bin/env bash
# Installs a Counter node's Python environment: a virtualenv at $1 with the
# packages of the requirements file $2 (default: requirements.txt, which adds
# the test tools to requirements-node.txt). `make` and the container image
# (deploy/kubernetes/Dockerfile) both install through this script.
set -euo pipefail
venv=${1:?usage: install-node.sh VENV [REQUIREMENTS]}
requirements=${2:-requirements.txt}
cd "$(dirname "$0")/.."
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
