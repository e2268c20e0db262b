/* mgl-cpu-vision.c: the vision stages on the CPU (CLIP ViT, ConvNeXt,
 * Conv-Gate fusion, RoIAlign objects), the projectors and the assembly of the
 * LLM input sequence, on fp32 activations with the ops of ops-cpu.c. These
 * are the reference stages the golden tests check one by one. */
#include "mgl-cpu.h"

#include "mgl-ops-bf16.h"
#include "mgl-pool.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void mgl_stage_clip(const MglModelWeights* m, const float* x336, float* out) {
    const int64_t D = m->D, P = m->n_patches, T = P + 1, NH = m->clip_heads, HS = D / NH;
    const int64_t FF = m->clip_layers_used > 0 ? m->clip_layers[0].fc1.rows : 4 * D;
    const int64_t img = m->clip_grid * m->patch;
    float* x = malloc(sizeof(float) * (size_t)(T * D));
    float* h = malloc(sizeof(float) * (size_t)(T * D));
    float* q = malloc(sizeof(float) * (size_t)(T * D));
    float* k = malloc(sizeof(float) * (size_t)(T * D));
    float* v = malloc(sizeof(float) * (size_t)(T * D));
    float* a = malloc(sizeof(float) * (size_t)(T * D));
    float* f = malloc(sizeof(float) * (size_t)(T * FF));
    /* patch embedding (conv k=stride=14, no bias) + class token + positions */
    mgl_patchify_conv(x336, true, img, img, 3, m->patch, &m->patch_w, NULL, x + D);
    memcpy(x, m->cls, sizeof(float) * (size_t)D);
    mgl_add(x, m->pos, T * D);
    mgl_layernorm(x, T, D, m->pre_ln_w, m->pre_ln_b, m->clip_eps, x);
    for (int l = 0; l < m->clip_layers_used; l++) {
        const ClipLayer* L = &m->clip_layers[l];
        mgl_layernorm(x, T, D, L->ln1_w, L->ln1_b, m->clip_eps, h);
        mgl_matmul(h, T, &L->q, L->q_b, q);
        mgl_matmul(h, T, &L->k, L->k_b, k);
        mgl_matmul(h, T, &L->v, L->v_b, v);
        /* HF CLIP scales q before the product; mgl_attention scales by 1/sqrt(HS) itself */
        mgl_attention(q, T, 0, k, v, NH, NH, HS, false, a);
        mgl_matmul(a, T, &L->o, L->o_b, h);
        mgl_add(x, h, T * D);
        mgl_layernorm(x, T, D, L->ln2_w, L->ln2_b, m->clip_eps, h);
        mgl_matmul_act(h, T, &L->fc1, L->fc1_b, m->clip_quick_gelu ? MGL_ACT_QUICK_GELU : MGL_ACT_GELU, f);
        mgl_matmul(f, T, &L->fc2, L->fc2_b, h);
        mgl_add(x, h, T * D);
    }
    memcpy(out, x + D, sizeof(float) * (size_t)(P * D)); /* drop CLS */
    free(x);
    free(h);
    free(q);
    free(k);
    free(v);
    free(a);
    free(f);
}

typedef struct {
    float* x;
    const float *y, *gamma;
    int64_t C;
} ScaleAddCtx;

static void scale_add_part(void* ctx, int64_t b, int64_t e) {
    const ScaleAddCtx* s = ctx;
    for (int64_t i = b; i < e; i++)
        for (int64_t c = 0; c < s->C; c++) s->x[i * s->C + c] += s->y[i * s->C + c] * s->gamma[c];
}

/* A ConvNeXt block's per-pixel part (LayerNorm, fc1 + GELU, fc2, layer
 * scale and residual) runs over chunks of pixels at precision bf16: the
 * 4C-wide hidden rows of a chunk (about 8 MB, at least 256 pixels) are
 * written by fc1 and read by fc2 while they are still in the caches, and
 * the buffer holding them is a chunk's, not the stage's (ConvNeXt-L at 768:
 * 8 MB instead of 113 MB). ConvNeXt-L@768 at precision bf16 took 1,108-1,162
 * ms this way against 1,252-1,303 ms over the whole map, and peak RSS fell
 * from 1,050 to 913 MiB; at f32, OpenBLAS's SGEMM was faster over the whole
 * map (1,970-2,022 against 2,074-2,165 ms, 4 interleaved rounds), so f32
 * keeps one chunk. Each row's arithmetic is the same either way. */
