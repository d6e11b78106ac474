#!/usr/bin/env bash
# MCP server tmux-debug: median and p99 of tmux_capture_pane / tmux_send_keys round trips through
# the protocol vs the same tmux commands run directly, in one run (release build).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo bench -p wrapix-mcp --bench roundtrip "$@"
