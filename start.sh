#!/usr/bin/env bash
# Sets everything up (idempotent) and starts the server on the default model.
# Any server flag is passed on, e.g. ./start.sh --listen
set -euo pipefail
cd "$(dirname "$0")"
tools/setup.sh
exec .venv/bin/python server.py "$@"
