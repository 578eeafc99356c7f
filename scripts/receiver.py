#!/usr/bin/env python3
"""A webhook receiver for trying postmand offline (the README's tour), standard library only.

    python3 scripts/receiver.py [PORT] [--secret SECRET] [--status N] [--host ADDR]

Listens on 127.0.0.1:PORT (default 9000; 0 picks a free port, and the first line says which),
prints every request it gets as one block (method, path, the headers that matter, the body), and
answers N (default 200). With --secret it checks each signature header postmand sends, the way a
receiver should, and prints "signature ok" or "signature MISMATCH" for each:

- webhook-signature (Standard Webhooks): space-separated "v1,<base64>" entries, any of which may
  match base64(HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}")); the key is the
  base64 after "whsec_" when the secret starts with it (and decodes), else the secret's bytes;
- x-hub-signature-256: "sha256=" + hex HMAC-SHA256(secret's bytes, body);
- x-hub-signature: hex HMAC-SHA256(secret's bytes, body) as postmand and the original send it,
  or "sha1=<hex HMAC-SHA1>" / "sha256=<hex>" as GitHub-style senders do.

Ctrl-C stops it.
"""

import argparse
import base64
import binascii
import hashlib
import hmac
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Headers printed in each block, in this order; --all-headers prints every one.
SHOWN_HEADERS = (
    "content-type",
    "content-length",
    "user-agent",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-hub-signature",
    "x-hub-signature-256",
)
# Standard Webhooks receivers reject timestamps further than this from their clock (replays).
TIMESTAMP_TOLERANCE_SECS = 5 * 60
# Longest body printed; the rest is counted, not shown.
BODY_SHOWN_BYTES = 64 * 1024

_print_lock = threading.Lock()


def standard_key(secret):
    """The Standard Webhooks key: the base64 after `whsec_`, else the secret's bytes."""
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[len("whsec_"):], validate=True)
        except (binascii.Error, ValueError):
            pass
    return secret.encode()


def _hmac_hex(key, body, digest):
    return hmac.new(key, body, digest).hexdigest()


def check_standard(secret, msg_id, timestamp, header, body):
    """Verdict on a `webhook-signature` header: any of its v1 signatures may match."""
    if msg_id is None or timestamp is None:
        return "signature MISMATCH (webhook-id or webhook-timestamp missing)"
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(standard_key(secret), signed, hashlib.sha256).digest())
    for entry in header.split():
        version, _, signature = entry.partition(",")
        if version == "v1" and hmac.compare_digest(signature.encode(), expected):
            return "signature ok"
    return "signature MISMATCH"


def check_hub(secret, header, body):
    """Verdict on an `X-Hub-Signature` or `X-Hub-Signature-256` header."""
    value = header.strip()
    scheme, sep, hexdigest = value.partition("=")
    if not sep:
        # postmand's (and the original's) X-Hub-Signature: bare hex, SHA-256 by its length.
        scheme, hexdigest = ("sha1" if len(value) == 40 else "sha256"), value
    digests = {"sha1": hashlib.sha1, "sha256": hashlib.sha256}
    if scheme not in digests:
        return "signature MISMATCH (unknown scheme %r)" % scheme
    expected = _hmac_hex(secret.encode(), body, digests[scheme])
    if hmac.compare_digest(hexdigest.lower().encode(), expected.encode()):
        return "signature ok"
    return "signature MISMATCH"


def verdicts(secret, headers, body):
    """(header, verdict) for every signature header present."""
    out = []
    standard = headers.get("webhook-signature")
    if standard is not None:
        out.append(
            (
                "webhook-signature",
                check_standard(
                    secret,
                    headers.get("webhook-id"),
                    headers.get("webhook-timestamp"),
                    standard,
                    body,
                ),
            )
        )
    for name in ("x-hub-signature-256", "x-hub-signature"):
        value = headers.get(name)
        if value is not None:
            out.append((name, check_hub(secret, value, body)))
    return out


def timestamp_note(timestamp):
    """A warning when webhook-timestamp is not a number or is too far from this clock."""
    if timestamp is None:
        return None
    try:
        skew = int(time.time()) - int(timestamp)
    except ValueError:
        return "webhook-timestamp is not a number: a receiver should reject it"
    if abs(skew) > TIMESTAMP_TOLERANCE_SECS:
        return "webhook-timestamp is %d s off this clock: a receiver should reject it" % skew
    return None


def make_handler(options):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def version_string(self):
            return "receiver.py"

        def _read_body(self):
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                body = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        # Trailers, up to the blank line.
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return body
                    body += self.rfile.read(size)
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length > 0 else b""

        def _handle(self):
            body = self._read_body()
            headers = {k.lower(): v for k, v in self.headers.items()}
            lines = ["=== %s %s from %s:%d" % (self.command, self.path, *self.client_address[:2])]
            names = list(headers) if options.all_headers else SHOWN_HEADERS
            for name in names:
                if name in headers:
                    lines.append("%s: %s" % (name, headers[name]))
            lines.append("")
            shown = body[:BODY_SHOWN_BYTES].decode("utf-8", errors="replace")
            lines.append(shown)
            if len(body) > BODY_SHOWN_BYTES:
                lines.append("(%d more bytes not shown)" % (len(body) - BODY_SHOWN_BYTES))
            if options.secret is not None:
                checked = verdicts(options.secret, headers, body)
                for name, verdict in checked:
                    lines.append("--- %s: %s" % (name, verdict))
                if not checked:
                    lines.append("--- no signature headers (is the webhook's secret_token set?)")
                note = timestamp_note(headers.get("webhook-timestamp"))
                if note:
                    lines.append("--- " + note)
            else:
                lines.append("--- signatures not checked (start with --secret SECRET to check them)")
            lines.append("--- answered %d" % options.status)
            with _print_lock:
                print("\n".join(lines) + "\n", flush=True)

            answer = b"" if options.status in (204, 304) or options.status < 200 else b"ok\n"
            self.send_response(options.status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        do_POST = do_PUT = do_PATCH = do_DELETE = do_GET = _handle

        def log_message(self, format, *args):  # noqa: A002 (the base class's name)
            pass  # each request is printed as a block above

    return Handler


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Print webhook requests and check postmand's signatures.",
        epilog="Example: python3 scripts/receiver.py 9000 --secret my-secret-token",
    )
    parser.add_argument("port_arg", nargs="?", type=int, metavar="PORT", help="port (default 9000)")
    parser.add_argument("--port", type=int, help="port (default 9000; 0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    parser.add_argument("--secret", help="the webhook's secret_token: check the signatures")
    parser.add_argument("--status", type=int, default=200, help="status to answer (default 200)")
    parser.add_argument("--all-headers", action="store_true", help="print every header")
    options = parser.parse_args(argv)
    if options.port is not None and options.port_arg is not None and options.port != options.port_arg:
        parser.error("two different ports given")
    options.port = next(p for p in (options.port, options.port_arg, 9000) if p is not None)
    if not 100 <= options.status <= 599:
        parser.error("--status must be 100-599")
    return options


def main(argv=None):
    options = parse_args(sys.argv[1:] if argv is None else argv)
    server = ThreadingHTTPServer((options.host, options.port), make_handler(options))
    server.daemon_threads = True
    host, port = server.server_address[:2]
    checking = "checking signatures" if options.secret is not None else "not checking signatures"
    print("listening on http://%s:%d/ (%s; Ctrl-C stops)" % (host, port, checking), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
