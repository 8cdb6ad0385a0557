#!/usr/bin/env bash
# Runs the example agent for the development broker: installs its npm
# packages from the lock file when they are missing or older than the lock
# file, then starts the worker under LIVEKIT_AGENT_NAME (default demo-bot).
# LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET must be the broker's.
set -euo pipefail
cd "$(dirname "$0")"
: "${LIVEKIT_URL:?set LIVEKIT_URL (e.g. ws://127.0.0.1:7880), as for the broker}"
: "${LIVEKIT_API_KEY:?set LIVEKIT_API_KEY, as for the broker}"
: "${LIVEKIT_API_SECRET:?set LIVEKIT_API_SECRET, as for the broker}"
lock=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat node_modules/.vb-lock-sha256 2>/dev/null)" != "$lock" ]; then
  # node_modules may be scripts/test.sh's link to its cache: npm ci would
  # empty the cache through it, so drop the link, not what it points to.
  if [ -L node_modules ]; then rm node_modules; fi
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock" > node_modules/.vb-lock-sha256
fi
exec node worker.mjs "${1:-dev}"