#define CNX_CHUNK_BYTES ((int64_t)8 << 20)
static int64_t cnx_chunk(int64_t N, int64_t C) {
    if (!mgl_cpu_bf16()) return N;
    int64_t ch = CNX_CHUNK_BYTES / (int64_t)(sizeof(float) * 4 * (size_t)C);
    if (ch < 256) ch = 256;
    return ch < N ? ch : N;
}

static void cnx_block(const CnxBlock* B, float* x, int64_t H, int64_t W, int64_t C, float* t1, float* t2) {
    const int64_t N = H * W, ch = cnx_chunk(N, C);
    mgl_dwconv7_nhwc(x, H, W, C, B->dw_w, B->dw_b, t1);
    for (int64_t p0 = 0; p0 < N; p0 += ch) {
        const int64_t n = N - p0 < ch ? N - p0 : ch;
        float* a = t1 + p0 * C;
        mgl_layernorm(a, n, C, B->ln_w, B->ln_b, 1e-6f, a);
        mgl_matmul_act(a, n, &B->fc1, B->fc1_b, MGL_ACT_GELU, t2);
        mgl_matmul(t2, n, &B->fc2, B->fc2_b, a);
        ScaleAddCtx sa = {x + p0 * C, a, B->gamma, C};
        mgl_parallel_for(n, 64, scale_add_part, &sa);
    }
}

void mgl_stage_convnext(const MglModelWeights* m, const float* x768, float* const so[4]) {
    int64_t H = MGL_AUX_SIZE / 4, W = H;
    /* t1: a stage's map (the depthwise conv's output), or the previous
     * stage's map normalised for the downsampling; t2: one chunk's hidden rows */
    size_t n1 = 0, n2 = 0;
    for (int s = 0; s < 4; s++) {
        const int64_t hs = H >> s, C = m->stages[s].C;
        const size_t map = (size_t)(hs * hs * C), prev = s ? (size_t)(4 * hs * hs * m->stages[s - 1].C) : 0;
        const size_t hid = (size_t)(cnx_chunk(hs * hs, C) * 4 * C);
        n1 = map > n1 ? map : n1;
        n1 = prev > n1 ? prev : n1;
        n2 = hid > n2 ? hid : n2;
    }
    float* t1 = malloc(sizeof(float) * n1);
    float* t2 = malloc(sizeof(float) * n2);
    int64_t C0 = m->stages[0].C;
    mgl_patchify_conv(x768, true, MGL_AUX_SIZE, MGL_AUX_SIZE, 3, 4, &m->stem_w, m->stem_b, so[0]);
    mgl_layernorm(so[0], H * W, C0, m->stem_ln_w, m->stem_ln_b, 1e-6f, so[0]);
    for (int s = 0; s < 4; s++) {
        const CnxStage* S = &m->stages[s];
        if (s > 0) {
            int64_t Cp = m->stages[s - 1].C;
            mgl_layernorm(so[s - 1], H * W, Cp, S->ds_ln_w, S->ds_ln_b, 1e-6f, t1);
            mgl_patchify_conv(t1, false, H, W, Cp, 2, &S->ds, S->ds_b, so[s]);
            H /= 2;
            W /= 2;
        }
        for (int k = 0; k < S->depth; k++) cnx_block(&S->blocks[k], so[s], H, W, S->C, t1, t2);
    }
    free(t1);
    free(t2);
}

