#!/usr/bin/env bash
# .ci/docker-setup.sh - give this machine a working Docker engine, local stand-ins for the AWS SAM Python build
# images, and a Python 3.14 image for CI's unit tests.
#
# Needs root on Debian (bookworm). Only the Debian, PyPI and npm registries are reachable: no image registry, so
# `docker pull` always fails and the SAM build images are replaced by Debian root filesystems (mmdebstrap) tagged
# with the real names:
#   public.ecr.aws/sam/build-python3.11:latest-x86_64   Debian bookworm, Python 3.11, g++ and headers
#   public.ecr.aws/sam/build-python3.13:latest-x86_64   Debian trixie,   Python 3.13, g++ and headers
#   public.ecr.aws/sam/build-python3.11:latest-arm64    Debian bookworm arm64, Python 3.11, run by qemu-user-static
#       through binfmt_misc; its metadata says linux/arm64/v8, so `docker run --platform linux/arm64` works.
#   cdk-pip-layer-ci/python:3.14                        Debian forky, Python 3.14 (.ci/run's unit tests on 3.14)
# Each SAM stand-in has python3 (also python, /var/lang/bin/python3 like the real image), `python3 -m pip` / pip
# with Debian's EXTERNALLY-MANAGED marker removed so that `pip install --target` works, WORKDIR /var/task and
# CMD ["/bin/bash"].
#
# The x86_64 root filesystems are made by `mmdebstrap --variant=minbase` (faster than debootstrap). The arm64 one is
# NOT installed under emulation (dpkg and every maintainer script under qemu took 3 to 5 minutes, and longer on a
# busy machine): its packages are only extracted, natively (`--variant=extract`, seconds), then what their
# maintainer scripts would have done and the image needs is done here: /etc/passwd and /etc/group, the CA bundle,
# and, under qemu in one process each, ldconfig and the byte-code of Python's standard library and pip (without it
# every pip run in the container compiles them again, ~5 s under qemu). About 40 s in all. The root filesystems are
# made in parallel. If any of them cannot be made, or an image does not run, this script fails: it never skips
# one (CDK_PIP_LAYER_CI_ARM64=0 leaves the arm64 stand-in out on purpose, for machines without binfmt_misc).
#
# The host CA bundle is deliberately NOT baked in: behind the TLS-inspecting proxy, pip inside a container only
# verifies PyPI when the caller forwards the host bundle (e.g. -v /etc/ssl/certs/ca-certificates.crt:/certs/ca.crt:ro
# -e PIP_CERT=/certs/ca.crt). Without it pip fails with CERTIFICATE_VERIFY_FAILED.
#
# Networking: containers reach PyPI both on the default bridge network and with --network host; the script checks
# this whenever it starts dockerd or builds an image, fails if neither works and warns if only --network host does.
#
# Idempotent: a running daemon and existing images are left alone (second run takes about a second). Root
# filesystems are cached as tarballs in $CDK_PIP_LAYER_CACHE (default /var/cache/cdk-pip-layer-ci), so re-creating
# an image after `docker system prune -a` only re-imports (~10 s).
#
# Environment knobs:
#   CDK_PIP_LAYER_CACHE      cache dir for rootfs tarballs (default above)
#   CDK_PIP_LAYER_CI_ARM64   1 (default) build the arm64 stand-in, 0 leave it out
#   CDK_PIP_LAYER_CI_ROOTFS_TIMEOUT  seconds allowed to make one root filesystem before failing (900)
#   DEBIAN_MIRROR            mirror for mmdebstrap (default: apt's own Debian mirror)
#   DOCKERD_FLAGS            extra dockerd flags; when set, only these are tried
#   DOCKERD_LOG              dockerd log file (default /tmp/dockerd.log)
#   DOCKERD_TIMEOUT          seconds to wait per dockerd attempt (default 60)
set -euo pipefail

