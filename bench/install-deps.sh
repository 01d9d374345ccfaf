#!/usr/bin/env bash
# Installs the Debian packages the benchmarks need (redis-server and
# redis-benchmark as a baseline, wrk as an HTTP load generator), when they are
# missing and we may install them. The benchmarks start their own Redis on a
# port of their choosing, so the install must not leave a system Redis running
# on 6379.
set -euo pipefail

missing=()
for tool in redis-server redis-benchmark wrk; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ "${#missing[@]}" = 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "The benchmarks need ${missing[*]}: run 'sudo apt-get install redis-server redis-tools wrk' and try again." >&2
  exit 1
fi

# Was a Redis already answering on 6379 before we started? Then it is someone
# else's and we leave it alone.
redis_answers() {
  command -v redis-cli >/dev/null 2>&1 && redis-cli -p 6379 ping >/dev/null 2>&1
}
was_up=no
if redis_answers; then was_up=yes; fi

# policy-rc.d exiting 101 tells invoke-rc.d not to start services during the
# install. Containers often ship one already; only add (and later remove) ours.
policy=/usr/sbin/policy-rc.d
own_policy=no
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# Written by bench/install-deps.sh for the length of one install.\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  own_policy=yes
  trap 'rm -f "$policy"' EXIT
fi

echo "Installing redis-server, redis-tools and wrk for the benchmarks..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends redis-server redis-tools wrk >/dev/null

if [ "$own_policy" = yes ]; then
  rm -f "$policy"
  trap - EXIT
fi

# Belt and braces: if the package's service started anyway (a host whose init
# ignores policy-rc.d), stop it so it cannot answer the benchmarks' clients.
if [ "$was_up" = no ] && redis_answers; then
  echo "Stopping the system Redis that the install started on port 6379..."
  # The init script only stops the server its pidfile names; shutdown reaches any other.
  service redis-server stop >/dev/null 2>&1 || true
  if redis_answers; then
    redis-cli -p 6379 shutdown nosave >/dev/null 2>&1 || true
    sleep 1
  fi
  if redis_answers; then
    echo "A Redis is still running on port 6379: stop it before running the benchmarks." >&2
    exit 1
  fi
fi

for tool in redis-server redis-benchmark wrk; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "$tool is still missing after the install." >&2
    exit 1
  fi
done