void mgl_stage_fuse(const MglModelWeights* m, const float* clip, const float* stage3, float* fused, float* gate_logit) {
    const int64_t P = m->n_patches, D = m->D, C3 = m->stages[3].C, G = m->clip_grid;
    float* hs = malloc(sizeof(float) * (size_t)(P * C3));
    float* h = malloc(sizeof(float) * (size_t)(P * D));
    float* t = malloc(sizeof(float) * (size_t)(P * D));
    float* l = malloc(sizeof(float) * (size_t)(P * D));
    /* high-res path: 1x1 convs are per-token linears on the NHWC map */
    mgl_matmul(stage3, P, &m->slow_conv, m->slow_conv_b, hs);
    mgl_gelu_erf(hs, P * C3);
    mgl_matmul(hs, P, &m->slow_proj, m->slow_proj_b, h);
    /* low-res path: tokens t = r*G + c are an NHWC (G, G, D) map */
    mgl_dwconv7_nhwc(clip, G, G, D, m->fast_conv_w, m->fast_conv_b, t);
    mgl_gelu_erf(t, P * D);
    mgl_matmul(t, P, &m->fast_proj, m->fast_proj_b, l);
    mgl_add(l, clip, P * D);
    /* one scalar gate per image from the token-mean of [l, h] */
    float* mean = calloc((size_t)(2 * D), sizeof(float));
    for (int64_t c = 0; c < D; c++) {
        double sl = 0, sh = 0;
        for (int64_t p = 0; p < P; p++) {
            sl += l[p * D + c];
            sh += h[p * D + c];
        }
        mean[c] = (float)(sl / (double)P);
        mean[D + c] = (float)(sh / (double)P);
    }
    float* gh = malloc(sizeof(float) * (size_t)m->gate_hidden);
    mgl_matmul(mean, 1, &m->gate0, m->gate0_b, gh);
    mgl_gelu_erf(gh, m->gate_hidden);
    float g = 0;
    mgl_matmul(gh, 1, &m->gate2, m->gate2_b, &g);
    if (gate_logit) *gate_logit = g;
    float tg = tanhf(g);
    for (int64_t i = 0; i < P * D; i++) fused[i] = l[i] + h[i] * tg;
    free(hs);
    free(h);
    free(t);
    free(l);
    free(mean);
    free(gh);
}

/* Accumulate `w` at integer tap (y, x) of the 192x192 map into level s's own
 * grid: the multi-scale map's value there is the bilinear (align_corners=False)
 * upsample of the level, so its weight spreads over up to 4 level pixels. */
static void spread(float* lw, int64_t hs, int64_t ws, int64_t k, int64_t y, int64_t x, float w) {
    if (k == 1) {
        lw[y * ws + x] += w;
        return;
    }
    int64_t y0, y1, x0, x1;
    float ly, lx;
    mgl_bilinear_src(hs, hs * k, y, &y0, &y1, &ly);
    mgl_bilinear_src(ws, ws * k, x, &x0, &x1, &lx);
    lw[y0 * ws + x0] += w * (1 - ly) * (1 - lx);
    lw[y0 * ws + x1] += w * (1 - ly) * lx;
    lw[y1 * ws + x0] += w * ly * (1 - lx);
    lw[y1 * ws + x1] += w * ly * lx;
}

typedef struct {
    const MglModelWeights* m;
    float* const* so;
    const float* boxes;
    float* pooled;
} ObjCtx;

static void objects_part(void* ctx, int64_t b0, int64_t b1);

void mgl_stage_objects(const MglModelWeights* m, float* const so[4], const float* boxes, size_t n, float* pooled) {
    ObjCtx c = {m, so, boxes, pooled};
    mgl_parallel_for((int64_t)n, 1, objects_part, &c);
}

