#!/usr/bin/env bash
# The test command (README, .ci/run): set up, then run the whole suite. The tests start and stop what they
# need themselves, by PID: a moto S3 server on 127.0.0.1 and private Ray clusters on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/tools/bin:$PATH" RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 PYTHONUNBUFFERED=1
exec .venv/bin/python -m pytest -q -p no:cacheprovider --durations=15 tests "$@"
