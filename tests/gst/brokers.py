#!/usr/bin/python3
"""mgllavapublish against real brokers on loopback (mosquitto, redis-server), started here on free
ports, received with their command-line clients (mosquitto_sub, redis-cli).

  brokers.py [MODEL_DIR]

MQTT
  mqtt-basic      200 frames (detections only, skip-empty=false), QoS 1: a subscriber gets exactly
                  200 messages, frames 0..199 in order, every one valid against the schema
  mqtt-answers    the demo model's answers (mgllavablobdetect ! mgllavafilter), format=dlstreamer:
                  every answered frame arrives with its text
  mqtt-restart    a live 30 fps source for 6 s, QoS 1; the broker (persistence true) is stopped
                  after 1.5 s and started again 1 s later; the subscriber (fixed client id,
                  clean_session=false, QoS 1) gets every frame (duplicates allowed, none missing),
                  the element reconnected (stats.reconnects >= 1) and warned once
  mqtt-late       no broker at start: a warning, the stream keeps flowing at its rate, and every
                  frame arrives once the broker appears
Redis
  redis-basic     200 frames; XRANGE returns exactly 200 entries, frames 0..199 in order
  redis-restart   a live source; redis-server (appendonly, fsync always) stopped and restarted
                  mid-stream: XRANGE has every frame, in order
  redis-overflow  no server, max-queue=10, 50 frames: the pipeline is not slowed, 40 drops
                  counted (drop-oldest), a warning; when the server appears the 10 newest frames
                  (40..49) are delivered before the EOS goes on
Exit 77 when neither mosquitto nor redis-server is installed (a part whose broker is missing is
skipped and said so).
"""
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

try:
    import gi

    gi.require_version("Gst", "1.0")
    from gi.repository import Gst
    import jsonschema  # noqa: F401  (check_json needs it)
except (ImportError, ValueError) as e:
    print(f"SKIP: {e} (python3-gi, gir1.2-gstreamer-1.0, python3-jsonschema)")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import check_json  # noqa: E402

TMP = tempfile.mkdtemp(prefix="mgl-brokers-")
FAILS = []
PROCS = []


def ok(msg):
    print(f"ok   {msg}", flush=True)


def fail(msg):
    print(f"FAIL {msg}", flush=True)
    FAILS.append(msg)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def spawn(args, log):
    p = subprocess.Popen(args, stdout=open(log, "ab"), stderr=subprocess.STDOUT)
    PROCS.append(p)
    return p


def stop(p, sig=signal.SIGTERM):
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


class Mosquitto:
    def __init__(self, name):
        self.dir = os.path.join(TMP, name)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        with open(self.conf, "w") as f:
            f.write(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                    f"persistence true\npersistence_location {self.dir}/\n"
                    "max_queued_messages 100000\n"
                    # as root, mosquitto would switch to its own user, which cannot write here
                    f"user {getpass.getuser()}\n")
        self.proc = None

    def start(self):
        self.proc = spawn(["mosquitto", "-c", self.conf], os.path.join(self.dir, "broker.log"))
        if not wait_port(self.port):
            raise RuntimeError("mosquitto did not start")

    def stop(self):
        stop(self.proc)


class Subscriber:
    """mosquitto_sub with a fixed client id, clean_session=false, QoS 1, one message a line."""

    def __init__(self, broker, topic, client_id):
        self.out = os.path.join(broker.dir, f"sub-{client_id}.txt")
        self.proc = spawn(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-t", topic,
                           "-q", "1", "-c", "-i", client_id], self.out)
        time.sleep(0.5)

    def lines(self):
        with open(self.out, encoding="utf-8", errors="replace") as f:
            return [l for l in f.read().splitlines() if l.startswith("{")]

    def wait(self, n, timeout=20.0):
        end = time.time() + timeout
        while time.time() < end and len(self.lines()) < n:
            time.sleep(0.1)
        return self.lines()

    def stop(self):
        stop(self.proc)


class Redis:
    def __init__(self, name, aof=False):
        self.dir = os.path.join(TMP, name)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                     "--dir", self.dir, "--save", ""]
        self.args += ["--appendonly", "yes", "--appendfsync", "always"] if aof else ["--appendonly", "no"]
        self.proc = None

    def start(self):
        self.proc = spawn(self.args, os.path.join(self.dir, "redis.log"))
        if not wait_port(self.port):
            raise RuntimeError("redis-server did not start")

    def stop(self):
        stop(self.proc)

    def xrange(self, key):
        """the entries' JSON, in stream order (redis-cli prints id, field, value on lines)"""
        out = subprocess.run(["redis-cli", "-p", str(self.port), "--raw", "XRANGE", key, "-", "+"],
                             capture_output=True, text=True, timeout=30).stdout.splitlines()
        return [l for l in out if l.startswith("{")]


