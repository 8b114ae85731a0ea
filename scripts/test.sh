#!/usr/bin/env bash
# Runs every test: frontend unit tests, then the Python suite (real TensorFlow
# training, both TensorBoard loaders, headless Chromium, the built wheel).
source "$(dirname "$0")/setup.sh"
build_frontend
(cd frontend && npm test --silent)
install_project test
command -v chromium >/dev/null || {
  echo "The browser test needs Debian's chromium: apt-get install -y chromium" >&2; exit 2; }
# pytest exits 5 when it collected no test; that is a failure here too.
exec .venv/bin/python -m pytest "$@"
