#!/usr/bin/env bash
# Smoke test of a built Perch image, run the way a container engine would run it:
#
#   packaging/smoke-arm64.sh [arm64|amd64]       (default arm64; run as root)
#
# 1. Unpacks build/images/perch-linux-<arch>.oci.tar with skopeo + umoci (independently of the
#    builder) and reads the image's own runtime config: entrypoint, env, user, working dir.
# 2. Runs that entrypoint with that env as that user (uid 1000) in a chroot of the unpacked
#    rootfs, under qemu-aarch64-static when the image is arm64 and the host is not, with /proc,
#    /sys (synthetic under emulation, see below) and the usual /dev nodes mounted (a trap
#    unmounts them even on failure).
# 3. packaging/smoke-client.mjs waits for GET /v2/health/ready = 200 (deadline, no fixed sleeps;
#    on the control listener's port too when the image turns it on, as its HEALTHCHECK asks there),
#    runs one inference on pp-ocr-cls (shape [1,2], probabilities summing to 1) and emits one
#    event over ws://.../v1/ws (the ack must carry a seq), with the API token the runtime
#    generated into /data/api-token (the image binds 0.0.0.0), and checks on /metrics that the
#    image's Perch loaded its malloc-trim addon (perch_memory_trim_available 1).
# 4. Sends SIGTERM and expects exit code 0.
# Prints the archive size, the unpacked size and the start-up time to ready, and writes them to
# build/images/perch-linux-<arch>.smoke.txt. Exits non-zero on any failure.
# Environment: SMOKE_ARCHIVE (another archive), SMOKE_READY_DEADLINE_S (default 300),
# SMOKE_STOP_DEADLINE_S (default 60), PERCH_BUILD_DIR.
set -euo pipefail

arch=${1:-arm64}
case "$arch" in
  arm64) qemu_name=qemu-aarch64-static host_machine=aarch64 ;;
  amd64) qemu_name=qemu-x86_64-static host_machine=x86_64 ;;
  *) echo "usage: $0 [arm64|amd64]" >&2; exit 2 ;;
esac
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${PERCH_BUILD_DIR:-$repo/build}
archive=${SMOKE_ARCHIVE:-$build/images/perch-linux-$arch.oci.tar}
ready_deadline_s=${SMOKE_READY_DEADLINE_S:-300}
stop_deadline_s=${SMOKE_STOP_DEADLINE_S:-60}