class Pipeline:
    """A pipeline run in this process: bus warnings and element messages recorded, the
    publisher's stats read at EOS and after stopping."""

    def __init__(self, desc):
        self.p = Gst.parse_launch(desc)
        self.pub = self.p.get_by_name("pub")
        self.warnings = []
        self.messages = []
        self.error = None
        self.stats_eos = None

    def run(self, timeout=60.0, during=None):
        bus = self.p.get_bus()
        self.p.set_state(Gst.State.PLAYING)
        t0 = time.time()
        th = None
        if during:
            th = threading.Thread(target=during)
            th.start()
        done = False
        while not done and time.time() - t0 < timeout:
            msg = bus.timed_pop(100 * Gst.MSECOND)
            if msg is None:
                continue
            if msg.type == Gst.MessageType.EOS:
                done = True
            elif msg.type == Gst.MessageType.ERROR:
                err, dbg = msg.parse_error()
                self.error = f"{err.message} ({dbg})"
                done = True
            elif msg.type == Gst.MessageType.WARNING:
                self.warnings.append(msg.parse_warning()[0].message)
            elif msg.type == Gst.MessageType.ELEMENT and msg.get_structure().get_name() == "mgllava-publish":
                s = msg.get_structure()
                self.messages.append((s.get_value("connected"), s.get_value("error")))
        self.elapsed = time.time() - t0
        if self.pub:
            self.stats_eos = as_dict(self.pub.get_property("stats"))
        self.p.set_state(Gst.State.NULL)
        if th:
            th.join()
        self.stats = as_dict(self.pub.get_property("stats")) if self.pub else None
        return done and self.error is None


def as_dict(s):
    return {s.nth_field_name(i): s.get_value(s.nth_field_name(i)) for i in range(s.n_fields())}


def frames_of(lines, fmt="mgllava"):
    out = []
    for l in lines:
        m = json.loads(l)
        out.append(m["frame"] if fmt == "mgllava" else m["mgllava"]["frame"])
    return out


def validate(lines, fmt, timings=False):
    path = os.path.join(TMP, f"validate-{time.time()}.jsonl")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return check_json.cmd_validate(fmt, path, 0, timings) == 0


SRC = "mgllavascenesrc num-buffers={n} {live} ! video/x-raw,width=320,height=240 ! mgllavablobdetect"


def mqtt_pub(broker, topic, extra=""):
    return (f"mgllavapublish name=pub method=mqtt address=127.0.0.1:{broker.port} topic={topic} "
            f"client-id=pub-{topic.replace('/', '-')} {extra}")


def test_mqtt_basic():
    b = Mosquitto("mqtt-basic")
    b.start()
    sub = Subscriber(b, "cams/basic", "sub-basic")
    pl = Pipeline(SRC.format(n=200, live="") + " ! " + mqtt_pub(b, "cams/basic", "qos=1 skip-empty=false")
                  + " ! fakesink")
    if not pl.run():
        fail(f"mqtt-basic: pipeline: {pl.error}")
    lines = sub.wait(200)
    time.sleep(0.5)
    lines = sub.lines()
    sub.stop()
    b.stop()
    frames = frames_of(lines)
    st = pl.stats
    if frames == list(range(200)) and validate(lines, "mgllava") and st["published"] == 200 \
            and st["dropped"] == 0 and st["enqueued"] == 200:
        ok("mqtt-basic: 200 messages, exactly once, in order, valid; stats published=200")
    else:
        fail(f"mqtt-basic: {len(frames)} messages (first {frames[:5]}), stats {st}")