CACHE_DIR=${CDK_PIP_LAYER_CACHE:-/var/cache/cdk-pip-layer-ci}
BUILD_ARM64=${CDK_PIP_LAYER_CI_ARM64:-1}
DOCKERD_LOG=${DOCKERD_LOG:-/tmp/dockerd.log}
DOCKERD_TIMEOUT=${DOCKERD_TIMEOUT:-60}
ROOTFS_TIMEOUT=${CDK_PIP_LAYER_CI_ROOTFS_TIMEOUT:-900}
# Bump when the recipe below changes. Each image's key (its label, its tarball's name) is this version and a digest
# of its line in IMAGES: cached tarballs and images of another key are remade.
ROOTFS_VERSION=3
# The SAM build images carry a C/C++ toolchain and Python headers (for sdists with native code); so do ours,
# on x86_64. The arm64 stand-in (under qemu) stays minimal: no test compiles there.
BASE_PACKAGES=python3,python3-pip,python3-venv
NATIVE_PACKAGES=$BASE_PACKAGES,g++,python3-dev
IMAGE_PATH_ENV=/var/lang/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

T0=$SECONDS
STEP_T=$SECONDS
log() { printf '[docker-setup %3ds] %s\n' "$((SECONDS - T0))" "$*"; }
warn() { printf '[docker-setup %3ds] WARNING: %s\n' "$((SECONDS - T0))" "$*" >&2; }
die() { printf '[docker-setup %3ds] ERROR: %s\n' "$((SECONDS - T0))" "$*" >&2; exit 1; }
step_done() { log "$1 done in $((SECONDS - STEP_T))s"; STEP_T=$SECONDS; }

[ "$(id -u)" = 0 ] || die "must run as root"
export DEBIAN_FRONTEND=noninteractive

# ---------------------------------------------------------------- packages --
need_pkgs=()
{ command -v dockerd && command -v docker; } >/dev/null 2>&1 || need_pkgs+=(docker.io)
command -v mmdebstrap >/dev/null 2>&1 || need_pkgs+=(mmdebstrap)
command -v flock >/dev/null 2>&1 || need_pkgs+=(util-linux)
if [ "$BUILD_ARM64" = 1 ]; then
  command -v arch-test >/dev/null 2>&1 || need_pkgs+=(arch-test) # mmdebstrap wants it for a foreign architecture
  [ -e /usr/bin/qemu-aarch64-static ] || need_pkgs+=(qemu-user-static)
  command -v update-binfmts >/dev/null 2>&1 || need_pkgs+=(binfmt-support)
fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "apt-get install ${need_pkgs[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
  step_done "apt-get install"
fi

mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/.lock"
flock 9   # serialise concurrent runs

# ------------------------------------------------------------------ daemon --
daemon_up() { timeout 20 docker info >/dev/null 2>&1; }

proc_alive() { # pid comm: a live (not zombie) process with that name?
  grep -qs "^$2\$" "/proc/$1/comm" && ! grep -qs '^[^)]*) Z' "/proc/$1/stat"
}

clear_stale_pidfile() { # file comm
  # A stale pid file (machine restored without its processes, or a killed
  # daemon not yet reaped) makes dockerd refuse to start or wait in vain.
  local old
  [ -s "$1" ] || return 0
  old=$(cat "$1")
  for _ in $(seq 15); do proc_alive "$old" "$2" || break; sleep 1; done
  if proc_alive "$old" "$2"; then
    die "$2 (pid $old) runs but 'docker info' gets no answer; see $DOCKERD_LOG"
  fi
  rm -f "$1"
}

start_dockerd() { # $@: flags; returns 0 once `docker info` answers
  local pid
  clear_stale_pidfile /var/run/docker.pid dockerd
  clear_stale_pidfile /var/run/docker/containerd/containerd.pid containerd
  log "starting dockerd${*:+ $*} (log: $DOCKERD_LOG)"
  # setsid + all fds redirected (and the lock fd closed) so that dockerd
  # outlives this script without holding its pipes or the lock.
  setsid dockerd "$@" </dev/null >>"$DOCKERD_LOG" 2>&1 9>&- &
  pid=$!
  local deadline=$((SECONDS + DOCKERD_TIMEOUT))
  while [ $SECONDS -lt $deadline ]; do
    if daemon_up; then DOCKERD_STARTED_FLAGS="$*"; return 0; fi
    kill -0 "$pid" 2>/dev/null || { warn "dockerd $* exited; tail of log:"; tail -n 5 "$DOCKERD_LOG" >&2; return 1; }
    sleep 1
  done
  warn "dockerd $* did not answer within ${DOCKERD_TIMEOUT}s; stopping it"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  kill -9 "$pid" 2>/dev/null || true
  return 1
}

