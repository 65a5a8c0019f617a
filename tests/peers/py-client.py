#!/usr/bin/env python3
"""A real MCP client (the Python SDK, PyPI `mcp`) for mcpwatch's root integration tests.

    VENV/bin/python py-client.py CONFIG.json SERVER [--timeout SECONDS]

Run it with the peers venv's Python (`cargo xtask setup` installs it at
/opt/mcpwatch-peers/venv, or $MCPWATCH_PEERS_DIR/venv). CONFIG.json is an
mcpServers-style host config (the same file can be imported with
`mcpwatch approve --from-config`), e.g.

    {"mcpServers": {"time": {"command": "/opt/mcpwatch-peers/venv/bin/mcp-server-time",
                             "args": ["--local-timezone", "UTC"]}}}

It starts SERVER with `mcp.client.stdio.stdio_client` (which, like every SDK host,
passes only HOME LOGNAME PATH SHELL TERM USER plus the config's env, and starts the
server in a new session), sends initialize and tools/list through `ClientSession`,
prints ONE JSON line on stdout and exits:

    {"ok":true,"server":{"name":...,"version":...},"tools":["get_current_time",...]}  exit 0
    {"ok":false,"error":"..."}                                                     exit 1

Failures: bad config, spawn error, the server exiting or killed before answering
(connection closed), or no answer within the timeout (default 20 s). The server's
stderr goes to our stderr.
"""

import argparse
import json
import os
import sys


def emit(result: dict, code: int) -> None:
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    # Skip interpreter teardown: nothing of the session may linger or print after this.
    os._exit(code)


def describe(exc: BaseException) -> str:
    """The innermost errors of an exception group, or the exception itself, as text."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(e) for e in exc.exceptions)
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def server_entry(path: str, name: str) -> dict:
    with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
    servers = cfg.get("mcpServers") or cfg.get("servers") or {}
    entry = servers.get(name)
    if not isinstance(entry, dict) or not isinstance(entry.get("command"), str):
        raise ValueError(f'{path}: no server "{name}" with a "command"')
    return entry


async def run(entry: dict, timeout: float) -> dict:
    import anyio
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(
        command=entry["command"],
        args=entry.get("args", []),
        env=entry.get("env"),
        cwd=entry.get("cwd"),
    )
    with anyio.fail_after(timeout):
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write, read_timeout_seconds=timeout) as session:
                init = await session.initialize()
                tools = []
                cursor = None
                while True:
                    if cursor is None:
                        page = await session.list_tools()
                    else:
                        from mcp_types import PaginatedRequestParams

                        page = await session.list_tools(params=PaginatedRequestParams(cursor=cursor))
                    tools.extend(t.name for t in page.tools)
                    cursor = page.next_cursor
                    if not cursor:
                        break
                info = init.server_info
                return {
                    "ok": True,
                    "server": {"name": info.name, "version": info.version},
                    "tools": tools,
                }


def main() -> None:
    p = argparse.ArgumentParser(description="MCP client: initialize + tools/list")
    p.add_argument("config")
    p.add_argument("server")
    p.add_argument("--timeout", type=float, default=20.0)
    try:
        a = p.parse_args()
    except SystemExit:
        emit({"ok": False, "error": "usage: py-client.py CONFIG.json SERVER [--timeout SECONDS]"}, 1)
    try:
        entry = server_entry(a.config, a.server)
    except Exception as e:  # noqa: BLE001 - any failure is reported as one JSON line
        emit({"ok": False, "error": describe(e)}, 1)
    try:
        import anyio
    except ImportError as e:
        emit(
            {
                "ok": False,
                "error": f"the Python SDK is not importable ({e}): run me with the peers venv's "
                "python (`cargo xtask setup` installs /opt/mcpwatch-peers/venv)",
            },
            1,
        )
    try:
        result = anyio.run(run, entry, a.timeout)
    except TimeoutError:
        emit({"ok": False, "error": f"timed out after {a.timeout:g} s waiting for {a.server}"}, 1)
    except BaseException as e:  # noqa: BLE001 - groups, cancellations, McpError: all failures
        emit({"ok": False, "error": describe(e)}, 1)
    emit(result, 0)


if __name__ == "__main__":
    main()
