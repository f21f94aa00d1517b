#!/usr/bin/env bash
# .ci/docker-setup.sh - give this machine a working Docker engine and local
# stand-ins for the AWS SAM Python build images.
#
# Needs root on Debian (bookworm). Only the Debian, PyPI and npm registries are
# reachable: no image registry, so `docker pull` always fails and the SAM build
# images are replaced by Debian root filesystems (debootstrap) tagged with the
# real names:
#   public.ecr.aws/sam/build-python3.11:latest-x86_64   Debian bookworm, Python 3.11
#   public.ecr.aws/sam/build-python3.13:latest-x86_64   Debian trixie,   Python 3.13
#   public.ecr.aws/sam/build-python3.11:latest-arm64    bookworm arm64, run by qemu-user-static
#       through binfmt_misc; its metadata says linux/arm64/v8, so `docker run
#       --platform linux/arm64` works. Its debootstrap takes ~2.5 min (x86_64
#       ones ~40 s); if it fails or exceeds CDK_PIP_LAYER_CI_ARM64_TIMEOUT
#       (300 s) it is skipped with a warning and a marker file in the cache
#       dir stops later runs from retrying. CDK_PIP_LAYER_CI_ARM64=0 skips it.
# Each image has python3 (also python, /var/lang/bin/python3 like the real image),
# `python3 -m pip` / pip with Debian's EXTERNALLY-MANAGED marker removed so that
# `pip install --target` works, WORKDIR /var/task and CMD ["/bin/bash"].
# The host CA bundle is deliberately NOT baked in: behind the TLS-inspecting
# proxy, pip inside a container only verifies PyPI when the caller forwards the
# host bundle (e.g. -v /etc/ssl/certs/ca-certificates.crt:/certs/ca.crt:ro
# -e PIP_CERT=/certs/ca.crt). Without it pip fails with CERTIFICATE_VERIFY_FAILED.
#
# Networking: containers reach PyPI both on the default bridge network and with
# --network host; the script checks this whenever it starts dockerd or builds an
# image, fails if neither works and warns if only --network host does.
#
# Idempotent: a running daemon and existing images are left alone (second run
# takes about a second). Root filesystems are cached as tarballs in
# $CDK_PIP_LAYER_CACHE (default /var/cache/cdk-pip-layer-ci), so re-creating an
# image after `docker system prune -a` only re-imports (~10 s), no debootstrap.
#
# Environment knobs:
#   CDK_PIP_LAYER_CACHE      cache dir for rootfs tarballs (default above)
#   CDK_PIP_LAYER_CI_ARM64   1 (default) build the arm64 stand-in, 0 skip it
#   CDK_PIP_LAYER_CI_ARM64_TIMEOUT  seconds allowed for its debootstrap (300)
#   DEBIAN_MIRROR            debootstrap mirror (default: apt's own Debian mirror)
#   DOCKERD_FLAGS            extra dockerd flags; when set, only these are tried
#   DOCKERD_LOG              dockerd log file (default /tmp/dockerd.log)
#   DOCKERD_TIMEOUT          seconds to wait per dockerd attempt (default 60)
set -euo pipefail

CACHE_DIR=${CDK_PIP_LAYER_CACHE:-/var/cache/cdk-pip-layer-ci}
BUILD_ARM64=${CDK_PIP_LAYER_CI_ARM64:-1}
DOCKERD_LOG=${DOCKERD_LOG:-/tmp/dockerd.log}
DOCKERD_TIMEOUT=${DOCKERD_TIMEOUT:-60}
ARM64_TIMEOUT=${CDK_PIP_LAYER_CI_ARM64_TIMEOUT:-300}
# Bump when the rootfs customisation below changes: invalidates cached tarballs.
# Bump when the stand-ins' contents change: images whose label differs are rebuilt.
ROOTFS_VERSION=2
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
command -v debootstrap >/dev/null 2>&1 || need_pkgs+=(debootstrap)
command -v flock >/dev/null 2>&1 || need_pkgs+=(util-linux)
if [ "$BUILD_ARM64" = 1 ]; then
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

# Use apt's proxy (if it has one) for debootstrap's downloads too.
APT_HTTP_PROXY='' APT_HTTPS_PROXY=''
eval "$(apt-config shell APT_HTTP_PROXY Acquire::http::Proxy APT_HTTPS_PROXY Acquire::https::Proxy)"
[ -n "$APT_HTTP_PROXY" ] && [ -z "${http_proxy:-}" ] && export http_proxy=$APT_HTTP_PROXY
[ -n "$APT_HTTPS_PROXY" ] && [ -z "${https_proxy:-}" ] && export https_proxy=$APT_HTTPS_PROXY