DAEMON_STARTED=0
DOCKERD_STARTED_FLAGS=
if daemon_up; then
  log "docker daemon already running ($(docker info -f '{{.Driver}}' 2>/dev/null) storage driver)"
else
  if [ -n "${DOCKERD_FLAGS:-}" ]; then
    read -r -a f <<<"$DOCKERD_FLAGS"
    start_dockerd "${f[@]}" || die "dockerd $DOCKERD_FLAGS failed, see $DOCKERD_LOG"
  else
    # Default (overlay2 + iptables NAT bridge) works on the CI VM; the others
    # are fallbacks for nested containers without overlayfs / iptables.
    # The default is tried twice: a leftover of a killed daemon can make the
    # first start fail, and vfs is much slower than overlay2.
    start_dockerd || start_dockerd ||
      start_dockerd --storage-driver=vfs ||
      start_dockerd --storage-driver=vfs --iptables=false --ip6tables=false ||
      die "could not start dockerd with any flag set, see $DOCKERD_LOG"
  fi
  DAEMON_STARTED=1
  step_done "dockerd (storage driver $(docker info -f '{{.Driver}}'), flags: ${DOCKERD_STARTED_FLAGS:-none})"
fi

# ------------------------------------------------------------------ rootfs --
detect_mirror() {
  if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
  local url
  url=$({
    grep -hsE '^[[:space:]]*URIs:' /etc/apt/sources.list.d/*.sources | awk '{for (i = 2; i <= NF; i++) print $i}'
    grep -hsE '^[[:space:]]*deb[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
      sed -E 's/\[[^]]*\]//' | awk '{print $2}'
  } | grep -E '/debian/?$' | head -n 1 || true)
  echo "${url:-http://deb.debian.org/debian}"
}

# Use apt's proxy (if it has one) for mmdebstrap's downloads too.
APT_HTTP_PROXY='' APT_HTTPS_PROXY=''
eval "$(apt-config shell APT_HTTP_PROXY Acquire::http::Proxy APT_HTTPS_PROXY Acquire::https::Proxy)"
[ -n "$APT_HTTP_PROXY" ] && [ -z "${http_proxy:-}" ] && export http_proxy=$APT_HTTP_PROXY
[ -n "$APT_HTTPS_PROXY" ] && [ -z "${https_proxy:-}" ] && export https_proxy=$APT_HTTPS_PROXY

cleanup_dir() { # remove a (possibly half-built) rootfs dir, never crossing mounts
  local dir=$1 m
  [ -e "$dir" ] || return 0
  # An interrupted mmdebstrap can leave /proc, /sys, ... mounted inside.
  awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
    umount -l "$m" || true
  done
  rm -rf --one-file-system "$dir"
}


tidy_rootfs() { # what an image does not need, and what docker provides
  local dir=$1
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  mkdir -p "$dir/var/lib/apt/lists/partial"
  : >"$dir/etc/resolv.conf"
}

customise_sam_rootfs() { # make the Debian rootfs behave like a SAM build image
  local dir=$1 py
  rm -f "$dir"/usr/lib/python3*/EXTERNALLY-MANAGED
  [ -e "$dir/usr/bin/python" ] || ln -s python3 "$dir/usr/bin/python"
  py=$(basename "$(readlink -f "$dir/usr/bin/python3")") # python3.11 / python3.13
  mkdir -p "$dir/var/lang/bin" "$dir/var/task"
  for exe in python3 python "$py" pip pip3; do
    [ -e "$dir/usr/bin/$exe" ] && ln -sfn "/usr/bin/$exe" "$dir/var/lang/bin/$exe"
  done
  if [ ! -x "$dir/usr/bin/python3" ] || [ ! -d "$dir/usr/lib/python3/dist-packages/pip" ]; then
    die "rootfs $dir lacks python3 or pip"
  fi
}

# An extracted root filesystem has its packages' files but none of what their maintainer scripts do. Done here, as
# far as the image needs it: natively where possible, under qemu (binfmt_misc) for the two steps that need the
# image's own programs.
finish_extracted_rootfs() {
  local dir=$1
  cp "$dir/usr/share/base-passwd/passwd.master" "$dir/etc/passwd"
  cp "$dir/usr/share/base-passwd/group.master" "$dir/etc/group"
  if [ -d "$dir/usr/share/ca-certificates" ]; then # update-ca-certificates' bundle
    mkdir -p "$dir/etc/ssl/certs"
    find "$dir/usr/share/ca-certificates" -name '*.crt' | LC_ALL=C sort | xargs -r cat >"$dir/etc/ssl/certs/ca-certificates.crt"
  fi
  chroot "$dir" /sbin/ldconfig
  # python3's own postinst byte-compiles the standard library, and python3-pip's its package.
  chroot "$dir" /usr/bin/python3 -c '
import compileall, sys, sysconfig
dirs = (sysconfig.get_path("stdlib"), "/usr/lib/python3/dist-packages")
sys.exit(not all([compileall.compile_dir(d, quiet=1, workers=0) for d in dirs]))' ||
    warn "byte-compiling Python in $dir failed for some files: pip runs in that image will be slower"
}

image_key() { printf 'v%s-%s' "$ROOTFS_VERSION" "$(printf '%s' "$*" | sha256sum | cut -c1-10)"; } # spec
rootfs_tar() { echo "$CACHE_DIR/rootfs-$1-$2-$3.tar"; }                                         # suite arch key

make_rootfs_tar() { # suite arch how kind packages key: how = minbase (installed) | extract (see above)
  local suite=$1 arch=$2 how=$3 kind=$4 packages=$5 key=$6 tar work mirror t=$SECONDS opts=()
  tar=$(rootfs_tar "$suite" "$arch" "$key")
  work="$CACHE_DIR/work/$suite-$arch"
  mirror=$(detect_mirror)
  cleanup_dir "$work"
  mkdir -p "$CACHE_DIR/work"
  # Debian testing's Release file has a Valid-Until a week ahead, which a mirror kept for a while outlives.
  [ "$suite" = forky ] && opts+=(--aptopt='Acquire::Check-Valid-Until "false"')
  case $how in
    minbase) opts+=(--variant=minbase "--include=$packages") ;;
    extract)
      # shellcheck disable=SC2016 # mmdebstrap's hook gets $1 (the root filesystem): merged /usr, as debootstrap makes
      opts+=(--variant=extract "--include=?essential" "--include=$packages"
        --setup-hook='for d in bin sbin lib; do mkdir -p "$1/usr/$d"; ln -s "usr/$d" "$1/$d"; done') ;;
    *) die "unknown rootfs kind $how" ;;
  esac
  log "mmdebstrap $suite/$arch ($how) from $mirror (log: $work.log)"
  if ! timeout "$ROOTFS_TIMEOUT" mmdebstrap --mode=root --arch="$arch" "${opts[@]}" "$suite" "$work" "$mirror" \
    >"$work.log" 2>&1; then
    tail -n 20 "$work.log" >&2
    cleanup_dir "$work"
    die "mmdebstrap $suite/$arch failed or took over ${ROOTFS_TIMEOUT}s (log: $work.log)"
  fi
  if [ "$how" = extract ]; then finish_extracted_rootfs "$work"; fi
  if [ "$kind" = sam ]; then customise_sam_rootfs "$work"; fi
  tidy_rootfs "$work"
  tar --numeric-owner -C "$work" -cf "$tar.tmp" .
  mv "$tar.tmp" "$tar"
  cleanup_dir "$work"
  log "cached $tar ($(du -h "$tar" | cut -f1), made in $((SECONDS - t))s)"
}