def test_mqtt_answers(model):
    if not os.path.isfile(os.path.join(model, "mgllava.json")):
        print(f"skip mqtt-answers: no model at {model}")
        return
    b = Mosquitto("mqtt-answers")
    b.start()
    sub = Subscriber(b, "cams/answers", "sub-answers")
    pl = Pipeline(f"mgllavascenesrc num-buffers=60 ! mgllavablobdetect ! mgllavafilter model={model} "
                  "interval=15 ! " + mqtt_pub(b, "cams/answers", "format=dlstreamer timings=true source=cam-1")
                  + " ! fakesink")
    if not pl.run(timeout=180):
        fail(f"mqtt-answers: pipeline: {pl.error}")
    lines = sub.wait(4)
    time.sleep(0.3)
    lines = sub.lines()
    sub.stop()
    b.stop()
    msgs = [json.loads(l) for l in lines]
    texts = [o["mgllava"]["label"] for m in msgs for o in m.get("objects", []) if "mgllava" in o]
    frames = [m["mgllava"]["frame"] for m in msgs]
    if frames == [0, 15, 30, 45] and len(texts) == 4 and all(texts) and validate(lines, "dlstreamer", True) \
            and all(m["source"] == "cam-1" for m in msgs):
        ok(f"mqtt-answers: 4 answers (dlstreamer layout) e.g. {texts[0]!r}")
    else:
        fail(f"mqtt-answers: frames {frames}, texts {texts}")


def test_mqtt_restart():
    b = Mosquitto("mqtt-restart")
    b.start()
    sub = Subscriber(b, "cams/restart", "sub-restart")
    n = 180

    def outage():
        time.sleep(1.5)
        b.stop()
        time.sleep(1.0)
        b.start()

    pl = Pipeline(SRC.format(n=n, live="is-live=true") + " ! "
                  + mqtt_pub(b, "cams/restart", "qos=1 skip-empty=false max-reconnect-interval=500000000 "
                             "flush-timeout=15000000000") + " ! fakesink")
    if not pl.run(timeout=60, during=outage):
        fail(f"mqtt-restart: pipeline: {pl.error}")
    sub.wait(n, timeout=20)
    time.sleep(1.0)
    lines = sub.lines()
    sub.stop()
    b.stop()
    frames = frames_of(lines)
    missing = sorted(set(range(n)) - set(frames))
    dups = len(frames) - len(set(frames))
    st = pl.stats
    down = [m for m in pl.messages if not m[0]]
    warned = [w for w in pl.warnings if "No connection" in w]
    if not missing and st["reconnects"] >= 1 and down and len(warned) == 1 and st["dropped"] == 0 \
            and pl.elapsed < n / 30 + 8:
        ok(f"mqtt-restart: broker restarted mid-stream, all {n} frames delivered ({dups} duplicate(s)), "
           f"reconnects={st['reconnects']}, one warning, stream took {pl.elapsed:.1f} s")
    else:
        fail(f"mqtt-restart: missing {missing[:20]} ({len(missing)}), dups {dups}, warnings {pl.warnings}, "
             f"messages {pl.messages}, stats {st}, {pl.elapsed:.1f} s")


def test_mqtt_late():
    b = Mosquitto("mqtt-late")
    # the subscriber's session exists before the pipeline starts: start, subscribe, stop
    b.start()
    sub = Subscriber(b, "cams/late", "sub-late")
    b.stop()
    n = 90

    def appear():
        time.sleep(1.5)
        b.start()

    pl = Pipeline(SRC.format(n=n, live="is-live=true") + " ! "
                  + mqtt_pub(b, "cams/late", "qos=1 skip-empty=false max-reconnect-interval=300000000 "
                             "flush-timeout=15000000000") + " ! fakesink")
    if not pl.run(timeout=60, during=appear):
        fail(f"mqtt-late: pipeline: {pl.error}")
    sub.wait(n, timeout=20)
    time.sleep(0.5)
    lines = sub.lines()
    sub.stop()
    b.stop()
    frames = frames_of(lines)
    missing = sorted(set(range(n)) - set(frames))
    warned = [w for w in pl.warnings if "No connection" in w and "Connection refused" in w]
    if not missing and warned and pl.stats["published"] >= n:
        ok(f"mqtt-late: no broker at start (warned: {warned[0][:60]}...), all {n} frames delivered "
           "once it appeared")
    else:
        fail(f"mqtt-late: missing {missing[:20]} ({len(missing)}), warnings {pl.warnings}, "
             f"stats {pl.stats}")


def redis_pub(r, key, extra=""):
    return f"mgllavapublish name=pub method=redis address=127.0.0.1:{r.port} topic={key} {extra}"


