/* mgl-video.c: the official MG-LLaVA video path (spec section 11): a clip of
 * frames in time order, each with its own preprocessing and boxes, their
 * tokens concatenated at the "<video>" slot of the prompt. */
#include "mgl-model.h"
#include "mgl-ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const float k_mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
static const float k_std[3] = {0.26862954f, 0.26130258f, 0.27577711f};

static double now_ms(void) { return (double)g_get_monotonic_time() / 1000.0; }

void mgl_clip_sample_indices(size_t n_available, size_t n_frames, size_t* idx) {
    if (!idx) return;
    for (size_t i = 0; i < n_frames; i++) {
        /* np.linspace(0, n-1, k, dtype=int): start + i * step in double, truncated; the last is exactly n-1 */
        if (n_available == 0)
            idx[i] = 0;
        else if (n_frames == 1)
            idx[i] = 0;
        else if (i == n_frames - 1)
            idx[i] = n_available - 1;
        else
            idx[i] = (size_t)((double)i * ((double)(n_available - 1) / (double)(n_frames - 1)));
    }
}

/* ---- preprocessing (spec section 11: get_video_transform, decord branch, padding on) ---- */

MglStatus mgl_views_make_video(const MglImage* img, MglViews** out, MglErr* err) {
    *out = NULL;
    if (!img || !img->data) return mgl_err(err, MGL_E_INVALID, "frame: no pixels");
    const int w = img->width, h = img->height;
    if (w < 1 || h < 1) return mgl_err(err, MGL_E_INVALID, "frame: empty (%dx%d)", w, h);
    if (w > 16384 || h > 16384)
        return mgl_err(err, MGL_E_INVALID, "frame: %dx%d is larger than 16384 pixels a side", w, h);
    if (img->stride < 3 * w) return mgl_err(err, MGL_E_INVALID, "frame: stride %d is less than 3*width", img->stride);
    const int S = w > h ? w : h;
    const int top = (S - h) / 2, left = (S - w) / 2;
    const size_t n = (size_t)S * S;
    float* sq = malloc(sizeof(float) * 3 * n);
    MglViews* v = calloc(1, sizeof *v);
    float* a = malloc(sizeof(float) * 3 * MGL_AUX_SIZE * MGL_AUX_SIZE);
    float* l = malloc(sizeof(float) * 3 * 336 * 336);
    if (!sq || !v || !a || !l) {
        free(sq);
        free(v);
        free(a);
        free(l);
        return mgl_err(err, MGL_E_NOMEM, "frame: out of memory for a %dx%d canvas", S, S);
    }
    for (int c = 0; c < 3; c++) {
        float* o = sq + (size_t)c * n;
        /* padding_video fills with the float mean; NormalizeVideo then makes it (mean - mean) / std */
        const float pad = (k_mean[c] - k_mean[c]) / k_std[c];
        for (size_t i = 0; i < n; i++) o[i] = pad;
        for (int y = 0; y < h; y++) {
            const uint8_t* row = img->data + (size_t)y * (size_t)img->stride;
            float* dst = o + (size_t)(y + top) * S + left;
            /* x / 255.0 in float32, then (x - mean) / std in float32 */
            for (int x = 0; x < w; x++) dst[x] = ((float)row[3 * x + c] / 255.0f - k_mean[c]) / k_std[c];
        }
    }
    /* ShortSideScale on the square: F.interpolate bilinear, align_corners=False, no antialias; the
     * center crop of a square of side res is the identity */
    mgl_resize_bilinear_chw(sq, 3, S, S, MGL_AUX_SIZE, MGL_AUX_SIZE, a);
    mgl_resize_bilinear_chw(sq, 3, S, S, 336, 336, l);
    free(sq);
    v->x768 = a;
    v->x336 = l;
    v->width = w;
    v->height = h;
    v->refs = 1;
    *out = v;
    return MGL_OK;
}

/* ---- the prompt ---- */

