"""The MCP Python SDK's own server on streamable HTTP, the upstream Gatehouse protects
in e2e/tests/mcp_clients.rs. Usage: server.py PORT. Its tool `whoami` answers with the
identity headers Gatehouse sent, so the test sees what the upstream learned."""

import sys

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("gatehouse-e2e")


@server.tool()
def whoami(ctx: Context) -> str:
    """Who Gatehouse says is calling."""
    request = ctx.request_context.request
    headers = request.headers if request is not None else {}
    user = headers.get("x-authenticated-userid", "")
    client = headers.get("x-credential-identifier", "")
    scope = headers.get("x-authenticated-scope", "")
    return f"user={user} client={client} scope={scope}"


@server.tool()
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


if __name__ == "__main__":
    server.run(
        transport="streamable-http",
        host="127.0.0.1",
        port=int(sys.argv[1]),
        streamable_http_path="/mcp",
    )
