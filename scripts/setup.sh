# Shared by scripts/demo.sh and scripts/test.sh: a project virtualenv in .venv
# and the frontend bundle in tb_plugin/static. Sourced, not run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
build_frontend() {
  command -v npm >/dev/null || { echo "npm is needed to build the frontend (Node.js 18+)" >&2; exit 2; }
  (cd frontend && npm install --no-audit --no-fund --loglevel=error && npm run build --silent)
}
