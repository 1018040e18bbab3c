// The MCP TypeScript SDK's OAuth client, driven by e2e/tests/mcp_clients.rs.
//
// Usage: node client.mjs SERVER_URL (dcr | cimd CLIENT_METADATA_URL) [SCOPE]
// (the test sets NODE_EXTRA_CA_CERTS so Gatehouse's test certificate is trusted).
//
// A 401 sends it through discovery (RFC 9728, RFC 8414), client registration (a
// client ID metadata document or RFC 7591 registration) and the authorization code
// flow with PKCE and `resource`. The browser step is the test's: it prints
// {"authorize": URL} and reads the callback URL from stdin. Then it calls the tool
// `whoami` and prints {"whoami": text}.
import { createInterface } from "node:readline";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";

const [serverUrl, mode, ...rest] = process.argv.slice(2);
const metadataUrl = mode === "cimd" ? rest.shift() : undefined;
const scope = rest[0];
const say = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

const redirectUri = "http://127.0.0.1:33419/callback";
let clientInfo, tokens, verifier;
const provider = {
  get redirectUrl() {
    return redirectUri;
  },
  get clientMetadata() {
    return {
      client_name: "MCP TypeScript SDK e2e",
      redirect_uris: [redirectUri],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
      ...(scope ? { scope } : {}),
    };
  },
  clientMetadataUrl: metadataUrl,
  clientInformation: () => clientInfo,
  saveClientInformation: (info) => {
    clientInfo = info;
  },
  tokens: () => tokens,
  saveTokens: (t) => {
    tokens = t;
  },
  redirectToAuthorization: (url) => say({ authorize: url.toString() }),
  saveCodeVerifier: (v) => {
    verifier = v;
  },
  codeVerifier: () => verifier,
};

async function connect() {
  const client = new Client({ name: "gatehouse-e2e", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(serverUrl), { authProvider: provider }));
  return client;
}

try {
  let client;
  try {
    client = await connect();
  } catch (e) {
    if (!(e instanceof UnauthorizedError)) throw e;
    const { value: callback } = await lines.next();
    const code = new URL(callback.trim()).searchParams.get("code");
    const transport = new StreamableHTTPClientTransport(new URL(serverUrl), { authProvider: provider });
    await transport.finishAuth(code);
    client = new Client({ name: "gatehouse-e2e", version: "1.0.0" });
    await client.connect(transport);
  }
  const result = await client.callTool({ name: "whoami", arguments: {} });
  say({ whoami: result.content[0].text });
  await client.close();
  process.exit(0);
} catch (e) {
  console.error(e?.stack ?? String(e));
  process.exit(1);
}