# ------------------------------------------------------------------ images --
CREATED_IMAGES=()
image_version() { docker image inspect -f '{{index .Config.Labels "cdk-pip-layer.rootfs"}}' "$1" 2>/dev/null; }

import_image() { # name tarball key  (native arch, via docker import)
  docker import \
    --change "ENV PATH=$IMAGE_PATH_ENV" \
    --change 'ENV LANG=C.UTF-8' \
    --change 'WORKDIR /var/task' \
    --change 'CMD ["/bin/bash"]' \
    --change "LABEL cdk-pip-layer.rootfs=$3" \
    --message "cdk-pip-layer CI stand-in" \
    "$2" "$1" >/dev/null
}

load_foreign_image() { # name tarball goarch variant key
  # dockerd 20.10 ignores `docker import --platform`, recording the host arch,
  # and `docker run --platform linux/arm64` then tries (and fails) to pull.
  # So write a docker-save archive with the right architecture and load it.
  local name=$1 tarball=$2 arch=$3 variant=$4 key=$5 tmp diff_id now
  tmp=$(mktemp -d "$CACHE_DIR/load.XXXXXX")
  diff_id=$(sha256sum "$tarball" | cut -d' ' -f1)
  now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  ln "$tarball" "$tmp/layer.tar" 2>/dev/null || ln -s "$tarball" "$tmp/layer.tar"
  cat >"$tmp/config.json" <<JSON
{"architecture":"$arch","variant":"$variant","os":"linux","created":"$now",
 "config":{"Env":["PATH=$IMAGE_PATH_ENV","LANG=C.UTF-8"],"Cmd":["/bin/bash"],"WorkingDir":"/var/task",
           "Labels":{"cdk-pip-layer.rootfs":"$key"}},
 "rootfs":{"type":"layers","diff_ids":["sha256:$diff_id"]},
 "history":[{"created":"$now","comment":"cdk-pip-layer CI stand-in"}]}
JSON
  printf '[{"Config":"config.json","RepoTags":["%s"],"Layers":["layer.tar"]}]\n' "$name" >"$tmp/manifest.json"
  tar -C "$tmp" -chf - manifest.json config.json layer.tar | docker load >/dev/null
  rm -rf "$tmp"
}