cleanup_dir() { # remove a (possibly half-built) rootfs dir, never crossing mounts
  local dir=$1 m
  [ -e "$dir" ] || return 0
  # An interrupted debootstrap can leave /proc, /sys, ... mounted inside.
  awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
    umount -l "$m" || true
  done
  rm -rf --one-file-system "$dir"
}

customise_rootfs() { # make the Debian rootfs behave like a SAM build image
  local dir=$1 py
  rm -f "$dir"/usr/lib/python3*/EXTERNALLY-MANAGED
  [ -e "$dir/usr/bin/python" ] || ln -s python3 "$dir/usr/bin/python"
  py=$(basename "$(readlink -f "$dir/usr/bin/python3")") # python3.11 / python3.13
  mkdir -p "$dir/var/lang/bin" "$dir/var/task"
  for exe in python3 python "$py" pip pip3; do
    [ -e "$dir/usr/bin/$exe" ] && ln -sfn "/usr/bin/$exe" "$dir/var/lang/bin/$exe"
  done
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  mkdir -p "$dir/var/lib/apt/lists/partial"
  : >"$dir/etc/resolv.conf" # docker provides its own
  if [ ! -x "$dir/usr/bin/python3" ] || [ ! -d "$dir/usr/lib/python3/dist-packages/pip" ]; then
    die "rootfs $dir lacks python3 or pip"
  fi
}

ROOTFS_TAR=
ensure_rootfs_tar() { # suite arch timeout packages version -> sets ROOTFS_TAR ("" if debootstrap failed)
  local suite=$1 arch=$2 limit=$3 packages=$4 version=$5
  ROOTFS_TAR="$CACHE_DIR/rootfs-$suite-$arch-v$version.tar"
  [ -s "$ROOTFS_TAR" ] && return 0
  local work="$CACHE_DIR/work/$suite-$arch" mirror t=$SECONDS
  mirror=$(detect_mirror)
  cleanup_dir "$work"
  mkdir -p "$CACHE_DIR/work"
  log "debootstrap $suite/$arch from $mirror (log: $work.log)"
  if ! timeout "$limit" debootstrap --arch="$arch" --variant=minbase \
    --include="$packages" "$suite" "$work" "$mirror" >"$work.log" 2>&1; then
    tail -n 20 "$work.log" >&2
    cleanup_dir "$work"
    warn "debootstrap $suite/$arch failed or exceeded ${limit}s (log: $work.log)"
    ROOTFS_TAR=
    return 0
  fi
  customise_rootfs "$work"
  tar --numeric-owner -C "$work" -cf "$ROOTFS_TAR.tmp" .
  mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
  cleanup_dir "$work"
  log "cached $ROOTFS_TAR ($(du -h "$ROOTFS_TAR" | cut -f1), debootstrap+tar $((SECONDS - t))s)"
}

# ------------------------------------------------------------------ images --
CREATED_IMAGES=()
image_exists() { docker image inspect "$1" >/dev/null 2>&1; }
image_version() { docker image inspect -f '{{index .Config.Labels "cdk-pip-layer.rootfs"}}' "$1" 2>/dev/null; }

import_image() { # name tarball  (native arch, via docker import)
  docker import \
    --change "ENV PATH=$IMAGE_PATH_ENV" \
    --change 'ENV LANG=C.UTF-8' \
    --change 'WORKDIR /var/task' \
    --change 'CMD ["/bin/bash"]' \
    --change "LABEL cdk-pip-layer.rootfs=$ROOTFS_VERSION" \
    --message "cdk-pip-layer CI stand-in" \
    "$2" "$1" >/dev/null
}

