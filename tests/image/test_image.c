/* test_image: every image of tests/fixtures/images (made by
 * tools/make_image_corpus.py) decoded by mgl_image_load must equal, byte for
 * byte, the RGB Pillow decodes (Image.open(f).convert("RGB")), and every file
 * listed as refused must be refused with a one-line message naming it.
 * With file arguments it only decodes them (the valgrind driver). */
#include "mgl-image.h"

#include <glib.h>
#include <json-glib/json-glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;

#define FAIL(...)                                                                                                      \
    do {                                                                                                               \
        fprintf(stderr, "FAIL: " __VA_ARGS__);                                                                         \
        fputc('\n', stderr);                                                                                           \
        failures++;                                                                                                    \
    } while (0)

static void check_image(const char* dir, JsonObject* o) {
    const char* file = json_object_get_string_member(o, "file");
    const char* gold = json_object_get_string_member(o, "golden");
    int gw = (int)json_object_get_int_member(o, "width");
    int gh = (int)json_object_get_int_member(o, "height");
    char* path = g_build_filename(dir, file, NULL);
    char* gpath = g_build_filename(dir, gold, NULL);
    gchar* want = NULL;
    gsize wn = 0;
    if (!g_file_get_contents(gpath, &want, &wn, NULL)) {
        FAIL("%s: cannot read the golden", gpath);
        goto out;
    }
    uint8_t* rgb = NULL;
    int w = 0, h = 0;
    MglErr err = {0};
    if (mgl_image_load(path, &rgb, &w, &h, &err) != MGL_OK) {
        FAIL("%s: %s", file, err.msg);
        goto out;
    }
    if (w != gw || h != gh || wn != (gsize)gw * (gsize)gh * 3) {
        FAIL("%s: %dx%d, Pillow %dx%d", file, w, h, gw, gh);
    } else {
        size_t bad = 0, first = 0;
        for (size_t i = 0; i < wn; i++)
            if (rgb[i] != (uint8_t)want[i]) {
                if (!bad) first = i;
                bad++;
            }
        if (bad) {
            size_t px = first / 3;
            FAIL("%s (%s): %zu of %zu bytes differ; first at x=%zu y=%zu channel %zu: %u, Pillow %u", file,
                 json_object_get_string_member(o, "what"), bad, (size_t)wn, px % (size_t)w, px / (size_t)w, first % 3,
                 rgb[first], (uint8_t)want[first]);
        } else {
            printf("ok   %-32s %3dx%-3d %s\n", file, w, h, json_object_get_string_member(o, "what"));
        }
    }
    free(rgb);
out:
    g_free(want);
    g_free(path);
    g_free(gpath);
}

static void check_refused(const char* dir, JsonObject* o) {
    const char* file = json_object_get_string_member(o, "file");
    char* path = g_build_filename(dir, file, NULL);
    uint8_t* rgb = NULL;
    int w = 0, h = 0;
    MglErr err = {0};
    MglStatus st = mgl_image_load(path, &rgb, &w, &h, &err);
    if (st == MGL_OK) {
        FAIL("%s (%s): decoded, expected a refusal", file, json_object_get_string_member(o, "what"));
        free(rgb);
    } else if (!strstr(err.msg, path) || strchr(err.msg, '\n') || rgb) {
        FAIL("%s: the message must be one line naming the file: '%s'", file, err.msg);
    } else {
        printf("ok   %-32s refused: %s\n", file, err.msg);
    }
    g_free(path);
}

int main(int argc, char** argv) {
    if (argc > 1) {
        /* driver: decode the named files, report, never compare; --raw OUT first: also write the
         * last decoded image's RGB bytes to OUT */
        const char* raw_out = NULL;
        int first = 1;
        if (argc > 3 && !strcmp(argv[1], "--raw")) raw_out = argv[2], first = 3;
        for (int i = first; i < argc; i++) {
            uint8_t* rgb = NULL;
            int w = 0, h = 0;
            MglErr err = {0};
            if (mgl_image_load(argv[i], &rgb, &w, &h, &err) == MGL_OK) {
                unsigned sum = 0;
                for (size_t k = 0; k < (size_t)w * (size_t)h * 3; k++) sum = sum * 31u + rgb[k];
                printf("%s: %dx%d %08x\n", argv[i], w, h, sum); /* reads every byte */
                if (raw_out) {
                    FILE* f = fopen(raw_out, "wb");
                    if (!f || fwrite(rgb, 3, (size_t)w * (size_t)h, f) != (size_t)w * (size_t)h) return 1;
                    fclose(f);
                }
                free(rgb);
            } else {
                printf("%s\n", err.msg);
            }
        }
        return 0;
    }
    const char* fx = getenv("MGL_FIXTURES");
    if (!fx) {
        fprintf(stderr, "MGL_FIXTURES not set\n");
        return 1;
    }
    char* dir = g_build_filename(fx, "images", NULL);
    char* man = g_build_filename(dir, "manifest.json", NULL);
    JsonParser* p = json_parser_new();
    GError* ge = NULL;
    if (!json_parser_load_from_file(p, man, &ge)) {
        fprintf(stderr, "FAIL: %s: %s\n", man, ge->message);
        return 1;
    }
    JsonObject* root = json_node_get_object(json_parser_get_root(p));
    printf("goldens from Pillow %s (libjpeg %s, zlib %s)\n", json_object_get_string_member(root, "pillow"),
           json_object_get_string_member(root, "libjpeg"), json_object_get_string_member(root, "zlib"));
    JsonArray* imgs = json_object_get_array_member(root, "images");
    JsonArray* bad = json_object_get_array_member(root, "refused");
    guint ni = json_array_get_length(imgs), nb = json_array_get_length(bad);
    for (guint i = 0; i < ni; i++) check_image(dir, json_array_get_object_element(imgs, i));
    for (guint i = 0; i < nb; i++) check_refused(dir, json_array_get_object_element(bad, i));

    /* not files at all */
    uint8_t* rgb = NULL;
    int w, h;
    MglErr err = {0};
    char* missing = g_build_filename(dir, "no-such-image.png", NULL);
    if (mgl_image_load(missing, &rgb, &w, &h, &err) == MGL_OK || !strstr(err.msg, missing))
        FAIL("missing file: '%s'", err.msg);
    if (mgl_image_load(dir, &rgb, &w, &h, &err) == MGL_OK || !strstr(err.msg, dir)) FAIL("a folder: '%s'", err.msg);
    g_free(missing);

    printf("%u images, %u refusals: %d failure(s)\n", ni, nb, failures);
    g_object_unref(p);
    g_free(man);
    g_free(dir);
    return failures ? 1 : 0;
}
