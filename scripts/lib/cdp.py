"""A headless Chromium driven over the DevTools protocol, with Python's standard library only
(the machine has no network for a websocket package). scripts/check-ui.sh uses it to load the
dashboard's pages, fill and submit its forms as a person would, read the DOM and take
screenshots.

    with Browser("/usr/bin/chromium", "/tmp/profile") as browser:
        browser.goto("http://127.0.0.1:8000/ui/")
        title = browser.eval("document.title")
"""

import base64
import json
import os
import socket
import struct
import subprocess
import time
import urllib.request


class Browser:
    """One Chromium process and one tab, controlled over its DevTools websocket."""

    def __init__(self, binary, profile, log_path=None):
        self.profile = profile
        os.makedirs(profile, exist_ok=True)
        port_file = os.path.join(profile, "DevToolsActivePort")
        if os.path.exists(port_file):
            os.remove(port_file)
        log = open(log_path or os.devnull, "w")
        # Flags as for scripts/check-swagger-ui.sh: no sandbox as root, nothing fetched from
        # the network but the pages under test.
        self.process = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--hide-scrollbars", "--window-size=1280,900",
             "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
            stdout=log, stderr=log)
        deadline = time.time() + 30
        while not os.path.exists(port_file) or len(open(port_file).read().split()) < 2:
            if time.time() > deadline or self.process.poll() is not None:
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.1)
        port = int(open(port_file).read().split()[0])
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
        page = next(t for t in targets if t["type"] == "page")
        self.socket = _connect(page["webSocketDebuggerUrl"])
        self.next_id = 0
        self.events = []
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.call("Log.enable")

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()

    def close(self):
        try:
            self.socket.close()
        finally:
            self.process.kill()
            self.process.wait()

    def call(self, method, **params):
        """Sends one command and returns its result; events that arrive meanwhile are kept."""
        self.next_id += 1
        _send(self.socket, json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(_receive(self.socket))
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for_load(self, timeout=20):
        """Waits for the next load event of the tab (after a navigation or a form submit)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            for i, event in enumerate(self.events):
                if event.get("method") == "Page.loadEventFired":
                    del self.events[: i + 1]
                    return
            self.socket.settimeout(max(0.1, deadline - time.time()))
            try:
                self.events.append(json.loads(_receive(self.socket)))
            except socket.timeout:
                pass
            finally:
                self.socket.settimeout(None)
        raise RuntimeError("the page did not finish loading")

    def goto(self, url):
        self.events = [e for e in self.events if e.get("method") != "Page.loadEventFired"]
        self.call("Page.navigate", url=url)
        self.wait_for_load()

    def submit(self, form_selector, fields=None):
        """Fills `fields` (name -> value) of the form and clicks its submit button, as a person
        would; returns once the next page has loaded."""
        self.events = [e for e in self.events if e.get("method") != "Page.loadEventFired"]
        script = (
            "(() => { const form = document.querySelector(%s);"
            " if (!form) return false;"
            " for (const [name, value] of Object.entries(%s)) form.elements[name].value = value;"
            " form.querySelector('button[type=submit]').click(); return true; })()"
            % (json.dumps(form_selector), json.dumps(fields or {})))
        if not self.eval(script):
            raise RuntimeError(f"no form {form_selector} on {self.eval('location.href')}")
        self.wait_for_load()

    def eval(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path):
        height = self.eval("Math.min(document.documentElement.scrollHeight, 4000)")
        self.call("Emulation.setDeviceMetricsOverride", width=1280, height=int(height),
                  deviceScaleFactor=1, mobile=False)
        data = self.call("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        self.call("Emulation.clearDeviceMetricsOverride")

    def console_messages(self):
        """Log entries and console calls seen so far (a CSP violation is one)."""
        seen = []
        for event in self.events:
            if event.get("method") == "Log.entryAdded":
                seen.append(event["params"]["entry"].get("text", ""))
            elif event.get("method") == "Runtime.consoleAPICalled":
                seen.append(" ".join(str(a.get("value")) for a in event["params"]["args"]))
        return seen


def _connect(url):
    """A websocket client connection (RFC 6455) to a ws:// URL."""
    rest = url[len("ws://"):]
    address, path = rest.split("/", 1)
    host, port = address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=30)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /{path} HTTP/1.1\r\nHost: {address}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            raise RuntimeError("websocket handshake: connection closed")
        head += chunk
    if b" 101 " not in head.split(b"\r\n", 1)[0]:
        raise RuntimeError(f"websocket handshake refused: {head!r}")
    sock.settimeout(None)
    return sock


def _send(sock, text):
    payload = text.encode()
    header = bytes([0x81])
    if len(payload) < 126:
        header += bytes([0x80 | len(payload)])
    elif len(payload) < 65536:
        header += bytes([0x80 | 126]) + struct.pack(">H", len(payload))
    else:
        header += bytes([0x80 | 127]) + struct.pack(">Q", len(payload))
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(header + mask + masked)


def _exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise RuntimeError("websocket closed")
        data += chunk
    return data


def _receive(sock):
    """The next text message, reassembled from its frames."""
    message = b""
    while True:
        first, second = _exactly(sock, 2)
        length = second & 0x7F
        if length == 126:
            length = struct.unpack(">H", _exactly(sock, 2))[0]
        elif length == 127:
            length = struct.unpack(">Q", _exactly(sock, 8))[0]
        payload = _exactly(sock, length)
        opcode = first & 0x0F
        if opcode == 0x9:  # ping: answer, then read on
            _pong(sock, payload)
            continue
        if opcode == 0x8:
            raise RuntimeError("websocket closed by chromium")
        message += payload
        if first & 0x80:
            return message.decode()


def _pong(sock, payload):
    mask = os.urandom(4)
    sock.sendall(bytes([0x8A, 0x80 | len(payload)]) + mask
                 + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
