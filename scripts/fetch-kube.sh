#!/usr/bin/env bash
# A real Kubernetes control plane for the orchestrator's cluster tests, built offline.
#
# kube-apiserver, kube-controller-manager and kube-scheduler are built from Debian bookworm's
# *source* package `kubernetes` (upstream 1.20 with vendor/), etcd comes from the binary package
# `etcd-server`. The result is cached outside the work tree (about 12 minutes to build on two
# cores, once per machine) and its bin/ folder is printed on the last line.
set -euo pipefail

CACHE="${IRONBOWL_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ironbowl/kube}"
BIN="$CACHE/bin"
wanted=(kube-apiserver kube-controller-manager kube-scheduler etcd)

have_all() {
  for name in "${wanted[@]}"; do [ -x "$BIN/$name" ] || return 1; done
}

if have_all && command -v openssl >/dev/null; then
  echo "$BIN"
  exit 0
fi

need=()
command -v openssl >/dev/null || need+=(openssl)  # the tests' service-account key pair
command -v go >/dev/null || need+=(golang-go)
command -v rsync >/dev/null || need+=(rsync)
command -v dpkg-source >/dev/null || need+=(dpkg-dev)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi

mkdir -p "$CACHE/apt/lists/partial" "$CACHE/apt/cache/archives/partial" "$CACHE/src" "$BIN"

# A private deb-src list on the machine's own mirror; the system's apt configuration is untouched.
mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
  | grep -E '^(URIs:|deb )' | grep -oE 'https?://[^ ]+/debian/?' | grep -v security | head -n1 || true)
mirror="${mirror:-http://deb.debian.org/debian}"
echo "deb-src ${mirror%/} bookworm main" >"$CACHE/apt/sources.list"
apt_private=(-o "Dir::Etc::SourceList=$CACHE/apt/sources.list" -o Dir::Etc::SourceParts=/nonexistent
  -o "Dir::State::Lists=$CACHE/apt/lists" -o "Dir::Cache=$CACHE/apt/cache")

if [ ! -x "$BIN/etcd" ]; then
  workdir=$(mktemp -d)
  (cd "$workdir" && apt-get download etcd-server >&2) \
    || { apt-get update -qq && (cd "$workdir" && apt-get download etcd-server >&2); }
  dpkg -x "$workdir"/etcd-server_*.deb "$workdir/root"
  cp "$workdir/root/usr/bin/etcd" "$BIN/etcd"
  rm -rf "$workdir"
fi

tree=$(find "$CACHE/src" -maxdepth 1 -type d -name 'kubernetes-*' | head -n1)
if [ -z "$tree" ]; then
  apt-get "${apt_private[@]}" update -qq >&2
  (cd "$CACHE/src" && apt-get "${apt_private[@]}" source --download-only kubernetes >&2)
  dsc=$(ls "$CACHE"/src/kubernetes_*.dsc | head -n1)
  # Check every file of the source package against the checksums its .dsc lists.
  (cd "$CACHE/src" && awk '/^Checksums-Sha256:/{on=1;next} /^[^ ]/{on=0} on&&NF==3{print $1"  "$3}' "$dsc" \
    | sha256sum -c - >&2)
  (cd "$CACHE/src" && dpkg-source --no-check -x "$dsc" >&2)
  tree=$(find "$CACHE/src" -maxdepth 1 -type d -name 'kubernetes-*' | head -n1)
fi

# GOPATH mode, as Debian's own rules build it (go build -mod=vendor fails on this tree).
mkdir -p "$tree/.go/src/k8s.io"
ln -sfn "$tree" "$tree/.go/src/k8s.io/kubernetes"
for name in kube-apiserver kube-controller-manager kube-scheduler; do
  [ -x "$BIN/$name" ] && continue
  (cd "$tree/.go/src/k8s.io/kubernetes" \
    && GOPATH="$tree/.go" GO111MODULE=off CGO_ENABLED=0 GOPROXY=off GOFLAGS= \
      make WHAT="cmd/$name" >&2)
  cp "$(find "$tree/_output" -type f -name "$name" -perm -u+x | head -n1)" "$BIN/$name"
done

have_all
echo "$BIN"
