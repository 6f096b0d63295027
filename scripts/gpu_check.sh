#!/usr/bin/env bash
# The GPU check of issue 13, in two halves.
#
#   bash scripts/gpu_check.sh prepare [PYVER]   # here, on a CPU machine with the venv: wheels + CPU truth
#   bash scripts/gpu_check.sh run [ARGS...]     # on the lent device (carry .gpu): install, check, table
#
# prepare: downloads sionna-rt, mitsuba and drjit (pinned in requirements.lock) for the device's Python (PYVER,
# default 3.12) into .gpu/wheels, strips what the check does not use (Mitsuba variants other than
# *_mono_polarized, Sionna's scenes other than the street canyon) so that .gpu fits the 64 MiB a run carries,
# and writes the CPU truth of the street example at three poses to .gpu/cpu_truth.json.
# run: installs whatever of them is missing (from .gpu/wheels, no network), stubs the notebook-only modules
# sionna imports when they are absent, then runs benchmarks/gpu_worlds.py (CUDA truth against the CPU truth,
# 1, 4 and 10 worlds per GPU at 100 000 samples, the issue's targets PASS/MISS). About 5 minutes on an H100.
set -euo pipefail
cd "$(dirname "$0")/.."
GPU_DIR=.gpu
pin() { grep -i "^$1==" requirements.lock | head -1; }

case "${1:-}" in
prepare)
    pyver="${2:-3.12}"
    mkdir -p "$GPU_DIR/wheels"
    .venv/bin/python -m pip download --quiet --no-deps --only-binary=:all: --python-version "$pyver" \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$GPU_DIR/wheels" "$(pin sionna-rt)" "$(pin mitsuba)" "$(pin drjit)"
    .venv/bin/python - "$GPU_DIR/wheels" <<'EOF'
import re, sys, zipfile
from pathlib import Path
for whl in Path(sys.argv[1]).glob("*.whl"):
    def keep(name):
        if re.search(r"mitsuba/(cuda|llvm|scalar)_\w+\.cpython", name):
            return "_mono_polarized." in name
        m = re.match(r"sionna/rt/scenes/([^/]+)/", name)
        return m is None or m.group(1) == "simple_street_canyon"
    tmp = whl.with_suffix(".tmp")
    with zipfile.ZipFile(whl) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            if keep(item.filename):
                dst.writestr(item, src.read(item.filename))
    tmp.replace(whl)
    print(f"{whl.name}: {whl.stat().st_size / 2**20:.1f} MiB")
EOF
    .venv/bin/python benchmarks/gpu_worlds.py --write-cpu-reference "$GPU_DIR/cpu_truth.json"
    du -sh "$GPU_DIR"
    ;;
run)
    shift
    py=$(command -v python3)
    missing=()
    for mod in sionna.rt:sionna-rt mitsuba:mitsuba drjit:drjit numpy:numpy scipy:scipy pydantic:pydantic yaml:pyyaml \
        psutil:psutil; do
        "$py" -c "import ${mod%%:*}" 2>/dev/null || missing+=("${mod##*:}")
    done
    if ((${#missing[@]})); then
        echo "installing: ${missing[*]}"
        "$py" -m pip install --quiet --no-index --find-links "$GPU_DIR/wheels" --no-deps "${missing[@]}" \
            || "$py" -m pip install --quiet "${missing[@]}"
    fi
    mkdir -p "$GPU_DIR/stubs"
    for _ in 1 2 3 4 5 6; do  # notebook-only imports of sionna (widgets, 3-D preview): empty stand-ins
        err=$(PYTHONPATH="$GPU_DIR/stubs" "$py" -c "import sionna.rt" 2>&1 >/dev/null) && break
        mod=$(sed -n "s/.*No module named '\([^'.]*\).*/\1/p" <<<"$err" | tail -1)
        [[ -n "$mod" ]] || { echo "$err" >&2; exit 1; }
        echo "stub: $mod"
        mkdir -p "$GPU_DIR/stubs/$mod"
        printf 'def __getattr__(name):\n    return type(name, (), {"__init__": lambda self, *a, **k: None})\n' \
            > "$GPU_DIR/stubs/$mod/__init__.py"
    done
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    PYTHONPATH="$PWD:$GPU_DIR/stubs" "$py" benchmarks/gpu_worlds.py --cpu-reference "$GPU_DIR/cpu_truth.json" \
        --json "${OUT:-$GPU_DIR}/gpu_worlds.json" "$@"
    ;;
*)
    echo "usage: bash scripts/gpu_check.sh prepare [PYVER] | run [gpu_worlds.py args]" >&2
    exit 2
    ;;
esac