static void objects_part(void* ctx, int64_t b0, int64_t b1) {
    const ObjCtx* oc = ctx;
    const MglModelWeights* m = oc->m;
    float* const* so = oc->so;
    const float* boxes = oc->boxes;
    float* pooled = oc->pooled;
    const int64_t F = MGL_AUX_SIZE / 4, P = 56;
    const float sigma = (float)F / (float)MGL_AUX_SIZE;
    for (int64_t bi = b0; bi < b1; bi++) {
        const float* bx = boxes + 4 * bi;
        /* torchvision roi_align, aligned=False: weights of every 192-grid tap */
        float* wmap = calloc((size_t)(F * F), sizeof(float));
        float x0 = bx[0] * sigma, y0 = bx[1] * sigma;
        float rw = fmaxf(bx[2] * sigma - x0, 1.0f), rh = fmaxf(bx[3] * sigma - y0, 1.0f);
        float bw = rw / (float)P, bh = rh / (float)P;
        int64_t gw = (int64_t)ceilf(rw / (float)P), gh = (int64_t)ceilf(rh / (float)P);
        float cnt = (float)(gw * gh > 1 ? gw * gh : 1);
        /* the mean over the P*P bins folds into each sample's weight */
        float wsample = 1.0f / (cnt * (float)(P * P));
        for (int64_t ph = 0; ph < P; ph++)
            for (int64_t iy = 0; iy < gh; iy++) {
                float y = y0 + (float)ph * bh + ((float)iy + 0.5f) * bh / (float)gh;
                for (int64_t pw = 0; pw < P; pw++)
                    for (int64_t ix = 0; ix < gw; ix++) {
                        float x = x0 + (float)pw * bw + ((float)ix + 0.5f) * bw / (float)gw;
                        if (y < -1.0f || y > (float)F || x < -1.0f || x > (float)F) continue;
                        float yy = y <= 0 ? 0 : y, xx = x <= 0 ? 0 : x;
                        int64_t yl = (int64_t)yy, xl = (int64_t)xx, yh, xh;
                        if (yl >= F - 1) {
                            yh = yl = F - 1;
                            yy = (float)yl;
                        } else
                            yh = yl + 1;
                        if (xl >= F - 1) {
                            xh = xl = F - 1;
                            xx = (float)xl;
                        } else
                            xh = xl + 1;
                        float ly = yy - (float)yl, lx = xx - (float)xl, hy = 1 - ly, hx = 1 - lx;
                        wmap[yl * F + xl] += wsample * hy * hx;
                        wmap[yl * F + xh] += wsample * hy * lx;
                        wmap[yh * F + xl] += wsample * ly * hx;
                        wmap[yh * F + xh] += wsample * ly * lx;
                    }
            }
        float* out = pooled + (size_t)bi * (size_t)m->Cm;
        int64_t coff = 0;
        for (int s = 0; s < 4; s++) {
            int64_t k = (int64_t)1 << s, hs = F / k, C = m->stages[s].C;
            float* lw = calloc((size_t)(hs * hs), sizeof(float));
            for (int64_t i = 0; i < F * F; i++)
                if (wmap[i] != 0.0f) spread(lw, hs, hs, k, i / F, i % F, wmap[i]);
            float* o = out + coff;
            for (int64_t c = 0; c < C; c++) o[c] = 0;
            for (int64_t i = 0; i < hs * hs; i++) {
                if (lw[i] == 0.0f) continue;
                const float* src = so[s] + i * C;
                for (int64_t c = 0; c < C; c++) o[c] += lw[i] * src[c];
            }
            free(lw);
            coff += C;
        }
        free(wmap);
    }
}

void mgl_stage_mlp2(const Mlp2* p, const float* x, int64_t T, int64_t H, float* out) {
    float* t = malloc(sizeof(float) * (size_t)(T * H));
    mgl_matmul(x, T, &p->l0, p->b0, t);
    mgl_gelu_erf(t, T * H);
    mgl_matmul(t, T, &p->l2, p->b2, out);
    free(t);
}

void mgl_stage_embeds(const MglModelWeights* m, const MglPrompt* pr, const float* fused, float* const so[4],
                      const float* boxes768, size_t n_obj, float* emb) {
    const MglSeqInput in = {.ids = pr->ids, .n_ids = pr->n_ids, .image_pos = pr->image_pos, .n_obj = n_obj};
    const MglSeqLayout ly = mgl_seq_layout(&in, m->n_patches);
    const int64_t H = m->lc.hidden;
    for (int64_t i = 0; i < ly.prefix; i++) mgl_weight_row(&m->embed, pr->ids[i], emb + i * H);
    mgl_stage_mlp2(&m->proj, fused, m->n_patches, H, emb + ly.image * H);
    if (n_obj) {
        float* pooled = malloc(sizeof(float) * n_obj * (size_t)m->Cm);
        mgl_stage_objects(m, so, boxes768, n_obj, pooled);
        mgl_stage_mlp2(&m->bproj, pooled, (int64_t)n_obj, H, emb + ly.objects * H);
        free(pooled);
    }
    for (int64_t i = 0; i < ly.n_suffix; i++)
        mgl_weight_row(&m->embed, pr->ids[ly.prefix + i], emb + (ly.suffix + i) * H);
}