load_foreign_image() { # name tarball goarch variant
  # dockerd 20.10 ignores `docker import --platform`, recording the host arch,
  # and `docker run --platform linux/arm64` then tries (and fails) to pull.
  # So write a docker-save archive with the right architecture and load it.
  local name=$1 tarball=$2 arch=$3 variant=$4 tmp diff_id now
  tmp=$(mktemp -d "$CACHE_DIR/load.XXXXXX")
  diff_id=$(sha256sum "$tarball" | cut -d' ' -f1)
  now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  ln "$tarball" "$tmp/layer.tar" 2>/dev/null || ln -s "$tarball" "$tmp/layer.tar"
  cat >"$tmp/config.json" <<EOF
{"architecture":"$arch","variant":"$variant","os":"linux","created":"$now",
 "config":{"Env":["PATH=$IMAGE_PATH_ENV","LANG=C.UTF-8"],"Cmd":["/bin/bash"],"WorkingDir":"/var/task"},
 "rootfs":{"type":"layers","diff_ids":["sha256:$diff_id"]},
 "history":[{"created":"$now","comment":"cdk-pip-layer CI stand-in"}]}
EOF
  printf '[{"Config":"config.json","RepoTags":["%s"],"Layers":["layer.tar"]}]\n' "$name" >"$tmp/manifest.json"
  tar -C "$tmp" -chf - manifest.json config.json layer.tar | docker load >/dev/null
  rm -rf "$tmp"
}

ensure_image() { # name suite arch
  local name=$1 suite=$2 arch=$3
  if [ "$(image_version "$name")" = "$ROOTFS_VERSION" ]; then log "image $name exists"; return 0; fi
  ensure_rootfs_tar "$suite" "$arch" 900 "$NATIVE_PACKAGES" "$ROOTFS_VERSION"
  [ -n "$ROOTFS_TAR" ] || die "could not build the root filesystem for $name"
  log "importing $name"
  import_image "$name" "$ROOTFS_TAR"
  docker run --rm "$name" python3 -m pip --version >/dev/null || die "$name: python3 -m pip does not run"
  docker run --rm "$name" sh -c 'command -v g++ && test -f /usr/include/python3*/Python.h' >/dev/null ||
    die "$name: no C++ compiler or Python headers"
  CREATED_IMAGES+=("$name")
  step_done "image $name"
}

ensure_image public.ecr.aws/sam/build-python3.11:latest-x86_64 bookworm amd64
ensure_image public.ecr.aws/sam/build-python3.13:latest-x86_64 trixie amd64

ARM64_IMAGE=public.ecr.aws/sam/build-python3.11:latest-arm64
ARM64_FAILED_MARK="$CACHE_DIR/arm64-unsupported"
enable_qemu_aarch64() {
  [ -d /proc/sys/fs/binfmt_misc ] || return 1
  [ -e /proc/sys/fs/binfmt_misc/register ] ||
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || return 1
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
  # The F (fix-binary) flag makes the interpreter usable inside containers.
  grep -qs '^flags:.*F' /proc/sys/fs/binfmt_misc/qemu-aarch64
}
if [ "$BUILD_ARM64" != 1 ]; then
  log "arm64 stand-in skipped (CDK_PIP_LAYER_CI_ARM64=$BUILD_ARM64)"
elif [ -e "$ARM64_FAILED_MARK" ]; then
  log "arm64 stand-in skipped: failed before ($(cat "$ARM64_FAILED_MARK")); rm $ARM64_FAILED_MARK to retry"
elif ! enable_qemu_aarch64; then
  warn "arm64 stand-in skipped: cannot register qemu-aarch64 with binfmt_misc (F flag)"
elif image_exists "$ARM64_IMAGE"; then
  log "image $ARM64_IMAGE exists"
else
  ensure_rootfs_tar bookworm arm64 "$ARM64_TIMEOUT" "$BASE_PACKAGES" 1
  if [ -z "$ROOTFS_TAR" ]; then
    echo "debootstrap failed or took over ${ARM64_TIMEOUT}s ($(date -u +%F))" >"$ARM64_FAILED_MARK"
    warn "arm64 stand-in skipped"
  else
    log "loading $ARM64_IMAGE"
    load_foreign_image "$ARM64_IMAGE" "$ROOTFS_TAR" arm64 v8
    if [ "$(docker run --rm --platform linux/arm64 "$ARM64_IMAGE" uname -m 2>/dev/null)" = aarch64 ] &&
      docker run --rm --platform linux/arm64 "$ARM64_IMAGE" python3 -m pip --version >/dev/null; then
      CREATED_IMAGES+=("$ARM64_IMAGE")
      step_done "image $ARM64_IMAGE"
    else
      docker image rm "$ARM64_IMAGE" >/dev/null 2>&1 || true
      echo "image does not run under qemu ($(date -u +%F))" >"$ARM64_FAILED_MARK"
      warn "arm64 stand-in removed: it does not run under qemu here"
    fi
  fi
fi

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

log "ready in $((SECONDS - T0))s: $(docker images --format '{{.Repository}}:{{.Tag}}' 'public.ecr.aws/sam/*' | sort | tr '\n' ' ')"
