#!/usr/bin/env bash
# Runs the example agent for the development broker: installs its npm
# packages from the lock file when they are missing, then starts the worker
# under LIVEKIT_AGENT_NAME (default demo-bot). LIVEKIT_URL, LIVEKIT_API_KEY
# and LIVEKIT_API_SECRET must be the broker's.
set -euo pipefail
cd "$(dirname "$0")"
: "${LIVEKIT_URL:?set LIVEKIT_URL (e.g. ws://127.0.0.1:7880), as for the broker}"
: "${LIVEKIT_API_KEY:?set LIVEKIT_API_KEY, as for the broker}"
: "${LIVEKIT_API_SECRET:?set LIVEKIT_API_SECRET, as for the broker}"
if [ ! -d node_modules/@livekit/agents ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
exec node worker.mjs "${1:-dev}"
