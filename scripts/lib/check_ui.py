"""The browser half of scripts/check-ui.sh: seeds a running postmand through its API, then uses
the dashboard in headless Chromium as a person would and checks what it shows. Exits 1 with
one line per failed check."""

import argparse
import base64
import http.client
import json
import os
import sys
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cdp import Browser  # noqa: E402

SCRIPT = "<script>document.title='pwned'</script>"
IMG = "<img src=x onerror=\"document.title='pwned'\">"

failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
        print(f"check-ui: FAILED: {what}")
    return ok


def api(args, method, path, body=None):
    request = urllib.request.Request(
        args.base + path, method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {args.token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def wait_for(what, probe, timeout=30):
    deadline = time.time() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.time() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


def webhook(args, name, path, attempts):
    return api(args, "POST", "/v1/webhooks", {
        "name": name, "url": args.receiver + path, "content_type": "application/json",
        "valid_status_codes": [200], "secret_token": "check-ui-secret", "active": True,
        "max_delivery_attempts": attempts, "delivery_attempt_timeout": 5,
        "retry_min_backoff": 1, "retry_max_backoff": 1})["id"]


def raw(args, method, path, body="", cookie=None):
    """One request without following redirects: (status, headers, body)."""
    parsed = urllib.parse.urlparse(args.base)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if cookie:
        headers["Cookie"] = cookie
    connection.request(method, path, body=body.encode(), headers=headers)
    response = connection.getresponse()
    return response.status, dict(response.getheaders()), response.read().decode()


def main():
    parser = argparse.ArgumentParser()
    for name in ["browser", "base", "receiver", "token", "work", "artefacts"]:
        parser.add_argument(f"--{name}", required=True)
    args = parser.parse_args()

    # Real data through the API: a webhook whose receiver answers 500 with the markers, one that
    # answers 200, and deliveries that the dispatchers send.
    hostile = webhook(args, f"Orders {SCRIPT}", "/hostile", 2)
    billing = webhook(args, "Billing", "/ok", 5)
    payload = json.dumps({"order": 42, "note": SCRIPT, "img": IMG})
    failing = api(args, "POST", "/v1/deliveries", {"webhook_id": hostile, "payload": payload})["id"]
    for n in range(6):
        api(args, "POST", "/v1/deliveries",
            {"webhook_id": billing, "payload": json.dumps({"invoice": n, "paid": True})})
    wait_for("the hostile delivery to fail",
             lambda: api(args, "GET", f"/v1/deliveries/{failing}")["status"] == "failed")
    wait_for("the other deliveries to succeed", lambda: len(api(
        args, "GET", f"/v1/deliveries?webhook_id={billing}&status=succeeded")["deliveries"]) == 6)

    shots = args.artefacts
    with Browser(args.browser, os.path.join(args.work, "profile"),
                 os.path.join(args.work, "chromium.log")) as browser:
        def page(path):
            browser.goto(args.base + path)
            return browser.eval("location.pathname + location.search")

        def text():
            return browser.eval("document.body.innerText")

        # Login: every page leads to the form first, and back to the page after it.
        at = page("/ui/webhooks")
        check(at == "/ui/login?next=%2Fui%2Fwebhooks", f"no session: /ui/webhooks led to {at}")
        browser.screenshot(os.path.join(shots, "login.png"))
        browser.submit("form.login", {"token": "not the token"})
        check("That is not the API token." in text(), "a wrong token is refused on the form")
        browser.submit("form.login", {"token": args.token})
        at = browser.eval("location.pathname")
        check(at == "/ui/webhooks", f"after logging in the browser is at {at}, not /ui/webhooks")
        cookie = browser.eval("document.cookie")
        check(cookie == "", f"the session cookie is HttpOnly, yet a script reads {cookie!r}")

        # Every page, with the data seeded above.
        page("/ui/")
        shown = text()
        check("Attempts per minute, last hour" in shown, "overview: the chart's heading")
        bars = browser.eval("document.querySelectorAll('svg.chart rect.ok, svg.chart rect.bad').length")
        check(bars > 0, f"overview: the attempts chart has {bars} bars")
        check(f"Orders {SCRIPT}" in shown, "overview: the failing webhook is listed, its name as text")
        check("succeeded" in shown and "failed" in shown, "overview: deliveries by status")
        browser.screenshot(os.path.join(shots, "overview.png"))
        browser.call("Emulation.setDeviceMetricsOverride", width=1200, height=760,
                     deviceScaleFactor=1, mobile=False)
        readme = browser.call("Page.captureScreenshot", format="png",
                              clip={"x": 0, "y": 0, "width": 1200, "height": 760, "scale": 1})
        browser.call("Emulation.clearDeviceMetricsOverride")
        with open(os.path.join(shots, "readme.png"), "wb") as f:
            f.write(base64.b64decode(readme["data"]))

        page("/ui/webhooks")
        shown = text()
        check("Billing" in shown and f"Orders {SCRIPT}" in shown, "webhooks: both listed")
        sparks = browser.eval("document.querySelectorAll('svg.spark').length")
        check(sparks == 2, f"webhooks: {sparks} sparklines, want 2")
        check("100%" in shown, "webhooks: Billing's success rate is 100%")
        browser.screenshot(os.path.join(shots, "webhooks.png"))

        page(f"/ui/webhooks/{billing}?status=succeeded")
        rows = browser.eval("document.querySelectorAll('table.deliveries tbody tr').length")
        check(rows == 6, f"webhook: {rows} succeeded deliveries listed, want 6")
        check("signed (the secret is not shown)" in text(), "webhook: signing, without the secret")
        check("check-ui-secret" not in browser.eval("document.documentElement.outerHTML"),
              "webhook: the secret is nowhere in the page")
        browser.screenshot(os.path.join(shots, "webhook.png"))

        page(f"/ui/webhooks/{hostile}")
        check(f"Orders {SCRIPT}" in browser.eval("document.querySelector('h1').innerText"),
              "webhook: the hostile name is shown as text")

        # The delivery with the markers: shown as text, and nothing ran.
        page(f"/ui/deliveries/{failing}")
        browser.eval("document.querySelectorAll('details').forEach(d => d.open = true)")
        payload_text = browser.eval("document.querySelector('pre.payload').innerText")
        check(SCRIPT in payload_text and IMG.replace('"', '\\"') in payload_text,
              f"delivery: the payload's markers as text: {payload_text}")
        dumps = browser.eval("[...document.querySelectorAll('pre.dump')].map(p => p.innerText).join('\\n')")
        check("X-Evil: " + SCRIPT in dumps, "delivery: the response's header markers as text")
        check(SCRIPT + IMG in dumps, "delivery: the response's body markers as text")
        scripts = browser.eval("[...document.scripts].map(s => s.outerHTML)")
        check(scripts == [], f"delivery: no script element in the DOM: {scripts}")
        images = browser.eval("[...document.images].map(i => i.outerHTML)")
        check(images == [], f"delivery: no img element in the DOM: {images}")
        title = browser.eval("document.title")
        check(title != "pwned" and title.startswith("Delivery "), f"delivery: a marker's script ran (title {title!r})")
        attempts_before = browser.eval("document.querySelectorAll('article.attempt').length")
        check(attempts_before == 2, f"delivery: {attempts_before} attempts listed, want 2")
        browser.screenshot(os.path.join(shots, "delivery.png"))

        # The retry button, pressed in the browser: the form posts with the page's CSRF token,
        # and the delivery goes back to the queue and is sent again.
        browser.submit(f"form[action='/ui/deliveries/{failing}/retry']")
        at = browser.eval("location.pathname + location.search")
        check(at == f"/ui/deliveries/{failing}?done=requeued", f"retry led to {at}")
        check("Sent back to the queue" in text(), "retry: the notice")
        attempts = wait_for("the retried delivery's new attempts", lambda: (
            lambda n: n if n > 2 else None)(len(api(
                args, "GET", f"/v1/delivery-attempts?delivery_id={failing}")["delivery_attempts"])))
        check(attempts > 2, f"retry: {attempts} attempts after the retry")
        browser.screenshot(os.path.join(shots, "retried.png"))

        # Find by id, from the search box of every page.
        page("/ui/")
        browser.submit("form.find", {"id": failing})
        at = browser.eval("location.pathname")
        check(at == f"/ui/deliveries/{failing}", f"find: led to {at}")

        # A CSP violation would mean something tried to run inline: there must be none.
        violations = [m for m in browser.console_messages() if "Content Security Policy" in m]
        check(not violations, f"no CSP violation in the console: {violations}")

        # Log out: back to the form, and pages need the token again.
        browser.submit("form.logout")
        check(browser.eval("location.pathname") == "/ui/login", "log out leads to the form")
        at = page("/ui/")
        check(at.startswith("/ui/login"), f"after logging out /ui/ led to {at}")

    # A POST without the CSRF token, from a client holding a valid session: 403, nothing done.
    status, headers, _ = raw(args, "POST", "/ui/login", f"token={urllib.parse.quote(args.token)}")
    session = headers.get("Set-Cookie", "").split(";")[0]
    check(status == 303 and session.startswith("postmand_ui_session="), "login over plain HTTP")
    before = api(args, "GET", f"/v1/webhooks/{billing}")["active"]
    status, _, body = raw(args, "POST", f"/ui/webhooks/{billing}/deactivate", "", session)
    check(status == 403 and "CSRF token" in body, f"a POST without a CSRF token: {status}")
    check(api(args, "GET", f"/v1/webhooks/{billing}")["active"] == before, "the refused POST changed nothing")

    if failures:
        sys.exit(1)
    pngs = sorted(f for f in os.listdir(shots) if f.endswith(".png"))
    print(f"check-ui: ok, Chromium logged in, rendered every page with real data, showed the "
          f"markers as text with no script run, re-queued a delivery with its retry button, "
          f"logged out; a POST without CSRF token was refused. Screenshots: {shots}/ {pngs}")


if __name__ == "__main__":
    main()