check_image() { # name arch kind: the image runs, with what the tests need; removed and fatal if not
  local name=$1 arch=$2 kind=$3 run=(docker run --rm) problem=
  [ "$arch" = amd64 ] || run+=(--platform "linux/$arch")
  if [ "$arch" = arm64 ] && [ "$("${run[@]}" "$name" uname -m 2>&1)" != aarch64 ]; then
    problem="it does not run as aarch64 under qemu"
  elif [ "$kind" = sam ] && ! "${run[@]}" "$name" python3 -c 'import ssl, zlib, ctypes, venv' >/dev/null; then
    problem="its python3 lacks a standard module"
  elif [ "$kind" = sam ] && ! "${run[@]}" "$name" python3 -m pip --version >/dev/null; then
    problem="python3 -m pip does not run"
  elif [ "$kind" = sam ] && [ "$arch" = amd64 ] &&
    ! "${run[@]}" "$name" sh -c 'command -v g++ && test -f /usr/include/python3*/Python.h' >/dev/null; then
    problem="it has no C++ compiler or no Python headers"
  elif [ "$kind" = python ] &&
    ! "${run[@]}" "$name" sh -c 'python3.14 -m venv /tmp/v && /tmp/v/bin/python -m pip --version' >/dev/null; then
    problem="python3.14 -m venv does not give a working pip"
  fi
  if [ -n "$problem" ]; then
    docker image rm "$name" >/dev/null 2>&1 || true
    die "$name: $problem"
  fi
}

enable_qemu_aarch64() {
  [ -d /proc/sys/fs/binfmt_misc ] || return 1
  [ -e /proc/sys/fs/binfmt_misc/register ] ||
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || return 1
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
  # The F (fix-binary) flag makes the interpreter usable inside containers and chroots.
  grep -qs '^flags:.*F' /proc/sys/fs/binfmt_misc/qemu-aarch64
}

