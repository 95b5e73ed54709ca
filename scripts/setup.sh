#!/usr/bin/env bash
# Installs everything tabsight needs on a Debian 12 machine, then builds.
# Idempotent: a second run checks and returns in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_pkgs=(
  cmake g++ make                    # the native build
  libtorch-dev                      # LibTorch 1.13 (CPU)
  libopenblas0-pthread              # without it LibTorch falls back to reference BLAS
  libdnnl-dev                       # oneDNN 2.6 headers: the Winograd convolutions (cmake/OneDnn.cmake)
  libgloo-dev                       # Gloo headers for c10d data-parallel training (docs/distributed.md)
  python3-torch python3-torchvision # test oracles only, never runtime dependencies
  python3-sklearn python3-onnx python3-numpy
  python3-nibabel python3-pydicom   # reader oracles (tests)
)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: apt-get install ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# onnxruntime-node's postinstall would fetch CUDA files from the network; its
# CPU binary ships in the package.
export ONNXRUNTIME_NODE_INSTALL=skip
stamp=node_modules/.tabsight-lock-stamp
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  echo "setup: npm ci"
  # --ignore-scripts: our own install script would build before the lock is in
  # place; we build below. sharp's binaries come as optional npm packages.
  npm ci --ignore-scripts --no-audit --no-fund
  cp package-lock.json "$stamp"
fi

# better-sqlite3 (study results) compiles SQLite from source when its
# prebuilt binary cannot be downloaded, as on these machines.
if [ ! -f node_modules/better-sqlite3/build/Release/better_sqlite3.node ]; then
  echo "setup: building better-sqlite3"
  npm rebuild better-sqlite3 --foreground-scripts >/dev/null
fi

# The native addon: cmake-js rebuilds only what changed.
if [ ! -f build/Release/tabsight.node ] || [ -n "$(find native CMakeLists.txt cmake -newer build/Release/tabsight.node -print -quit)" ]; then
  echo "setup: building the native addon (cmake-js)"
  npx cmake-js compile --log-level warn ${TORCH_DIR:+--CDTORCH_DIR="$TORCH_DIR"}
fi

# TypeScript → dist/ (the CLI and the published package run from there).
if [ ! -f dist/lib/index.js ] || [ -n "$(find lib -newer dist/lib/index.js -print -quit)" ]; then
  echo "setup: compiling TypeScript"
  npx tsc -p tsconfig.json
fi
echo "setup: ready"
