#!/usr/bin/env python3
"""A stand-in for Claude Code in the `[mcp]` wiring test.

It does what Claude Code does with `mcpServers`: reads `$CLAUDE_CONFIG_DIR/.claude.json`,
starts the stdio server registered as `tmux-debug` with its command, args and env, and speaks
MCP (newline-delimited JSON-RPC) to it: initialize, list tools, create a pane, wait for its
output. Prints one `key=value` line per finding for the Rust test to check.
"""

import json
import os
import subprocess
import sys

config = json.load(open(os.path.join(os.environ["CLAUDE_CONFIG_DIR"], ".claude.json")))
servers = config.get("mcpServers", {})
print("servers=" + ",".join(sorted(servers)), flush=True)
entry = servers["tmux-debug"]
env = dict(os.environ)
env.update(entry.get("env", {}))
proc = subprocess.Popen(
    [entry["command"], *entry.get("args", [])],
    stdin=subprocess.PIPE,
    stdout=subprocess.PIPE,
    env=env,
    text=True,
)
next_id = 0


def call(method, params):
    global next_id
    next_id += 1
    msg = {"jsonrpc": "2.0", "id": next_id, "method": method, "params": params}
    proc.stdin.write(json.dumps(msg) + "\n")
    proc.stdin.flush()
    while True:
        line = proc.stdout.readline()
        if not line:
            sys.exit("the server closed its output")
        reply = json.loads(line)
        if reply.get("id") == next_id:
            return reply


def tool(name, args):
    result = call("tools/call", {"name": name, "arguments": args})["result"]
    text = "".join(c.get("text", "") for c in result["content"])
    return result.get("isError", False), text


init = call(
    "initialize",
    {
        "protocolVersion": "2025-03-26",
        "capabilities": {},
        "clientInfo": {"name": "claude-stand-in", "version": "0"},
    },
)
print("server=" + init["result"]["serverInfo"]["name"], flush=True)
proc.stdin.write(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}) + "\n")
proc.stdin.flush()
tools = sorted(t["name"] for t in call("tools/list", {})["result"]["tools"])
print("tools=" + ",".join(tools), flush=True)
err, pane = tool("tmux_create_pane", {"command": "echo pane-says-$((6*7)); sleep 60", "name": "w"})
print(f"create_error={err}", flush=True)
err, text = tool("tmux_wait_for", {"pane_id": "w", "pattern": "pane-says-42", "timeout_ms": 20000})
print(f"wait_error={err}", flush=True)
tool("tmux_kill_pane", {"pane_id": "w"})
proc.stdin.close()
proc.wait(timeout=20)
print("done", flush=True)
