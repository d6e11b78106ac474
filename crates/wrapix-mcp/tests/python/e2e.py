"""Drives the tmux-debug MCP server with the official MCP Python SDK (`mcp` on PyPI).

Usage: python e2e.py SERVER [ARGS...]   (the server command, e.g. target/debug/wrapix mcp tmux-debug)
Prints `ok: NAME` per check and `N passed, 0 failed` at the end; exits non-zero on a failure.
"""

import asyncio
import json
import os
import socket
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

EXPECTED = {
    "tmux_create_pane": {"command"},
    "tmux_send_keys": {"pane_id", "keys"},
    "tmux_capture_pane": {"pane_id"},
    "tmux_kill_pane": {"pane_id"},
    "tmux_list_panes": set(),
    "tmux_wait_for": {"pane_id", "pattern"},
}

passed = 0


def check(name, cond, detail=""):
    global passed
    if not cond:
        raise AssertionError(f"{name}: {detail}")
    passed += 1
    print(f"ok: {name}", flush=True)


def text(result):
    return "".join(c.text for c in result.content if getattr(c, "type", "") == "text")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def main(argv):
    # The SDK passes only a few variables on; TMPDIR tells the server where to put its tmux
    # folder (the Rust test looks for leftovers there).
    env = {k: os.environ[k] for k in ("TMPDIR", "LANG") if k in os.environ}
    params = StdioServerParameters(command=argv[0], args=argv[1:], env=env)
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            check("initialize", init.server_info.name == "wrapix-tmux-debug", init.server_info)

            tools = {t.name: t for t in (await session.list_tools()).tools}
            check("six tools", set(tools) == set(EXPECTED), sorted(tools))
            for name, required in EXPECTED.items():
                schema = tools[name].input_schema
                check(f"schema {name}", schema.get("type") == "object"
                      and set(schema.get("required", [])) == required, schema)
            props = tools["tmux_capture_pane"].input_schema["properties"]
            check("lines is an integer", "integer" in json.dumps(props["lines"]), props)

            port = free_port()
            r = await session.call_tool("tmux_create_pane", {
                "command": f"python3 -u -m http.server {port} --bind 127.0.0.1", "name": "server"})
            check("create server", not r.is_error and json.loads(text(r))["pane_id"] == "server", text(r))
            r = await session.call_tool("tmux_wait_for", {
                "pane_id": "server", "pattern": "Serving HTTP", "timeout_ms": 15000})
            check("wait for banner", not r.is_error, text(r))

            r = await session.call_tool("tmux_create_pane", {"command": "sh", "name": "client"})
            check("create client", not r.is_error, text(r))
            req = f"python3 -c \"import urllib.request as u; print('STATUS', u.urlopen('http://127.0.0.1:{port}/').status)\"\n"
            r = await session.call_tool("tmux_send_keys", {"pane_id": "client", "keys": req})
            check("send request", not r.is_error, text(r))
            r = await session.call_tool("tmux_wait_for", {
                "pane_id": "client", "pattern": "STATUS 200", "timeout_ms": 15000})
            check("client got 200", not r.is_error, text(r))
            r = await session.call_tool("tmux_wait_for", {
                "pane_id": "server", "pattern": '"GET / HTTP/1.1" 200', "timeout_ms": 15000})
            check("server logged the request", not r.is_error, text(r))
            r = await session.call_tool("tmux_capture_pane", {"pane_id": "server", "lines": 50})
            check("capture server", "GET / HTTP" in text(r) and "\x1b" not in text(r), text(r))
            r = await session.call_tool("tmux_capture_pane", {"pane_id": "client"})
            check("capture client", "STATUS 200" in text(r), text(r))

            r = await session.call_tool("tmux_send_keys", {"pane_id": "server", "keys": "^C"})
            check("ctrl-c", not r.is_error, text(r))
            r = await session.call_tool("tmux_kill_pane", {"pane_id": "server"})
            check("kill server", not r.is_error, text(r))
            r = await session.call_tool("tmux_list_panes", {})
            panes = json.loads(text(r))
            check("list after kill", [p["pane_id"] for p in panes] == ["client"], panes)

            r = await session.call_tool("tmux_create_pane", {
                "command": "echo 'Traceback: boom' >&2; exit 3", "name": "crash"})
            check("create crashing pane", not r.is_error, text(r))
            for _ in range(100):
                panes = json.loads(text(await session.call_tool("tmux_list_panes", {})))
                crash = [p for p in panes if p["pane_id"] == "crash"][0]
                if crash["status"] == "exited":
                    break
                await asyncio.sleep(0.05)
            check("exited status", crash["status"] == "exited" and crash["exit_code"] == 3, crash)
            r = await session.call_tool("tmux_capture_pane", {"pane_id": "crash"})
            check("crash output survives", "Traceback: boom" in text(r)
                  and "exited with status 3" in text(r), text(r))

            r = await session.call_tool("tmux_capture_pane", {"pane_id": "nope"})
            check("unknown pane is a tool error", r.is_error and "tmux_list_panes" in text(r), text(r))
            r = await session.call_tool("tmux_capture_pane", {"pane_id": "client", "lines": 10**9})
            check("huge lines is a tool error", r.is_error and "1000" in text(r), text(r))
            r = await session.call_tool("tmux_send_keys", {"pane_id": "client", "keys": "a\x1b[Ab"})
            check("control bytes are a tool error", r.is_error and "Escape" in text(r), text(r))
            r = await session.call_tool("tmux_list_panes", {})
            check("still healthy", not r.is_error, text(r))
    print(f"{passed} passed, 0 failed", flush=True)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: e2e.py SERVER [ARGS...]")
    asyncio.run(main(sys.argv[1:]))
