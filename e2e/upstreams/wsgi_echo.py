"""A real WSGI upstream for the hardening tests: Python's own wsgiref server.

It answers every request with JSON describing what a WSGI application sees: the decoded
PATH_INFO (wsgiref percent-decodes it, so `%2F` becomes `/`), the raw request line, and
every HTTP_* variable (CGI naming: `X-Foo` and `X_Foo` both become HTTP_X_FOO).
Prints the port it listens on (first line of stdout), then serves until killed.
"""

import json
import sys
from wsgiref.simple_server import WSGIRequestHandler, make_server


class Handler(WSGIRequestHandler):
    def get_environ(self):
        env = super().get_environ()
        env["gatehouse.raw_request_line"] = self.raw_requestline.decode("latin-1").rstrip("\r\n")
        return env

    def log_message(self, *args):
        pass


def app(environ, start_response):
    body = json.dumps(
        {
            "path_info": environ.get("PATH_INFO", ""),
            "request_line": environ["gatehouse.raw_request_line"],
            "method": environ["REQUEST_METHOD"],
            "http": {k: v for k, v in environ.items() if k.startswith("HTTP_")},
        }
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


server = make_server("127.0.0.1", 0, app, handler_class=Handler)
print(server.server_port, flush=True)
server.serve_forever()
