#!/usr/bin/env bash
# Tripwire: median time of a snapshot of git's execution surface over synthetic projects (10k and
# 100k files, nested repositories), next to `find DIR -name .git` in the same run (release build).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo bench -p wrapix-sandbox --bench tripwire "$@"
