#!/usr/bin/env bash
# Installs the independent peers that the interop tests run against.
# Called by .ci/run before `go test ./...` in this module; safe to re-run.
set -euo pipefail
cd "$(dirname "$0")"
command -v node >/dev/null || { echo "interop/setup.sh: node is required (v18+)" >&2; exit 1; }
command -v npm >/dev/null || { echo "interop/setup.sh: npm is required" >&2; exit 1; }
node --version
(cd node && npm ci --no-audit --no-fund --loglevel=error)
