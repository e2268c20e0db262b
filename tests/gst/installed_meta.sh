#!/bin/bash
# The result-meta library as an application outside the tree sees it: `meson install` (headers,
# libraries, .pc, GIR and typelib) into a temporary DESTDIR, then
#   - a C program that includes <gst/mgllava/gstmgllavameta.h> (as GStreamer's own headers are
#     included) built with `pkg-config --cflags --libs gstreamer-mgllava-meta-1.0` adds and reads
#     a meta;
#   - Python loads GstMgllava-1.0 from the installed typelib and reads the same fields.
# Usage: installed_meta.sh BUILD_DIR
set -u
B=${1:?build dir}
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }

if ! meson install -C "$B" --destdir "$D" --no-rebuild --tags devel,runtime,typelib >"$D/install.log" 2>&1; then
    tail -5 "$D/install.log"
    echo "FAIL meson install"
    exit 1
fi
pc=$(find "$D" -name gstreamer-mgllava-meta-1.0.pc | head -1)
hdr=$(find "$D" -path '*/include/gstreamer-1.0/gst/mgllava/gstmgllavameta.h' | head -1)
[ -n "$pc" ] && ok "installed $(basename "$pc")" || bad "no .pc installed"
[ -n "$hdr" ] && ok "installed include/gstreamer-1.0/gst/mgllava/gstmgllavameta.h" || bad "header not installed"
[ $fails -eq 0 ] || exit 1

# the .pc as installed, its prefix moved into the DESTDIR (other packages' .pc files untouched)
prefix=$(sed -n 's/^prefix=//p' "$pc")
mkdir -p "$D/pc"
sed "s|^prefix=.*|prefix=$D$prefix|" "$pc" >"$D/pc/gstreamer-mgllava-meta-1.0.pc"
export PKG_CONFIG_PATH="$D/pc${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
cat >"$D/app.c" <<'C'
#include <gst/mgllava/gstmgllavameta.h>
#include <string.h>

int
main (void)
{
  GstBuffer *buf;
  GstMgllavaResultMeta *m;
  GstStructure *s;
  int rc;

  gst_init (NULL, NULL);
  buf = gst_buffer_new ();
  gst_buffer_add_mgllava_result_meta (buf, "a red circle", "Describe the image.", 0, 42);
  m = gst_buffer_get_mgllava_result_meta (buf);
  s = gst_mgllava_result_meta_to_structure (m);
  rc = !(m && strcmp (m->text, "a red circle") == 0 && m->source_frame == 42
      && gst_structure_has_name (s, "mgllava-result"));
  gst_structure_free (s);
  gst_buffer_unref (buf);
  return rc;
}
C
flags=$(pkg-config --cflags --libs gstreamer-mgllava-meta-1.0 2>&1) || { echo "$flags"; bad "pkg-config"; }
libdir=$(pkg-config --variable=libdir gstreamer-mgllava-meta-1.0)
if cc -o "$D/app" "$D/app.c" $flags 2>"$D/cc.log"; then
    if LD_LIBRARY_PATH="$libdir" "$D/app"; then
        ok "a C program with #include <gst/mgllava/gstmgllavameta.h> and pkg-config builds and reads a meta"
    else
        bad "the C program against the installed library"
    fi
else
    cat "$D/cc.log"
    bad "compiling against the installed header"
fi

PY=${MGL_PYTHON:-/usr/bin/python3}
[ -x "$PY" ] || PY=python3
typelib=$(find "$D" -name GstMgllava-1.0.typelib | head -1)
if [ -z "$typelib" ]; then
    echo "no typelib installed (built without gobject-introspection): Python part skipped"
elif ! "$PY" -c 'import gi' 2>/dev/null; then
    echo "no python3-gi: Python part skipped"
elif GI_TYPELIB_PATH=$(dirname "$typelib") LD_LIBRARY_PATH="$libdir" "$PY" - <<'PY'; then
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstMgllava", "1.0")
from gi.repository import Gst, GstMgllava
Gst.init(None)
b = Gst.Buffer.new()
m = GstMgllava.buffer_add_mgllava_result_meta(b, "a blue star", "Describe the image.", 5, 7)
g = GstMgllava.buffer_get_mgllava_result_meta(b)
assert (g.text, g.prompt, g.source_pts, g.source_frame) == ("a blue star", "Describe the image.", 5, 7), g.text
assert GstMgllava.result_meta_api_get_type().name == "GstMgllavaResultMetaAPI"
PY
    ok "Python reads the meta through the installed typelib ($(basename "$typelib"))"
else
    bad "Python with the installed typelib"
fi
[ $fails -eq 0 ]