def test_redis_basic():
    r = Redis("redis-basic")
    r.start()
    pl = Pipeline(SRC.format(n=200, live="") + " ! " + redis_pub(r, "mgl:basic", "skip-empty=false")
                  + " ! fakesink")
    if not pl.run():
        fail(f"redis-basic: pipeline: {pl.error}")
    lines = r.xrange("mgl:basic")
    r.stop()
    frames = frames_of(lines)
    if frames == list(range(200)) and validate(lines, "mgllava") and pl.stats["published"] == 200:
        ok("redis-basic: XRANGE has exactly 200 entries, frames 0..199 in order, valid")
    else:
        fail(f"redis-basic: {len(frames)} entries, first {frames[:5]}, stats {pl.stats}")


def test_redis_restart():
    r = Redis("redis-restart", aof=True)
    r.start()
    n = 150

    def outage():
        time.sleep(1.5)
        r.stop()
        time.sleep(1.0)
        r.start()

    pl = Pipeline(SRC.format(n=n, live="is-live=true") + " ! "
                  + redis_pub(r, "mgl:restart", "skip-empty=false max-reconnect-interval=300000000 "
                              "flush-timeout=15000000000") + " ! fakesink")
    if not pl.run(timeout=60, during=outage):
        fail(f"redis-restart: pipeline: {pl.error}")
    lines = r.xrange("mgl:restart")
    r.stop()
    frames = frames_of(lines)
    dedup = [f for i, f in enumerate(frames) if f not in frames[:i]]
    if dedup == list(range(n)) and pl.stats["reconnects"] >= 1:
        ok(f"redis-restart: server restarted mid-stream, XRANGE has all {n} frames in order "
           f"({len(frames) - len(dedup)} duplicate(s)), reconnects={pl.stats['reconnects']}")
    else:
        fail(f"redis-restart: {len(dedup)} distinct frames, first gap at "
             f"{next((i for i, f in enumerate(dedup) if f != i), None)}, stats {pl.stats}")


def test_redis_overflow():
    r = Redis("redis-overflow")

    def appear():
        time.sleep(1.5)
        r.start()

    pl = Pipeline(SRC.format(n=50, live="") + " ! "
                  + redis_pub(r, "mgl:overflow", "skip-empty=false max-queue=10 overflow=drop-oldest "
                              "max-reconnect-interval=300000000 flush-timeout=20000000000") + " ! fakesink")
    if not pl.run(timeout=60, during=appear):
        fail(f"redis-overflow: pipeline: {pl.error}")
    lines = r.xrange("mgl:overflow")
    r.stop()
    frames = frames_of(lines)
    st = pl.stats
    full = [w for w in pl.warnings if "queue full" in w]
    if frames == list(range(40, 50)) and st["dropped"] == 40 and st["published"] == 10 and full:
        ok("redis-overflow: max-queue=10, drop-oldest: 40 dropped and counted, one warning, the 10 newest "
           "delivered when the server appeared")
    else:
        fail(f"redis-overflow: frames {frames}, warnings {pl.warnings}, stats {st}")


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    model = args[0] if args else os.path.join(HERE, "..", "..", "models", "mgllava-demo")
    Gst.init(None)
    if not Gst.ElementFactory.find("mgllavapublish"):
        print("FAIL no mgllavapublish element")
        return 1
    have_mqtt = shutil.which("mosquitto") and shutil.which("mosquitto_sub")
    have_redis = shutil.which("redis-server") and shutil.which("redis-cli")
    if "--built-without-mqtt" in sys.argv:
        print("skip MQTT: this build has no libmosquitto (the element refuses method=mqtt)")
        have_mqtt = False
    if "--built-without-redis" in sys.argv:
        print("skip Redis: this build has no hiredis (the element refuses method=redis)")
        have_redis = False
    if not have_mqtt and not have_redis:
        print("SKIP: neither an MQTT nor a Redis broker and client library to test with")
        return 77
    try:
        if have_mqtt:
            test_mqtt_basic()
            test_mqtt_answers(model)
            test_mqtt_restart()
            test_mqtt_late()
        else:
            print("skip MQTT: no mosquitto / mosquitto_sub, or no libmosquitto in this build")
        if have_redis:
            test_redis_basic()
            test_redis_restart()
            test_redis_overflow()
        else:
            print("skip Redis: no redis-server / redis-cli, or no hiredis in this build")
    finally:
        for p in PROCS:
            if p.poll() is None:
                p.kill()
                p.wait()
        if not FAILS:
            shutil.rmtree(TMP, ignore_errors=True)
        else:
            print(f"logs in {TMP}")
    print(f"brokers: {len(FAILS)} failure(s)")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
