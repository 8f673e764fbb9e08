#!/usr/bin/env bash
# Installs the independent peers that the interop tests run against, on a
# clean Debian machine (root, or sudo):
#   - Debian packages: python3-autobahn (run with /usr/bin/python3) and
#     chromium (/usr/bin/chromium); node and npm if they are missing;
#   - npm packages in node/ (npm ci, pinned by package-lock.json): ws 8,
#     ws 7 (alias ws7), playwright-core (it never downloads a browser).
# Called by .ci/run before `go test ./...` in this module. Idempotent: apt is
# skipped when everything is already installed. See README.md.
set -euo pipefail
cd "$(dirname "$0")"

export DEBIAN_FRONTEND=noninteractive
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

sudo_() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

pkgs=(python3 python3-autobahn chromium)
command -v node >/dev/null || pkgs+=(nodejs)
command -v npm >/dev/null || pkgs+=(npm)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "interop/setup.sh: apt-get install ${missing[*]}"
  sudo_ apt-get update -qq
  sudo_ apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

/usr/bin/python3 -c 'import autobahn, autobahn.asyncio.websocket; print("python3-autobahn", autobahn.__version__)'
/usr/bin/chromium --version 2>/dev/null | grep -i chromium
echo "node $(node --version), npm $(npm --version)"
(cd node && npm ci --no-audit --no-fund --loglevel=error)
