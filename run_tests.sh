#!/usr/bin/env bash
# Sets everything up (idempotent), then runs the whole test suite.
# Extra arguments go to pytest, e.g. ./run_tests.sh -k chat
set -euo pipefail
cd "$(dirname "$0")"
tools/setup.sh
# Browser tests drive Debian's chromium (Playwright's own browser download is not used).
if [ ! -x /usr/bin/chromium ]; then
    echo "Installing chromium for the browser tests"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium > /dev/null
fi
# Test models in the other formats, made once from the default GGUF and cached outside
# the checkout (see tools/make_test_models.py).
.venv/bin/python tools/make_test_models.py
exec .venv/bin/python -m pytest tests "$@"
