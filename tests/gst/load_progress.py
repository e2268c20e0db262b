#!/usr/bin/python3
"""mgllavafilter's load messages: GST_MESSAGE_PROGRESS (code "mgllava-load": START, then COMPLETE
or ERROR) and the element message "mgllava-load" (stage start/done/failed, fraction 0/1, path,
device, seconds, shared, error), for a model that loads, a second element sharing it, and a
model that does not exist (with its GST_ELEMENT_ERROR).

  load_progress.py MODEL_DIR
Exit 77 without python3-gi.
"""
import sys

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
                           s.get_value("seconds"), s.get_value("shared"), s.get_value("error")))
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
        if err or prog != ["start", "complete"] or [e[2] for e in load] != ["start", "done"] \
                or load[0][3] != 0.0 or load[1][3] != 1.0 or not load[1][4] >= 0:
            fails.append(f"element {name}: {mine} ({err})")
    shared = [e[5] for e in ev if e[0] == "load" and e[2] == "done"]
    if sorted(shared) != [False, True]:
        fails.append(f"one element loads, the other shares: {shared}")
    if not fails:
        done = [e for e in ev if e[0] == "load" and e[2] == "done" and not e[5]][0]
        print(f"ok   load start/done messages (PROGRESS and mgllava-load), loaded in {done[4]:.2f} s, "
              "the second element shared it")

    ev, err = run("mgllavascenesrc num-buffers=2 ! mgllavafilter name=c model=/nonexistent/model ! fakesink")
    prog = [e[2] for e in ev if e[0] == "progress"]
    load = [e for e in ev if e[0] == "load"]
    if prog != ["start", "error"] or [e[2] for e in load] != ["start", "failed"] or not load[1][6] \
            or not err or "nonexistent" not in err:
        fails.append(f"failed load: {ev}, error {err!r}")
    else:
        print(f"ok   a missing model: PROGRESS error, mgllava-load failed ({load[1][6][:60]}...), and {err!r}")
    for f in fails:
        print("FAIL " + f)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
