"""The MCP Python SDK's OAuth client, driven by e2e/tests/mcp_clients.rs.

Usage: client.py SERVER_URL CA_FILE (dcr | cimd CLIENT_METADATA_URL) [SCOPE]

It connects to SERVER_URL: a 401 sends it through discovery (RFC 9728, RFC 8414),
client registration (a client ID metadata document, or RFC 7591 registration) and
the authorization code flow with PKCE and `resource`. The browser step is the
test's: the client prints {"authorize": URL} on stdout and reads the callback URL
(with code, state and iss) from stdin. Then it calls the tool `whoami` and prints
{"whoami": text}. Errors go to stderr and exit 1.
"""

import asyncio
import json
import ssl
import sys
from urllib.parse import parse_qs, urlparse

import httpx2
from mcp import ClientSession
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken


class Memory(TokenStorage):
    def __init__(self):
        self.tokens = None
        self.client = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull):
        self.client = client_info


def say(obj):
    print(json.dumps(obj), flush=True)


async def main():
    server_url, ca_file, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    metadata_url = sys.argv[4] if mode == "cimd" else None
    rest = sys.argv[5:] if mode == "cimd" else sys.argv[4:]
    scope = rest[0] if rest else None

    async def redirect(url: str):
        say({"authorize": url})

    async def callback() -> AuthorizationCodeResult:
        line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        query = parse_qs(urlparse(line.strip()).query)
        return AuthorizationCodeResult(
            code=query["code"][0],
            state=query.get("state", [None])[0],
            iss=query.get("iss", [None])[0],
        )

    provider = OAuthClientProvider(
        server_url=server_url,
        client_metadata=OAuthClientMetadata(
            client_name="MCP Python SDK e2e",
            redirect_uris=["http://127.0.0.1:33418/callback"],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
            scope=scope,
        ),
        storage=Memory(),
        redirect_handler=redirect,
        callback_handler=callback,
        client_metadata_url=metadata_url,
    )
    verify = ssl.create_default_context(cafile=ca_file)
    async with httpx2.AsyncClient(auth=provider, verify=verify, timeout=30) as http:
        async with streamable_http_client(server_url, http_client=http) as (read, write, *_):
            async with ClientSession(read, write) as session:
                await session.initialize()
                result = await session.call_tool("whoami", {})
                say({"whoami": result.content[0].text})


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as e:  # the test reads the reason from stderr
        import traceback

        traceback.print_exc()
        sys.exit(1)
