#!/usr/bin/env bash
# Packs what benchmarks/cuda.sh needs on a GPU node besides the git working
# tree (which a device call copies: tracked and untracked-not-ignored files),
# as two files under tmp/ (git-ignored) to name in the call's `carry`:
#
#   tmp/node.xz                  this machine's Node executable, xz'd (the
#                                node has no Node.js; cuda.sh unpacks it)
#   tmp/device-bundle.tar.xz     dist/ (the compiled library the Node
#                                benchmarks load) and the node_modules
#                                packages they load, plus node-addon-api
#                                and node-api-headers (the addon's CMake
#                                build); cuda.sh unpacks it into the repo
#
# Which packages: those that `require('dist/lib/index.js')` loads (index
# pulls in every module eagerly: sharp, onnxruntime-node, vega, ... even
# where epoch.js and train-step.js never call them), found by loading it
# here without the addon, plus node-gyp-build (binding.js requires it before
# it looks at TABSIGHT_ADDON). Whole package folders go in, less type
# declarations, TypeScript sources, source maps, docs, other platforms'
# onnxruntime binaries, protobufjs's code generator (cli/) and vega's ES5
# build. A device call carries at most 64 MiB: this fails above 60 MiB.
#
# It does not compile dist/: run `npx tsc -p tsconfig.json` first when lib/
# changed (it warns when a lib/ source is newer than dist/lib/index.js).
#
#   bash benchmarks/support/pack-device.sh            # both files
#   NODE_XZ=keep bash benchmarks/support/pack-device.sh   # reuse tmp/node.xz
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
mkdir -p tmp
bundle=tmp/device-bundle.tar.xz
nodexz=tmp/node.xz
limit_mib=60

[ -f dist/lib/index.js ] || { echo "dist/lib/index.js is missing: run npx tsc -p tsconfig.json" >&2; exit 1; }
newer=$(find lib -name '*.ts' -newer dist/lib/index.js | head -3)
[ -z "$newer" ] || echo "warning: lib/ is newer than dist/ (e.g. $(echo $newer)); the bundle packs dist/ as it is" >&2

# The packages index.js loads, from require.cache (it does not load the addon).
mapfile -t pkgs < <(node -e '
  require(process.argv[1]);
  require("node-gyp-build");
  const out = new Set(["node-gyp-build", "node-addon-api", "node-api-headers"]);
  for (const f of Object.keys(require.cache)) {
    const m = f.match(/^(.*?\/node_modules\/((?:@[^/]+\/)?[^/]+))\//);
    if (m) out.add(require("node:path").relative(process.argv[2], m[1]).replace(/^node_modules\//, ""));
  }
  console.log([...out].sort().join("\n"));
' "$root/dist/lib/index.js" "$root")
for p in "${pkgs[@]}"; do [ -d "node_modules/$p" ] || { echo "node_modules/$p is missing" >&2; exit 1; }; done
echo "packages (${#pkgs[@]}): ${pkgs[*]}"

excludes=(
  --exclude='*.map' --exclude='*.ts' --exclude='*.cts' --exclude='*.mts' --exclude='*.md' --exclude='*.tsbuildinfo'
  --exclude='node_modules/onnxruntime-node/bin/napi-v*/darwin'
  --exclude='node_modules/onnxruntime-node/bin/napi-v*/win32'
  --exclude='node_modules/onnxruntime-node/bin/napi-v*/linux/arm64'
  --exclude='node_modules/protobufjs/cli'
  --exclude='node_modules/vega/build-es5'
)
# nice: this is meant to run beside builds on a small machine.
tar -c "${excludes[@]}" dist "${pkgs[@]/#/node_modules/}" | nice -n 19 xz -T2 -6 > "$bundle.part"
mv "$bundle.part" "$bundle"

if [ "${NODE_XZ:-}" = keep ] && [ -f "$nodexz" ]; then
  echo "kept $nodexz"
else
  node_bin=$(command -v node)
  nice -n 19 xz -T2 -6 -c "$node_bin" > "$nodexz.part" && mv "$nodexz.part" "$nodexz"
  echo "packed $node_bin ($(node --version))"
fi

size() { stat -c %s "$1"; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
total=$(( $(size "$bundle") + $(size "$nodexz") ))
tree=$(git ls-files -z | xargs -0 cat | wc -c)
echo "carry:"
printf '  %-28s %s\n' "$bundle" "$(mib "$(size "$bundle")")" "$nodexz" "$(mib "$(size "$nodexz")")"
printf '  %-28s %s (limit %d MiB; the tracked working tree adds %s)\n' total "$(mib "$total")" "$limit_mib" "$(mib "$tree")"
echo "carry JSON: [\"$bundle\", \"$nodexz\"]"
[ "$total" -le $((limit_mib * 1048576)) ] || { echo "over $limit_mib MiB" >&2; exit 1; }