say() { printf '[smoke %s] %s\n' "$arch" "$*" >&2; }
die() { printf '[smoke %s] FAIL: %s\n' "$arch" "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (chroot, mounts)"
[ -f "$archive" ] || die "no image at $archive (run packaging/build-image.sh $arch first)"
for tool in skopeo umoci node python3 mountpoint; do
  command -v "$tool" >/dev/null || die "$tool is missing (packaging/ci-arm64.sh installs what is needed)"
done

mkdir -p "$build/work"
tmp=$(mktemp -d "$build/work/smoke-$arch.XXXXXX")
rootfs=$tmp/bundle/rootfs
pid=
mounts=()

cleanup() {
  local rc=$?
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  local i
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
    mountpoint -q "${mounts[i]}" && { umount "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}" || true; }
  done
  if [ "$rc" != 0 ] && [ -f "$tmp/perch.log" ]; then
    say "last lines of the runtime's output:"
    tail -n 30 "$tmp/perch.log" >&2 || true
  fi
  # Never rm -rf through a mount that failed to go away.
  if ! grep -q " $tmp/" /proc/self/mounts; then rm -rf "$tmp"; else say "left $tmp (still mounted)"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- 1. Unpack the image as a container engine would -------------------------------------------
say "unpacking $(basename "$archive") with skopeo + umoci"
skopeo copy --quiet "oci-archive:$archive" "oci:$tmp/layout:perch"
umoci unpack --image "$tmp/layout:perch" "$tmp/bundle" >/dev/null
image_arch=$(skopeo inspect --config "oci:$tmp/layout:perch" | node -e \
  'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).architecture))')
[ "$image_arch" = "$arch" ] || die "image architecture is '$image_arch', expected '$arch'"
archive_bytes=$(stat -c %s "$archive")
unpacked_bytes=$(du -sb "$rootfs" | cut -f1)

# The runtime config umoci derived from the image config: entrypoint+cmd, env, uid/gid, cwd.
# Arrays come out NUL-separated so no value is ever word-split.
read_spec() { node -e '
  const spec = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const p = spec.process, what = process.argv[2];
  const out = what === "args" ? p.args : what === "env" ? p.env : [String(p[what] ?? (p.user ?? {})[what])];
  process.stdout.write(out.map((s) => s + "\0").join(""));' "$tmp/bundle/config.json" "$1"; }
mapfile -d '' args < <(read_spec args)
mapfile -d '' image_env < <(read_spec env)
uid=$(read_spec uid | tr -d '\0') gid=$(read_spec gid | tr -d '\0') cwd=$(read_spec cwd | tr -d '\0')
[ "${#args[@]}" -gt 0 ] || die "the image has no entrypoint"
[ "$uid" != 0 ] || die "the image runs as root"
say "entrypoint: ${args[*]} (uid $uid, gid $gid, cwd $cwd)"

# --- 2. Run it: chroot + its user + its env, under qemu when the host cannot run it -------------
prefix=()
if [ "$(uname -m)" != "$host_machine" ]; then
  qemu=$(command -v "$qemu_name") || die "$qemu_name is missing (apt-get install qemu-user-static)"
  install -m 0755 "$qemu" "$rootfs/$qemu_name"
  prefix=("/$qemu_name")
fi
mkdir -p "$rootfs/proc" "$rootfs/sys" "$rootfs/dev"
mount -t proc proc "$rootfs/proc" && mounts+=("$rootfs/proc")
if [ ${#prefix[@]} -gt 0 ]; then
  # Under user-mode emulation the host's (x86) sysfs crashes onnxruntime's arm64 cpuinfo (NULL
  # dereference after it reads the x86 cache topology); without any /sys it only complains. A
  # tiny synthetic sysfs with the CPU lists an arm64 kernel gives keeps it quiet and correct.
  mount -t tmpfs -o size=64k,mode=0755 sysfs "$rootfs/sys" && mounts+=("$rootfs/sys")
  mkdir -p "$rootfs/sys/devices/system/cpu"
  for f in possible present online; do echo "0-$(($(nproc) - 1))" >"$rootfs/sys/devices/system/cpu/$f"; done
else
  mount -t sysfs sysfs "$rootfs/sys" && mounts+=("$rootfs/sys")
fi
for dev in null zero random urandom; do
  touch "$rootfs/dev/$dev"
  mount --bind "/dev/$dev" "$rootfs/dev/$dev" && mounts+=("$rootfs/dev/$dev")
done

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
control_port=$(free_port)
[ "$control_port" != "$port" ] || control_port=$(free_port)
# The image's env as it is, plus documented overrides: free ports, so the test never collides
# with anything listening on 8080 or 8081. The control port is overridden only when the image
# turns the listener on (PERCH_CONTROL_PORT in its env); the client then checks it says ready.
run_env=("${image_env[@]}" "PERCH_PORT=$port")
control_args=()
if printf '%s\n' "${image_env[@]}" | grep -q '^PERCH_CONTROL_PORT='; then
  run_env+=("PERCH_CONTROL_PORT=$control_port")
  control_args=(--control-port "$control_port")
fi
# chroot, then cd to the image's working dir, drop to its uid/gid, exec its entrypoint.
launcher='import os, sys
root, cwd, uid, gid = sys.argv[1:5]
os.chroot(root); os.chdir(cwd)
os.setgroups([]); os.setgid(int(gid)); os.setuid(int(uid))
os.execv(sys.argv[5], sys.argv[5:])'

say "starting under $([ ${#prefix[@]} -gt 0 ] && echo "$qemu_name" || echo 'native execution') on port $port"
started_ms=$(date +%s%3N)
env -i "${run_env[@]}" /usr/bin/python3 -c "$launcher" "$rootfs" "$cwd" "$uid" "$gid" \
  "${prefix[@]}" "${args[@]}" >"$tmp/perch.log" 2>&1 &
pid=$!

# --- 3. Ready, infer, emit -----------------------------------------------------------------------
client_rc=0
# The image binds 0.0.0.0 without a configured token: Perch generates one into /data/api-token
# (docs/security.md), which the client reads from the unpacked rootfs.
client_out=$(node "$repo/packaging/smoke-client.mjs" --port "$port" "${control_args[@]}" --pid "$pid" \
  --started-ms "$started_ms" --deadline-s "$ready_deadline_s" --token-file "$rootfs/data/api-token") || client_rc=$?
ready_ms=$(sed -n 's/^ready_ms=//p' <<<"$client_out")
if [ -z "$ready_ms" ]; then
  if ! kill -0 "$pid" 2>/dev/null || grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; then
    rc=0; wait "$pid" || rc=$?; pid=
    die "the runtime exited with code $rc before it was ready"
  fi
  die "the runtime never became ready"
fi
emit_seq=$(sed -n 's/^emit_seq=//p' <<<"$client_out")
proc_uid=$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status")
[ "$proc_uid" = "$uid" ] || die "the runtime runs as uid $proc_uid, not $uid"
rss_kb=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")
grep -q '"level":' "$tmp/perch.log" || die "no pino JSON log lines on stdout"

# --- 4. SIGTERM -> exit 0 ------------------------------------------------------------------------
say "SIGTERM"
kill -TERM "$pid"
stop_deadline=$((SECONDS + stop_deadline_s))
while kill -0 "$pid" 2>/dev/null && ! { [ -e "/proc/$pid" ] && grep -q '^State:.*Z' "/proc/$pid/status"; }; do
  [ "$SECONDS" -lt "$stop_deadline" ] || die "still running ${stop_deadline_s} s after SIGTERM"
  sleep 0.2
done
rc=0
wait "$pid" || rc=$?
pid=
[ "$rc" = 0 ] || die "exit code $rc after SIGTERM, expected 0"
[ "$client_rc" = 0 ] || die "inference or emit checks failed (see above); SIGTERM -> exit 0 passed"
data_files=$(cd "$rootfs/data" && find . -mindepth 1 -printf '%P(uid %U) ' 2>/dev/null)

summary=$(cat <<EOF
image: $(basename "$archive") (linux/$arch)
archive size: $archive_bytes bytes ($(awk -v b="$archive_bytes" 'BEGIN { printf "%.1f", b / 1e6 }') MB)
unpacked size: $unpacked_bytes bytes ($(awk -v b="$unpacked_bytes" 'BEGIN { printf "%.1f", b / 1e6 }') MB)
start-up to ready: $ready_ms ms ($([ ${#prefix[@]} -gt 0 ] && echo "emulated, $qemu_name" || echo native), $(nproc) cores)
peak RSS: ${rss_kb:-?} kB$([ ${#prefix[@]} -gt 0 ] && echo ' (includes qemu)')
emit ack seq: $emit_seq
data volume after stop: ${data_files:-empty}
EOF
)
printf '%s\n' "$summary" >"$build/images/perch-linux-$arch.smoke.txt"
say "PASS"
printf '%s\n' "$summary"
