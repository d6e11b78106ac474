#!/usr/bin/env python3
"""Drives the manager's dashboard in real headless Chromium, over the Chrome DevTools
Protocol on a pipe (`--remote-debugging-pipe`: JSON messages ending in NUL on fds 3 and 4),
so nothing but Python's standard library and Debian's `chromium` is needed.

Usage: dashboard_cdp.py CHROMIUM BASE_URL TOKEN PROJECT_DIR NAME COLOUR OUT_DIR

The scenario, as a person would do it, with JavaScript on (htmx runs under the pages' CSP):
log in with the token URL, create a session with the form (backend bwrap, network none),
see its page (the live picture shows COLOUR, the log and the metrics arrive through htmx),
go back to the list and see its thumbnail (an <img> whose PNG loaded and shows COLOUR),
open its page again and press Stop. A full-page PNG of each step goes to OUT_DIR. Fails
(exit 1, the reason on stderr) on any Content-Security-Policy violation, console error or
uncaught exception. Prints a JSON summary on stdout.

Chromium runs with its sandbox unless this runs as root (then --no-sandbox: Chromium
refuses root otherwise); it is a test client that only loads the manager's own pages.
"""

import base64
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time

chromium, base, token, project_dir, name, colour, out_dir = sys.argv[1:8]
want_rgb = int(colour.lstrip("#"), 16)
STEP = 60.0  # seconds any one step may take


def log(msg):
    print(f"dashboard: {msg}", file=sys.stderr, flush=True)


class Fail(Exception):
    pass


