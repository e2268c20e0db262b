#!/usr/bin/python3
"""The live dashboard (pipelines/dashboard.sh) in headless Chromium, checked through its DOM.

  dashboard_check.py OUT_DIR

Starts pipelines/dashboard.sh (2 streams, the demo model, a caption every 2 s per stream), opens
the page it prints in headless Chromium driven over the DevTools protocol (python3-websocket), and
polls the DOM: a tile per stream, each with a thumbnail that loaded, and a caption (not the
"waiting" placeholder) within 10 s of the page opening; then at least 2 history entries with a
latency per stream. Saves OUT_DIR/dashboard.png (a screenshot) and OUT_DIR/dashboard-dom.json.
Exit 77 without chromium, mosquitto or python3-websocket.
"""
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
STREAMS = 2


def skip(why):
    print(f"SKIP: {why}")
    sys.exit(77)


try:
    import websocket
except ImportError:
    skip("python3-websocket is not installed")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if not CHROMIUM:
    skip("chromium is not installed")
if not shutil.which("mosquitto"):
    skip("mosquitto is not installed")
if not os.path.isfile(os.path.join(ROOT, "models", "mgllava-demo", "mgllava.json")):
    skip("no demo model in models/mgllava-demo")


class Cdp:
    def __init__(self, ws_url):
        self.ws = websocket.create_connection(ws_url, timeout=30)
        self.n = 0

    def call(self, method, **params):
        self.n += 1
        self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        while True:
            m = json.loads(self.ws.recv())
            if m.get("id") == self.n:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m["result"]

    def eval(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True)
        return r["result"].get("value")


STATE_JS = """(() => Array.from(document.querySelectorAll('.tile')).map(t => ({
  stream: t.dataset.stream,
  caption: t.querySelector('.caption').textContent,
  waiting: t.querySelector('.caption').classList.contains('waiting'),
  history: Array.from(t.querySelectorAll('.history li')).map(li => li.textContent),
  thumb: t.querySelector('img').naturalWidth,
  status: document.getElementById('status').textContent,
})))()"""


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp()
    os.makedirs(out, exist_ok=True)
    run = tempfile.mkdtemp(prefix="mgl-dash-")
    env = dict(os.environ, MGL_SKIP_APT="1", MGL_DASHBOARD_STREAMS=str(STREAMS), MGL_DASHBOARD_SECONDS="90",
               MGL_DASHBOARD_INTERVAL="2", MGL_DASHBOARD_DIR=run)
    dash = subprocess.Popen(["bash", os.path.join(ROOT, "pipelines", "dashboard.sh")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    chrome = None
    fails = []
    try:
        url = None
        t0 = time.time()
        while time.time() - t0 < 60 and url is None:
            line = dash.stdout.readline()
            if not line:
                break
            m = re.match(r"dashboard: (\S+)", line)
            if m:
                url = m.group(1)
        if not url:
            print("FAIL the dashboard script printed no address")
            return 1
        port = int(re.search(r"127\.0\.0\.1:(\d+)/", url).group(1))
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)

        profile = tempfile.mkdtemp(prefix="mgl-chromium-")
        dbg = subprocess.run([sys.executable, "-c", "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); "
                              "print(s.getsockname()[1])"], capture_output=True, text=True).stdout.strip()
        chrome = subprocess.Popen([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                                   "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                                   f"--remote-debugging-port={dbg}", "--remote-allow-origins=*",
                                   "--window-size=1200,900", "about:blank"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        target = None
        for _ in range(200):
            try:
                tabs = json.load(urllib.request.urlopen(f"http://127.0.0.1:{dbg}/json", timeout=1))
                target = next(t for t in tabs if t.get("type") == "page")
                break
            except (OSError, StopIteration, ValueError):
                time.sleep(0.1)
        if not target:
            print("FAIL chromium's DevTools endpoint did not come up")
            return 1
        cdp = Cdp(target["webSocketDebuggerUrl"])
        cdp.call("Page.enable")
        cdp.call("Emulation.setDeviceMetricsOverride", width=1200, height=900, deviceScaleFactor=1, mobile=False)
        opened = time.time()
        cdp.call("Page.navigate", url=url)

        first_caption = {}
        state = []
        while time.time() - opened < 40:
            state = cdp.eval(STATE_JS) or []
            for t in state:
                if not t["waiting"] and t["stream"] not in first_caption:
                    first_caption[t["stream"]] = time.time() - opened
            if len(state) == STREAMS and all(len(t["history"]) >= 2 and t["thumb"] > 0 for t in state):
                break
            time.sleep(0.25)

        shot = cdp.call("Page.captureScreenshot", format="png")
        with open(os.path.join(out, "dashboard.png"), "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        with open(os.path.join(out, "dashboard-dom.json"), "w") as f:
            json.dump(state, f, indent=1)

        streams = sorted(t["stream"] for t in state)
        if streams != [f"stream{i}" for i in range(STREAMS)]:
            fails.append(f"tiles {streams}")
        for t in state:
            when = first_caption.get(t["stream"])
            if when is None or when > 10:
                fails.append(f"{t['stream']}: first caption after {when} s (want <= 10 s)")
            if not t["caption"].strip() or t["waiting"]:
                fails.append(f"{t['stream']}: no caption")
            if len(t["history"]) < 2 or not all(re.match(r"#\d+ \d+ ms", h) for h in t["history"]):
                fails.append(f"{t['stream']}: history {t['history'][:3]}")
            if t["thumb"] <= 0:
                fails.append(f"{t['stream']}: no thumbnail")
        if state and not state[0]["status"].startswith("connected"):
            fails.append(f"status {state[0]['status']!r}")
        for f_ in fails:
            print("FAIL " + f_)
        if not fails:
            firsts = ", ".join(f"{k} {v:.1f} s" for k, v in sorted(first_caption.items()))
            print(f"ok   {STREAMS} tiles, thumbnails, captions within 10 s ({firsts}), history with latencies; "
                  f"e.g. {state[0]['caption']!r}")
            print(f"     screenshot {os.path.join(out, 'dashboard.png')}")
        return 1 if fails else 0
    finally:
        for p in (chrome, dash):
            if p and p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                    p.wait(10)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    os.killpg(p.pid, signal.SIGKILL)
        if not fails:
            shutil.rmtree(run, ignore_errors=True)
        else:
            print(f"run folder {run}")


if __name__ == "__main__":
    sys.exit(main())
