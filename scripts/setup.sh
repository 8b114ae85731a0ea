# Shared by scripts/demo.sh and scripts/test.sh: a project virtualenv in .venv
# and the frontend bundle in tb_plugin/static. Sourced, not run. Each step is
# skipped when what it would produce is already up to date, so a second run
# starts at once and leaves `git status` clean (npm ci installs from the
# committed package-lock.json without rewriting it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
build_frontend() {
  command -v npm >/dev/null || { echo "npm is needed to build the frontend (Node.js 18+)" >&2; exit 2; }
  if [ ! -f frontend/node_modules/.package-lock.json ] \
      || [ frontend/package-lock.json -nt frontend/node_modules/.package-lock.json ]; then
    (cd frontend && npm ci --no-audit --no-fund --loglevel=error)
  fi
  local bundle=tb_plugin/static/index.js
  if [ ! -f "$bundle" ] || [ -n "$(find frontend/src frontend/package.json frontend/package-lock.json \
      frontend/vite.config.ts frontend/tsconfig.json -newer "$bundle" -print -quit)" ]; then
    (cd frontend && npm run build --silent)
  fi
}
# install_project EXTRAS: pip install -e ".[EXTRAS]" unless this pyproject.toml
# is already installed with them.
install_project() {
  local stamp
  stamp=".venv/.installed-$(sha256sum < pyproject.toml | cut -c1-16)-$1"
  if [ ! -f "$stamp" ]; then
    .venv/bin/python -m pip install -q -e ".[$1]"
    touch "$stamp"
  fi
}