class Browser:
    def __init__(self, profile):
        to_browser_r, self.to_browser = os.pipe()
        self.from_browser, from_browser_w = os.pipe()

        def fds():
            # Chromium reads commands on fd 3 and writes answers on fd 4. (dup first so
            # that dup2 never gets the same number, which would keep close-on-exec.)
            a, b = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        argv = [
            chromium,
            "--headless",
            "--remote-debugging-pipe",
            f"--user-data-dir={profile}",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--no-proxy-server",
            "--window-size=1280,900",
        ]
        if os.geteuid() == 0:
            argv.append("--no-sandbox")
        argv.append("about:blank")
        self.stderr = open(os.path.join(profile, "chromium.log"), "wb")
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self.stderr,
            stderr=self.stderr,
            close_fds=False,
            preexec_fn=fds,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.seq = 0
        self.inbox = queue.Queue()
        self.events = []
        threading.Thread(target=self._read, daemon=True).start()
        self.session = None

    def _read(self):
        buf = b""
        while True:
            chunk = os.read(self.from_browser, 1 << 16)
            if not chunk:
                self.inbox.put(None)
                return
            buf += chunk
            while b"\0" in buf:
                msg, buf = buf.split(b"\0", 1)
                self.inbox.put(json.loads(msg))

    def _next(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise Fail("Chromium did not answer in time")
        try:
            m = self.inbox.get(timeout=left)
        except queue.Empty:
            raise Fail("Chromium did not answer in time")
        if m is None:
            raise Fail("Chromium closed its pipe (see chromium.log)")
        return m

    def call(self, method, params=None, session=True):
        self.seq += 1
        msg = {"id": self.seq, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self.to_browser, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + STEP
        while True:
            m = self._next(deadline)
            if m.get("id") == self.seq:
                if "error" in m:
                    raise Fail(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def pump(self):
        """Takes the events that arrived meanwhile."""
        while True:
            try:
                m = self.inbox.get_nowait()
            except queue.Empty:
                return
            if m is None:
                raise Fail("Chromium closed its pipe (see chromium.log)")
            self.events.append(m)

    def eval(self, expr):
        r = self.call(
            "Runtime.evaluate",
            {"expression": expr, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in r:
            raise Fail(f"evaluating {expr[:60]}…: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait(self, what, expr, limit=STEP):
        """Polls `expr` until it is truthy (a DOM node comes back as {}: test with `!!`)."""
        end = time.monotonic() + limit
        while True:
            v = self.eval(expr)
            if v:
                return v
            if time.monotonic() > end:
                raise Fail(f"timed out waiting for {what} (on {self.eval('location.href')})")
            time.sleep(0.2)

    def loads(self):
        self.pump()
        return sum(1 for e in self.events if e.get("method") == "Page.loadEventFired")

    def wait_load(self, before, what):
        end = time.monotonic() + STEP
        while self.loads() <= before:
            if time.monotonic() > end:
                raise Fail(f"timed out waiting for {what} to load")
            time.sleep(0.05)

    def click(self, selector, what):
        """A real mouse click in the middle of the element (scrolled into view)."""
        xy = self.eval(
            f"""(() => {{ const e = document.querySelector({json.dumps(selector)});
            if (!e) return null; e.scrollIntoView({{block: 'center'}});
            const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()"""
        )
        if not xy:
            raise Fail(f"no {what} ({selector}) on {self.eval('location.href')}")
        x, y = xy
        for t in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call(
                "Input.dispatchMouseEvent",
                {"type": t, "x": x, "y": y, "button": "left", "clickCount": 1},
            )

    def type_into(self, selector, text):
        self.eval(f"document.querySelector({json.dumps(selector)}).focus()")
        self.call("Input.insertText", {"text": text})

    def shot(self, file):
        m = self.call("Page.getLayoutMetrics")
        size = m["cssContentSize"]
        png = self.call(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
            },
        )["data"]
        path = os.path.join(out_dir, file)
        with open(path, "wb") as f:
            f.write(base64.b64decode(png))
        log(f"saved {path}")

    def close(self):
        try:
            self.call("Browser.close", session=False)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# The picture of an <img> (same origin: the canvas is not tainted): its size, source and the
# colour of its first pixel; null until it has loaded.
IMG = """(sel => { const i = document.querySelector(sel);
  if (!i || !i.complete || i.naturalWidth === 0) return null;
  const c = document.createElement('canvas'); c.width = i.naturalWidth; c.height = i.naturalHeight;
  const g = c.getContext('2d'); g.drawImage(i, 0, 0); const d = g.getImageData(0, 0, 1, 1).data;
  return {src: i.getAttribute('src'), w: i.naturalWidth, h: i.naturalHeight, rgb: (d[0] << 16) | (d[1] << 8) | d[2]};
})"""

# Counts the page's CSP violations (the listener is the debugger's, so the CSP allows it).
CSP_WATCH = """window.__csp = []; document.addEventListener('securitypolicyviolation',
  e => window.__csp.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline')));"""


def picture(b, sel, what):
    img = b.wait(what, f"(() => {{ const v = {IMG}({json.dumps(sel)}); return v && v.rgb === {want_rgb} ? v : null; }})()")
    log(f"{what}: {img['w']}x{img['h']} from {img['src']}")
    return img


def htmx_ready(b):
    return b.wait(
        "htmx to run with the dashboard's config",
        "window.htmx && htmx.config.allowEval === false && htmx.config.selfRequestsOnly === true",
    )


def run(b):
    r = b.call("Target.getTargets", session=False)
    page = next(t for t in r["targetInfos"] if t["type"] == "page")
    b.session = b.call(
        "Target.attachToTarget", {"targetId": page["targetId"], "flatten": True}, session=False
    )["sessionId"]
    for d in ("Page.enable", "Runtime.enable", "Log.enable", "Network.enable"):
        b.call(d)
    b.call("Page.addScriptToEvaluateOnNewDocument", {"source": CSP_WATCH})
    csp_seen = []

    def collect_csp():
        v = b.eval("window.__csp || []")
        csp_seen.extend(v)

    # 1. The token URL sets the cookie and lands on the list.
    n = b.loads()
    b.call("Page.navigate", {"url": f"{base}/login?token={token}"})
    b.wait_load(n, "the login URL")
    path = b.eval("location.pathname")
    if path != "/":
        raise Fail(f"the login URL led to {path}, not /: {b.eval('document.body.innerText')[:300]}")
    htmx_ready(b)
    b.wait("the system metrics (htmx: /ui/system)", "!!document.querySelector('header dl.metrics')")
    b.shot("1-sessions-empty.png")

    # 2. The create form, typed and clicked.
    b.type_into("form.create input[name=name]", name)
    b.type_into("form.create input[name=project_dir]", project_dir)
    ok = b.eval(
        """(() => { const f = document.querySelector('form.create');
        if (![...f.backend.options].some(o => o.value === 'bwrap')) return false;
        f.backend.value = 'bwrap'; f.network.value = 'none'; return true; })()"""
    )
    if not ok:
        raise Fail("the backend list has no bwrap")
    b.shot("2-create-form.png")
    collect_csp()
    n = b.loads()
    b.click("form.create button[type=submit]", "Create button")
    b.wait_load(n, "the created session's page")
    path = b.eval("location.pathname")
    if not path.startswith("/sandboxes/"):
        raise Fail(f"Create led to {path}: {b.eval('document.body.innerText')[:500]}")
    sid = path.rsplit("/", 1)[1]
    log(f"created session {sid}")
    htmx_ready(b)
    b.wait("the running badge", "!!document.querySelector('.detail .badge.running')")
    # Filled only by htmx (hx-trigger load/every): the picture, the log, the metrics.
    picture(b, ".detail section[aria-label=Screen] img", "the session's picture")
    b.wait("the log (htmx: …/log)", "document.querySelector('pre.log').textContent.includes('drawn')")
    b.wait("the agent metrics (htmx: …/metrics)", "!!document.querySelector('.grid2 dl.metrics')")
    b.shot("3-session.png")
    collect_csp()

    # 3. Back to the list: the card and its thumbnail, a PNG that loaded and shows the colour.
    n = b.loads()
    b.click("header h1 a", "the dashboard's title link")
    b.wait_load(n, "the list")
    htmx_ready(b)
    b.wait("the session's card", f"!!document.querySelector('#sessions a[href=\"/sandboxes/{sid}\"]')")
    card = f"#sessions li.card:has(a[href=\"/sandboxes/{sid}\"]) img"
    thumb = picture(b, card, "the thumbnail")
    if not thumb["src"].startswith(f"/api/sandboxes/{sid}/screenshot?v="):
        raise Fail(f"the thumbnail's URL is {thumb['src']}")
    # The picture arrived as a PNG (the browser's view of the response).
    b.pump()
    pngs = [
        e["params"]["response"]
        for e in b.events
        if e.get("method") == "Network.responseReceived"
        and "/screenshot" in e["params"]["response"]["url"]
    ]
    if not any(r["status"] == 200 and r["mimeType"] == "image/png" for r in pngs):
        raise Fail(f"no screenshot response was a 200 image/png: {pngs}")
    # htmx polls the list (every 5 s): one more /ui/sessions request comes.
    def polls():
        b.pump()
        return sum(
            1
            for e in b.events
            if e.get("method") == "Network.requestWillBeSent"
            and e["params"]["request"]["url"].endswith("/ui/sessions")
        )

    p = polls()
    end = time.monotonic() + 15
    while polls() <= p:
        if time.monotonic() > end:
            raise Fail("htmx did not poll /ui/sessions within 15 s")
        time.sleep(0.2)
    picture(b, card, "the thumbnail after a poll")
    b.shot("4-sessions-thumbnail.png")
    collect_csp()

    # 4. Its page again, and Stop.
    n = b.loads()
    b.click(f"#sessions a[href=\"/sandboxes/{sid}\"]", "the session's link")
    b.wait_load(n, "the session's page")
    htmx_ready(b)
    picture(b, ".detail section[aria-label=Screen] img", "the session's picture")
    collect_csp()
    n = b.loads()
    b.click(f"form[action=\"/sandboxes/{sid}/stop\"] button", "Stop button")
    b.wait_load(n, "the page after Stop")
    b.wait("the stopped badge", "!!document.querySelector('.detail .badge.stopped')")
    if b.eval(f"!!document.querySelector('form[action=\"/sandboxes/{sid}/stop\"]')"):
        raise Fail("the Stop button is still there after Stop")
    b.wait("the log after Stop (htmx)", "document.querySelector('pre.log').textContent.includes('drawn')")
    b.shot("5-stopped.png")
    collect_csp()

    # The watch works: an inline script (refused by the CSP) is counted.
    b.pump()
    before_control = len(b.events)
    b.eval(
        "(() => { const s = document.createElement('script'); s.textContent = 'window.__inline = 1';"
        " document.body.appendChild(s); })()"
    )
    control = b.wait("the control violation to be reported", "window.__csp.length")
    if b.eval("window.__inline === 1"):
        raise Fail("an inline script ran: the CSP is not in force")

    # Console: nothing logged as an error, no uncaught exception, no CSP message.
    problems = []
    for e in b.events[:before_control]:
        m, p = e.get("method"), e.get("params", {})
        if m == "Log.entryAdded" and p["entry"]["level"] in ("error", "warning"):
            problems.append(f"{p['entry']['source']}: {p['entry']['text']} {p['entry'].get('url', '')}")
        elif m == "Runtime.consoleAPICalled" and p["type"] in ("error", "warning", "assert"):
            problems.append("console." + p["type"] + ": " + " ".join(str(a.get("value", a.get("description"))) for a in p["args"]))
        elif m == "Runtime.exceptionThrown":
            problems.append(f"exception: {p['exceptionDetails']}")
    if csp_seen:
        raise Fail(f"CSP violations while using the dashboard: {csp_seen}")
    if problems:
        raise Fail("console problems:\n" + "\n".join(problems))
    requests = sorted(
        {
            e["params"]["request"]["url"].replace(base, "").split("?")[0]
            for e in b.events
            if e.get("method") == "Network.requestWillBeSent"
        }
    )
    return {"session": sid, "thumbnail": thumb, "csp_control": control, "requests": requests}


def main():
    os.makedirs(out_dir, exist_ok=True)
    profile = tempfile.mkdtemp(prefix="wrapix-chromium-")
    b = Browser(profile)
    try:
        summary = run(b)
    except Fail as e:
        try:
            b.shot("failed.png")
        except Exception:
            pass
        log(f"FAILED: {e}")
        with open(os.path.join(profile, "chromium.log"), "rb") as f:
            tail = f.read()[-3000:].decode("utf-8", "replace")
        log(f"chromium.log (end):\n{tail}")
        b.close()
        sys.exit(1)
    b.close()
    shutil.rmtree(profile, ignore_errors=True)
    print(json.dumps(summary))


main()
