#!/usr/bin/python3
"""mgllavafilter's asynchronous load and its messages: GST_MESSAGE_PROGRESS (code "mgllava-load":
START, CONTINUE as it goes, then COMPLETE or ERROR) and the element message "mgllava-load" (stage
start/loading/done/failed, fraction rising from 0 to 1, what, path, device, seconds, shared,
error), for a model that loads, a second element sharing it, and a model that does not exist (with
its GST_ELEMENT_ERROR); start() returns before the model is loaded; a file stream (not live) waits
for the model, so every sampled frame is answered; going to NULL in the middle of loading returns
at once and never crashes.

  load_progress.py MODEL_DIR
Exit 77 without python3-gi.
"""
import sys
import time

try:
    import gi

    gi.require_version("Gst", "1.0")
    from gi.repository import Gst
except (ImportError, ValueError) as e:
    print(f"SKIP: {e}")
    sys.exit(77)


def run(desc):
    p = Gst.parse_launch(desc)
    bus = p.get_bus()
    p.set_state(Gst.State.PLAYING)
    events, error = [], None
    while True:
        msg = bus.timed_pop(60 * Gst.SECOND)
        if msg is None:
            error = "timeout"
            break
        if msg.type == Gst.MessageType.PROGRESS:
            t, code, text = msg.parse_progress()
            events.append(("progress", msg.src.get_name(), t.value_nick, code, text))
        elif msg.type == Gst.MessageType.ELEMENT and msg.get_structure().get_name() == "mgllava-load":
            s = msg.get_structure()
            events.append(("load", msg.src.get_name(), s.get_value("stage"), s.get_value("fraction"),
                           s.get_value("seconds"), s.get_value("shared"), s.get_value("error"),
                           s.get_value("what")))
        elif msg.type == Gst.MessageType.ERROR:
            error = msg.parse_error()[0].message
            break
        elif msg.type == Gst.MessageType.EOS:
            break
    p.set_state(Gst.State.NULL)
    return events, error


def main():
    model = sys.argv[1]
    Gst.init(None)
    fails = []

    ev, err = run(f"mgllavascenesrc num-buffers=2 ! mgllavafilter name=a model={model} ! fakesink "
                  f"mgllavascenesrc num-buffers=2 ! mgllavafilter name=b model={model} ! fakesink")
    for name in ("a", "b"):
        mine = [e for e in ev if e[1] == name]
        prog = [e[2] for e in mine if e[0] == "progress"]
        load = [e for e in mine if e[0] == "load"]
        fr = [e[3] for e in load]
        # START, then CONTINUE steps (the element that loads), then COMPLETE
        if err or not prog or prog[0] != "start" or prog[-1] != "complete" \
                or any(p != "continue" for p in prog[1:-1]) \
                or [e[2] for e in load if e[2] != "loading"] != ["start", "done"] \
                or fr[0] != 0.0 or fr[-1] != 1.0 or fr != sorted(fr) or not load[-1][4] >= 0:
            fails.append(f"element {name}: {mine} ({err})")
    steps = [e for e in ev if e[0] == "load" and e[2] == "loading"]
    if not any("reading weights" in e[7] for e in steps) or not all(0 < e[3] < 1 for e in steps):
        fails.append(f"the loading element's steps (fraction strictly between 0 and 1, weights read): {steps}")
    else:
        print(f"ok   {len(steps)} progress steps (both elements): " +
              ", ".join(f"{e[1]} {e[3]:.2f} {e[7]}" for e in steps))
    shared = [e[5] for e in ev if e[0] == "load" and e[2] == "done"]
    if sorted(shared) != [False, True]:
        fails.append(f"one element loads, the other shares: {shared}")
    if not fails:
        done = [e for e in ev if e[0] == "load" and e[2] == "done" and not e[5]][0]
        print(f"ok   load start/done messages (PROGRESS and mgllava-load), loaded in {done[4]:.2f} s, "
              "the second element shared it")

    ev, err = run("mgllavascenesrc num-buffers=2 ! mgllavafilter name=c model=/nonexistent/model ! fakesink")
    prog = [e[2] for e in ev if e[0] == "progress" and e[2] != "continue"]
    load = [e for e in ev if e[0] == "load" and e[2] != "loading"]
    if prog != ["start", "error"] or [e[2] for e in load] != ["start", "failed"] or not load[1][6] \
            or not err or "nonexistent" not in err:
        fails.append(f"failed load: {ev}, error {err!r}")
    else:
        print(f"ok   a missing model: PROGRESS error, mgllava-load failed ({load[1][6][:60]}...), and {err!r}")
    # start() returns before the load ends; a file stream waits for the model: every sampled
    # frame (0, 5, 10) answered
    p = Gst.parse_launch(f"mgllavascenesrc num-buffers=11 ! mgllavafilter name=f model={model} interval=5 "
                         "max-new-tokens=2 ! fakesink")
    t0 = time.monotonic()
    r = p.set_state(Gst.State.READY)
    r2 = p.get_by_name("f").set_state(Gst.State.PAUSED)  # start(): the load begins
    t_start = time.monotonic() - t0
    p.set_state(Gst.State.PLAYING)
    msg = p.get_bus().timed_pop_filtered(60 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
    st = p.get_by_name("f").get_property("stats")
    p.set_state(Gst.State.NULL)
    if r == Gst.StateChangeReturn.FAILURE or r2 == Gst.StateChangeReturn.FAILURE or msg is None \
            or msg.type != Gst.MessageType.EOS or st.get_value("results") != 3 or st.get_value("unloaded") != 0:
        fails.append(f"file stream while loading: {st.to_string() if st else None}, {msg.type if msg else None}")
    else:
        print(f"ok   start() returned in {t_start * 1000:.1f} ms; the file stream waited: 3/3 sampled answered")

    # going to NULL while the model loads: returns, no error, nothing left running (repeated)
    worst = 0.0
    for i in range(20):
        p = Gst.parse_launch(f"mgllavascenesrc ! mgllavafilter model={model} ! fakesink")
        p.set_state(Gst.State.PLAYING)
        time.sleep(0.001 * (i % 5))
        t0 = time.monotonic()
        r = p.set_state(Gst.State.NULL)
        worst = max(worst, time.monotonic() - t0)
        if r != Gst.StateChangeReturn.SUCCESS:
            fails.append(f"cycle {i}: going to NULL returned {r}")
    print(f"ok   20 PLAYING -> NULL cycles during the load, the slowest {worst * 1000:.0f} ms")
    for f in fails:
        print("FAIL " + f)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
