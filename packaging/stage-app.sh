#!/bin/sh
# Assembles the image's /app from a build tree, for one target architecture:
#   packaging/stage-app.sh SRC DEST ARCH      (ARCH: arm64 | amd64)
# SRC holds package.json, dist/ (compiled), models/ and production node_modules/ built for ARCH.
# The file list is packaging/app-files.txt. Both packaging/build-image.sh and Dockerfile.arm64
# run this script, so the two images hold the same files. POSIX sh: the Dockerfile runs it in
# the node image, build-image.sh on the host.
set -eu

src=${1:?usage: stage-app.sh SRC DEST ARCH}
dest=${2:?usage: stage-app.sh SRC DEST ARCH}
arch=${3:?usage: stage-app.sh SRC DEST ARCH}
here=$(cd "$(dirname "$0")" && pwd)

case "$arch" in
  arm64) ort_arch=arm64 ;;
  amd64 | x64) ort_arch=x64 ;;
  *) echo "stage-app.sh: unknown arch '$arch' (arm64 | amd64)" >&2; exit 2 ;;
esac

rm -rf "$dest"
mkdir -p "$dest"

# 1. Copy the listed paths (a trailing "/." follows a symlinked top folder, keeps inner links).
grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$here/app-files.txt" | while read -r entry; do
  optional=false
  case "$entry" in *'?') optional=true; entry=${entry%?} ;; esac
  if [ ! -e "$src/$entry" ]; then
    if $optional; then continue; fi
    echo "stage-app.sh: $src/$entry is missing" >&2
    exit 1
  fi
  mkdir -p "$dest/$(dirname "$entry")"
  if [ -d "$src/$entry" ]; then
    mkdir -p "$dest/$entry"
    cp -a "$src/$entry/." "$dest/$entry/"
  else
    cp -L "$src/$entry" "$dest/$entry"
    chmod 0644 "$dest/$entry"
  fi
done

# 2. Prune production node_modules to what runs on ARCH.
nm="$dest/node_modules"
[ -d "$nm" ] || { echo "stage-app.sh: no node_modules in $src" >&2; exit 1; }

# onnxruntime-node ships every platform's binaries (about 290 MB): keep linux/<arch> only.
ort="$nm/onnxruntime-node/bin/napi-v6"
[ -d "$ort/linux/$ort_arch" ] || { echo "stage-app.sh: no onnxruntime binaries for linux/$ort_arch" >&2; exit 1; }
for d in "$ort"/*; do
  [ "$(basename "$d")" = linux ] || rm -rf "$d"
done
for d in "$ort"/linux/*; do
  [ "$(basename "$d")" = "$ort_arch" ] || rm -rf "$d"
done

# better-sqlite3: keep build/Release/better_sqlite3.node, drop the compile inputs and leftovers
# (the bundled SQLite amalgamation alone is about 9 MB).
bs="$nm/better-sqlite3"
[ -f "$bs/build/Release/better_sqlite3.node" ] || { echo "stage-app.sh: better-sqlite3 is not built" >&2; exit 1; }
rm -rf "$bs/deps" "$bs/src" "$bs/build/deps" "$bs/build/Release/obj" "$bs/build/Release/obj.target" \
  "$bs/build/Release/.deps" "$bs/build/Release/test_extension.node" "$bs/build/Release/"*.a \
  "$bs/build/Makefile" "$bs/build/"*.mk \
  "$bs/build/config.gypi" "$bs/build/node_gyp_bins"

# Prebuilt binaries for other platforms and browser bundles Node never loads (issue 17 put the
# arm64 archive over 80 MB; these are about 0.9 MB of it, gzip-compressed):
# - bufferutil's prebuilds: keep linux-<arch> only (arm64 has none: build-image.sh compiles it
#   into build/Release, which node-gyp-build finds first);
# - mqtt's dist/ (browser bundles: Node loads build/, its package.json "main");
# - protobufjs's dist/ (browser bundles: @grpc/proto-loader requires "protobufjs", i.e. src/);
# - sharp's src/ (its C++ sources: the addon comes prebuilt in @img/sharp-linux-<arch>);
if [ -d "$nm/bufferutil/prebuilds" ]; then
  for d in "$nm/bufferutil/prebuilds"/*; do
    [ "$(basename "$d")" = "linux-$ort_arch" ] || rm -rf "$d"
  done
fi
rm -rf "$nm/mqtt/dist" "$nm/protobufjs/dist" "$nm/sharp/src"
# - OpenTelemetry's ES module builds (build/esm, build/esnext): Node resolves these packages to
#   build/src (their "main", or the "default" condition of their "exports"; "module" and
#   "esnext" are bundler conditions Node does not read). 0.3 MB of the archive (80.05 -> 79.76 MB).
rm -rf "$nm"/@opentelemetry/*/build/esm "$nm"/@opentelemetry/*/build/esnext

# Install-time-only tools and files nothing loads at run time: TypeScript sources and declarations, source maps,
# docs, test suites, zod's TypeScript sources (it ships compiled JS beside them). Licenses stay.
rm -rf "$nm/.bin" "$nm/.package-lock.json" "$nm/zod/src"
find "$nm" -mindepth 2 -type d \( -name test -o -name tests -o -name __tests__ -o -name example \
  -o -name examples -o -name benchmark -o -name benchmarks \) -prune -exec rm -rf {} +
find "$nm" \( -name '*.ts' -o -name '*.mts' -o -name '*.cts' -o -name '*.map' -o -name '*.ts.map' \
  -o -iname 'README*' -o -iname 'CHANGELOG*' -o -iname 'HISTORY.md' -o -name '*.markdown' \
  -o -name '.npmignore' -o -name '.eslintrc*' -o -name '.prettierrc*' -o -name '.editorconfig' \
  -o -name '.travis.yml' -o -name '.github' -o -name 'tsconfig.json' \) -prune -exec rm -rf {} +

# Stable, non-writable permissions: the app belongs to root, the process runs as uid 1000.
chmod -R u+rwX,go+rX,go-w "$dest"
