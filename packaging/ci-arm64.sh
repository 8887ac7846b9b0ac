#!/usr/bin/env bash
# CI step (called by .ci/run): prove on every change that Perch builds and runs on arm64.
#   1. installs what a fresh Debian bookworm machine lacks (apt-get, idempotent, non-interactive),
#   2. builds build/images/perch-linux-arm64.oci.tar with packaging/build-image.sh (no Docker),
#   3. runs packaging/smoke-arm64.sh: the image's own entrypoint, as uid 1000, under qemu:
#      ready, one inference, one emitted event, SIGTERM -> exit 0.
# Exits non-zero on any failure. Needs root and `npm ci` already run in the repository (it runs
# it itself when node_modules is missing). About 2-3 minutes on 2 cores from a fresh machine,
# about 30 s when build/cache/ is warm.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
started=$SECONDS

[ "$(id -u)" = 0 ] || { echo "ci-arm64.sh: needs root (apt-get, chroot, mounts)" >&2; exit 1; }

# qemu-user-static: runs arm64 code; buildah/skopeo/umoci: build, copy, unpack images without an
# engine; g++-aarch64-linux-gnu (+ binutils): cross-compile better-sqlite3, strip arm64 binaries;
# python3/make/g++: node-gyp; debian-archive-keyring: verify the arm64 C runtime packages.
packages=(qemu-user-static buildah skopeo umoci g++-aarch64-linux-gnu binutils-aarch64-linux-gnu
  python3 make g++ debian-archive-keyring ca-certificates)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "ci-arm64.sh: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # An unreachable third-party source makes `apt-get update` exit non-zero although Debian's own
  # lists arrived; the install below fails clearly if something it needs is really missing.
  apt-get update -qq || echo "ci-arm64.sh: apt-get update reported errors; trying the install anyway" >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x node_modules/.bin/tsc ]; then
  echo "ci-arm64.sh: node_modules missing, running npm ci" >&2
  npm ci --no-audit --no-fund
fi

bash packaging/build-image.sh arm64
bash packaging/smoke-arm64.sh arm64
echo "ci-arm64.sh: arm64 image built and smoke-tested in $((SECONDS - started)) s" >&2
