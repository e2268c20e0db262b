#!/usr/bin/python3
"""The result meta from Python through GObject introspection (GstMgllava-1.0.typelib):
a pad probe after mgllavafilter reads every field of GstMgllavaResultMeta with
GstMgllava.buffer_get_mgllava_result_meta(buf) and the iterator, and they equal the
mgllava-result bus messages; to_structure / result_meta_from_structure round-trip.

  gi_meta.py MODEL_DIR     (GI_TYPELIB_PATH and LD_LIBRARY_PATH: the build's gst/)
Exit 77 without python3-gi / the typelib.
"""
import sys

try:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstMgllava", "1.0")
    from gi.repository import Gst, GstMgllava
except (ImportError, ValueError) as e:
    print(f"SKIP: {e}")
    sys.exit(77)

FIELDS = ["text", "prompt", "source_pts", "source_frame", "n_tokens", "n_objects", "latency_ms",
          "preprocess_ms", "vision_ms", "prefill_ms", "decode_ms"]


def main():
    model = sys.argv[1]
    Gst.init(None)
    p = Gst.parse_launch(f"mgllavascenesrc num-buffers=16 ! mgllavablobdetect ! mgllavafilter "
                         f"model={model} interval=5 max-new-tokens=4 ! fakesink name=sink")
    seen, errors = [], []

    def probe(pad, info):
        buf = info.get_buffer()
        m = GstMgllava.buffer_get_mgllava_result_meta(buf)
        state, n = None, 0
        while True:
            it, state = GstMgllava.buffer_iterate_mgllava_result_meta(buf, state)
            if it is None:
                break
            n += 1
        if m is None:
            if n:
                errors.append("the iterator found a meta the getter did not")
            return Gst.PadProbeReturn.OK
        if n != 1:
            errors.append(f"{n} metas by the iterator, 1 expected")
        row = {f: getattr(m, f) for f in FIELDS}
        if not isinstance(row["text"], str) or not row["text"]:
            errors.append(f"text {row['text']!r}")
        s = m.to_structure()
        ok, back = GstMgllava.result_meta_from_structure(s)
        if not ok or any(getattr(back, f) != row[f] for f in FIELDS):
            errors.append("to_structure / from_structure do not round-trip")
        seen.append(row)
        return Gst.PadProbeReturn.OK

    p.get_by_name("sink").get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, probe)
    bus = p.get_bus()
    posted = []
    p.set_state(Gst.State.PLAYING)
    while True:
        msg = bus.timed_pop(60 * Gst.SECOND)
        if msg is None or msg.type in (Gst.MessageType.EOS, Gst.MessageType.ERROR):
            if msg is None or msg.type == Gst.MessageType.ERROR:
                errors.append(f"pipeline: {msg.parse_error()[0].message if msg else 'timeout'}")
            break
        s = msg.get_structure()
        if msg.type == Gst.MessageType.ELEMENT and s.get_name() == "mgllava-result":
            posted.append({f: s.get_value(f.replace("_", "-")) for f in FIELDS})
    p.set_state(Gst.State.NULL)

    if len(seen) != 4:
        errors.append(f"{len(seen)} answers seen in the probe, 4 expected (frames 0, 5, 10, 15)")
    if [r["source_frame"] for r in seen] != [0, 5, 10, 15]:
        errors.append(f"source frames {[r['source_frame'] for r in seen]}")
    if seen != posted:
        errors.append(f"probe fields differ from the bus messages:\n  {seen}\n  {posted}")
    for e in errors:
        print("FAIL " + e)
    if not errors:
        r = seen[0]
        print(f"ok   {len(seen)} answers read from Python: text={r['text']!r} n_tokens={r['n_tokens']} "
              f"latency_ms={r['latency_ms']:.1f} vision_ms={r['vision_ms']:.1f}, equal to the bus messages")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