# name suite arch how kind packages
IMAGES=(
  "public.ecr.aws/sam/build-python3.11:latest-x86_64 bookworm amd64 minbase sam $NATIVE_PACKAGES"
  "public.ecr.aws/sam/build-python3.13:latest-x86_64 trixie amd64 minbase sam $NATIVE_PACKAGES"
  "cdk-pip-layer-ci/python:3.14 forky amd64 minbase python python3.14,python3.14-venv,python3-pip"
)
ARM64_SPEC="public.ecr.aws/sam/build-python3.11:latest-arm64 bookworm arm64 extract sam $BASE_PACKAGES"
KNOWN_SPECS=("${IMAGES[@]}" "$ARM64_SPEC") # whose cached tarballs are kept
if [ "$BUILD_ARM64" = 1 ]; then
  enable_qemu_aarch64 ||
    die "cannot register qemu-aarch64 with binfmt_misc (F flag), so no arm64 stand-in can run here;" \
      "CDK_PIP_LAYER_CI_ARM64=0 leaves it out (the arm64 container tests then skip)"
  IMAGES+=("$ARM64_SPEC")
else
  log "arm64 stand-in left out (CDK_PIP_LAYER_CI_ARM64=$BUILD_ARM64)"
fi

# The root filesystems that are not cached yet, made in parallel (downloads overlap with dpkg's work).
TODO=() PIDS=()
trap '[ ${#PIDS[@]} -eq 0 ] || kill "${PIDS[@]}" 2>/dev/null || true' EXIT
for spec in "${IMAGES[@]}"; do
  read -r name suite arch how kind packages <<<"$spec"
  key=$(image_key "$spec")
  if [ "$(image_version "$name")" = "$key" ]; then log "image $name exists"; continue; fi
  TODO+=("$spec")
  [ -s "$(rootfs_tar "$suite" "$arch" "$key")" ] && continue
  make_rootfs_tar "$suite" "$arch" "$how" "$kind" "$packages" "$key" &
  PIDS+=($!)
done
failed=0 started=${#PIDS[@]}
for pid in "${PIDS[@]}"; do wait "$pid" || failed=1; done
PIDS=()
[ "$failed" = 0 ] || die "a root filesystem could not be made (see above)"
[ "$started" = 0 ] || step_done "root filesystems"
# Tarballs of no current image (an older recipe or package list) only take space: ~500 MB each.
for tar in "$CACHE_DIR"/rootfs-*.tar; do
  [ -e "$tar" ] || continue
  current=0
  for spec in "${KNOWN_SPECS[@]}"; do
    read -r name suite arch how kind packages <<<"$spec"
    [ "$tar" = "$(rootfs_tar "$suite" "$arch" "$(image_key "$spec")")" ] && current=1
  done
  [ "$current" = 1 ] || { log "removing the stale $tar"; rm -f "$tar"; }
done

for spec in "${TODO[@]}"; do
  read -r name suite arch how kind packages <<<"$spec"
  key=$(image_key "$spec")
  log "importing $name"
  if [ "$arch" = amd64 ]; then
    import_image "$name" "$(rootfs_tar "$suite" "$arch" "$key")" "$key"
  else
    load_foreign_image "$name" "$(rootfs_tar "$suite" "$arch" "$key")" "$arch" v8 "$key"
  fi
  check_image "$name" "$arch" "$kind"
  CREATED_IMAGES+=("$name")
  step_done "image $name"
done

# -------------------------------------------------------------- networking --
if [ "$DAEMON_STARTED" = 1 ] || [ ${#CREATED_IMAGES[@]} -gt 0 ]; then
  probe='import socket; socket.create_connection(("pypi.org", 443), timeout=10).close()'
  img=public.ecr.aws/sam/build-python3.11:latest-x86_64
  bridge=no host=no
  docker run --rm "$img" python3 -c "$probe" >/dev/null 2>&1 && bridge=yes
  docker run --rm --network host "$img" python3 -c "$probe" >/dev/null 2>&1 && host=yes
  case $bridge/$host in
    yes/yes) log "network: containers reach pypi.org:443 on the default bridge and with --network host" ;;
    no/yes) warn "network: only --network host reaches pypi.org:443; the default bridge does not" ;;
    yes/no) warn "network: only the default bridge reaches pypi.org:443; --network host does not" ;;
    *) die "network: containers cannot reach pypi.org:443 (neither bridge nor host network)" ;;
  esac
  step_done "network check"
fi

log "ready in $((SECONDS - T0))s: $(docker images --format '{{.Repository}}:{{.Tag}}' | grep -E '^(public.ecr.aws/sam|cdk-pip-layer-ci)/' | sort | tr '\n' ' ')"