/* INSTRUCTION.format(input = "<video>\n" + question), split at "<video>":
 * the first chunk encoded with the tokenizer's special tokens (the official
 * video eval calls tokenizer.encode(chunk) there), the second without. */
static MglStatus prompt_build_video(const MglTokenizer* tok, const MglTemplate* tmpl, const char* question,
                                    MglPrompt* out, MglErr* err) {
    memset(out, 0, sizeof *out);
    if (!g_utf8_validate(question, -1, NULL)) return mgl_err(err, MGL_E_INVALID, "prompt: question is not valid UTF-8");
    if (strstr(question, "<video>"))
        return mgl_err(err, MGL_E_INVALID,
                       "prompt: the question must not contain \"<video>\" (the clip's slot is added automatically)");
    const char* slot = strstr(tmpl->instruction, "{input}");
    if (!slot) return mgl_err(err, MGL_E_INVALID, "prompt: template %s has no {input}", tmpl->name);
    char* prompt = g_strdup_printf("%.*s<video>\n%s%s", (int)(slot - tmpl->instruction), tmpl->instruction, question,
                                   slot + strlen("{input}"));
    const char* cut = strstr(prompt, "<video>");
    int32_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    MglStatus st = mgl_tokenizer_encode(tok, prompt, (ptrdiff_t)(cut - prompt), true, &a, &na, err);
    if (st == MGL_OK) st = mgl_tokenizer_encode(tok, cut + strlen("<video>"), -1, false, &b, &nb, err);
    if (st == MGL_OK) {
        out->ids = malloc(sizeof(int32_t) * (na + nb + 1));
        if (!out->ids) st = mgl_err(err, MGL_E_NOMEM, "prompt: out of memory");
    }
    if (st == MGL_OK) {
        if (na) memcpy(out->ids, a, sizeof(int32_t) * na);
        if (nb) memcpy(out->ids + na, b, sizeof(int32_t) * nb);
        out->n_ids = na + nb;
        out->image_pos = na;
        out->has_image = true;
    }
    free(a);
    free(b);
    g_free(prompt);
    return st;
}

/* ---- the context check ---- */

static int64_t clip_text_tokens(const MglModel* m, const char* question, MglErr* err) {
    MglPrompt pr;
    if (prompt_build_video(m->tok, m->tmpl, question ? question : "", &pr, err) != MGL_OK) return -1;
    const int64_t n = (int64_t)pr.n_ids;
    mgl_prompt_clear(&pr);
    return n;
}

int mgl_clip_max_frames(const MglModel* m, int n_ctx, const char* question) {
    if (!m) return 0;
    const int64_t ctx = n_ctx > 0 ? n_ctx : m->n_ctx, P = m->w.n_patches;
    const int64_t text = clip_text_tokens(m, question, NULL);
    if (text < 0 || P <= 0) return 0;
    const int64_t room = ctx - text - 1;
    return room < P + 1 ? 0 : (int)(room / (P + 1));
}

MglStatus mgl_clip_check(const MglModel* m, int n_ctx, int n_frames, const char* question, MglErr* err) {
    if (!m) return mgl_err(err, MGL_E_INVALID, "clip: no model");
    const int64_t ctx = n_ctx > 0 ? n_ctx : m->n_ctx, P = m->w.n_patches;
    if (n_frames < 1) return mgl_err(err, MGL_E_INVALID, "clip: %d frames (at least 1)", n_frames);
    MglErr e = {0};
    const int64_t text = clip_text_tokens(m, question, &e);
    if (text < 0) {
        if (err) *err = e;
        return e.code;
    }
    const int64_t need = (int64_t)n_frames * (P + 1);
    if (need + text + 1 > ctx)
        return mgl_err(err, MGL_E_INVALID,
                       "clip: %d frames need at least %lld visual tokens (%lld image + 1 object token a frame) and "
                       "%lld text tokens, more than the %lld-token context: at most %d frames fit",
                       n_frames, (long long)need, (long long)P, (long long)text, (long long)ctx,
                       mgl_clip_max_frames(m, (int)ctx, question));
    return MGL_OK;
}

/* ---- a clip request ---- */

void mgl_gen_clear_clip(MglGen* g) {
    for (size_t j = 0; j < g->n_frames; j++) {
        if (g->fviews) mgl_views_unref(g->fviews[j]);
        if (g->fb768) free(g->fb768[j]);
    }
    free(g->fviews);
    free(g->fb768);
    free(g->frames);
    g->fviews = NULL;
    g->fb768 = NULL;
    g->frames = NULL;
    g->n_frames = 0;
}

MglStatus mgl_gen_begin_clip(MglModel* m, int64_t n_ctx, const MglClipFrame* frames, size_t n_frames,
                             const char* question, const MglGenParams* params, MglGen* g, MglErr* err) {
    memset(g, 0, sizeof *g);
    if (!frames || n_frames == 0 || !question) return mgl_err(err, MGL_E_INVALID, "clip: no frames or no question");
    if (n_frames > 4096) return mgl_err(err, MGL_E_INVALID, "clip: %zu frames (at most 4096)", n_frames);
    MGL_TRY(mgl_gen_check(m, question, params, g, err));
    MGL_TRY(mgl_clip_check(m, (int)n_ctx, (int)n_frames, question, err));
    const double t0 = now_ms();
    MglGenParams* p = &g->p;
    MglStatus st = prompt_build_video(m->tok, m->tmpl, question, &g->pr, err);
    if (st != MGL_OK) return st;
    g->frames = calloc(n_frames, sizeof *g->frames);
    g->fviews = calloc(n_frames, sizeof *g->fviews);
    g->fb768 = calloc(n_frames, sizeof *g->fb768);
    g->n_frames = n_frames;
    if (!g->frames || !g->fviews || !g->fb768) st = mgl_err(err, MGL_E_NOMEM, "clip: out of memory");
    size_t total = 0;
    for (size_t j = 0; j < n_frames && st == MGL_OK; j++) {
        const MglClipFrame* f = &frames[j];
        st = mgl_views_make_video(&f->image, &g->fviews[j], err);
        size_t n_obj = 0;
        if (st == MGL_OK)
            st = mgl_boxes_to_768_abortable(f->boxes, f->n_boxes, f->image.width, f->image.height, p->limit_num,
                                            p->object_order, p->abort_flag, &g->fb768[j], &n_obj, err);
        if (st != MGL_OK) {
            mgl_err_prefix(err, "clip frame %zu", j);
            break;
        }
        if (!p->use_objects || !p->use_high_res) n_obj = 0;
        g->frames[j] = (MglSeqFrame){
            .x336 = g->fviews[j]->x336, .x768 = g->fviews[j]->x768, .boxes768 = g->fb768[j], .n_obj = n_obj};
        total += n_obj;
    }
    if (st != MGL_OK) {
        mgl_gen_clear(g);
        return st;
    }
    g->in = (MglSeqInput){.ids = g->pr.ids,
                          .n_ids = g->pr.n_ids,
                          .image_pos = g->pr.image_pos,
                          .use_high_res = p->use_high_res,
                          .n_obj = total,
                          .frames = g->frames,
                          .n_frames = n_frames};
    st = mgl_gen_ready(m, n_ctx, g, err);
    if (st == MGL_OK) g->t.preprocess_ms = now_ms() - t0;
    return st;
}

MglStatus mgl_generate_clip(MglCtx* c, const MglClipFrame* frames, size_t n_frames, const char* question,
                            const MglGenParams* params, char** text, int32_t** ids, size_t* n_ids, MglTimings* tm,
                            MglErr* err) {
    if (text) *text = NULL;
    if (ids) *ids = NULL;
    if (n_ids) *n_ids = 0;
    if (!c) return mgl_err(err, MGL_E_INVALID, "clip: no context");
    MglGen g;
    MGL_TRY(mgl_gen_begin_clip(c->m, c->p.n_ctx, frames, n_frames, question, params, &g, err));
    return mgl_gen_run(c, &g, text, ids, n_ids, tm, err);
}
