/* mgl-weight-table.c: the table of the model's tensors and its walk. */
#include "mgl-weight-table.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define MGL_WG_TYPE_MODEL MglModelWeights
#define MGL_WG_TYPE_CLIP ClipLayer
#define MGL_WG_TYPE_STAGE CnxStage
#define MGL_WG_TYPE_BLOCK CnxBlock
#define MGL_WG_TYPE_LAYER LlmLayer

#define MGL_WEIGHT_ROW(g, k, fl, fu, field, nd, a, b, c, d, nm)                                                        \
    {MGL_WG_##g, MGL_WK_##k, fl, fu, offsetof(MGL_WG_TYPE_##g, field), nd, {a, b, c, d}, nm},

const MglWeightSpec mgl_weight_table[] = {MGL_WEIGHT_TABLE(MGL_WEIGHT_ROW)};
const size_t mgl_weight_table_len = sizeof mgl_weight_table / sizeof mgl_weight_table[0];

/* The size a symbol stands for at stage `s`. */
static int64_t dim_of(const MglModelFiles* mf, int sym, int s) {
    if (sym > 0) return sym;
    const MglClipConfig* v = &mf->clip;
    const MglLlmConfig* L = &mf->llm;
    const int* dims = mf->cnx.dims;
    const int64_t g = v->image_size / (v->patch_size ? v->patch_size : 1);
    switch (sym) {
    case MGL_DIM_D: return v->hidden;
    case MGL_DIM_CH: return v->n_channels;
    case MGL_DIM_PATCH: return v->patch_size;
    case MGL_DIM_NPOS: return g * g + 1;
    case MGL_DIM_CFF: return v->intermediate;
    case MGL_DIM_C0: return dims[0];
    case MGL_DIM_C: return dims[s];
    case MGL_DIM_CP: return s > 0 ? dims[s - 1] : 0;
    case MGL_DIM_C4: return 4 * (int64_t)dims[s];
    case MGL_DIM_C3: return dims[3];
    case MGL_DIM_GH: return mf->gate_hidden;
    case MGL_DIM_D2: return 2 * (int64_t)v->hidden;
    case MGL_DIM_H: return L->hidden;
    case MGL_DIM_CM: return (int64_t)dims[0] + dims[1] + dims[2] + dims[3];
    case MGL_DIM_V: return L->vocab;
    case MGL_DIM_QD: return (int64_t)L->n_heads * L->head_dim;
    case MGL_DIM_KVD: return (int64_t)L->n_kv_heads * L->head_dim;
    case MGL_DIM_QKV: return (int64_t)L->n_heads * L->head_dim + 2 * (int64_t)L->n_kv_heads * L->head_dim;
    case MGL_DIM_FF: return L->intermediate;
    case MGL_DIM_FF2: return 2 * (int64_t)L->intermediate;
    default: return 0;
    }
}

static bool row_applies(const MglModelFiles* mf, const MglWeightSpec* sp, int stage) {
    if ((sp->flags & MGL_WF_LLAMA) && mf->llm.arch == MGL_LLM_PHI3) return false;
    if ((sp->flags & MGL_WF_PHI3) && mf->llm.arch != MGL_LLM_PHI3) return false;
    if ((sp->flags & MGL_WF_UNTIED) && mf->llm.tie_embeddings) return false;
    if ((sp->flags & MGL_WF_DS) && stage == 0) return false;
    return true;
}

static bool visit(const MglModelFiles* mf, const MglWeightSpec* sp, int i0, int i1, MglWeightFunc fn, void* user) {
    const int stage = sp->group == MGL_WG_STAGE || sp->group == MGL_WG_BLOCK ? i0 : 0;
    if (!row_applies(mf, sp, stage)) return true;
    MglWeightItem it = {.spec = sp, .ndim = sp->ndim, .i0 = i0, .i1 = i1};
    if (sp->group == MGL_WG_BLOCK)
        snprintf(it.name, sizeof it.name, sp->name, i0, i1);
    else if (sp->group == MGL_WG_MODEL)
        snprintf(it.name, sizeof it.name, "%s", sp->name);
    else
        snprintf(it.name, sizeof it.name, sp->name, i0);
    for (int d = 0; d < sp->ndim; d++) it.shape[d] = dim_of(mf, sp->dims[d], stage);
    return fn(&it, user);
}

static bool is_cnx(MglWeightGroup g) { return g == MGL_WG_STAGE || g == MGL_WG_BLOCK; }

void mgl_weight_walk(const MglModelFiles* mf, MglWeightFunc fn, void* user) {
    size_t r = 0;
    while (r < mgl_weight_table_len) {
        /* a run of rows of one group (ConvNeXt stages and their blocks together) */
        const MglWeightGroup g = mgl_weight_table[r].group;
        size_t e = r + 1;
        while (e < mgl_weight_table_len &&
               (mgl_weight_table[e].group == g || (is_cnx(g) && is_cnx(mgl_weight_table[e].group))))
            e++;
        if (g == MGL_WG_MODEL) {
            for (size_t i = r; i < e; i++)
                if (!visit(mf, &mgl_weight_table[i], 0, 0, fn, user)) return;
        } else if (is_cnx(g)) {
            for (int s = 0; s < 4; s++) {
                for (size_t i = r; i < e; i++)
                    if (mgl_weight_table[i].group == MGL_WG_STAGE && !visit(mf, &mgl_weight_table[i], s, 0, fn, user))
                        return;
                for (int b = 0; b < mf->cnx.depths[s]; b++)
                    for (size_t i = r; i < e; i++)
                        if (mgl_weight_table[i].group == MGL_WG_BLOCK &&
                            !visit(mf, &mgl_weight_table[i], s, b, fn, user))
                            return;
            }
        } else {
            /* MG-LLaVA reads CLIP's hidden_states[-2]: layers 0 .. n_layers-2 */
            const int n = g == MGL_WG_CLIP ? mf->clip.n_layers - 1 : mf->llm.n_layers;
            for (int l = 0; l < n; l++)
                for (size_t i = r; i < e; i++)
                    if (!visit(mf, &mgl_weight_table[i], l, 0, fn, user)) return;
        }
        r = e;
    }
}

void mgl_weight_walk_bound(const MglModelWeights* w, MglWeightFunc fn, void* user) {
    MglModelFiles mf;
    memset(&mf, 0, sizeof mf);
    mf.clip.hidden = w->D;
    mf.clip.patch_size = w->patch;
    mf.clip.n_channels = w->patch > 0 ? (int)(w->patch_w.cols / ((int64_t)w->patch * w->patch)) : 0;
    mf.clip.image_size = w->clip_grid * w->patch;
    mf.clip.intermediate = w->clip_layers_used > 0 ? (int)w->clip_layers[0].fc1.rows : 4 * w->D;
    mf.clip.n_layers = w->clip_layers_used + 1;
    for (int s = 0; s < 4; s++) {
        mf.cnx.dims[s] = w->stages[s].C;
        mf.cnx.depths[s] = w->stages[s].depth;
    }
    mf.gate_hidden = w->gate_hidden;
    mf.llm = w->lc;
    mgl_weight_walk(&mf, fn, user);
}

void* mgl_weight_field(MglModelWeights* w, const MglWeightItem* it) {
    uint8_t* base = NULL;
    switch (it->spec->group) {
    case MGL_WG_MODEL: base = (uint8_t*)w; break;
    case MGL_WG_CLIP: base = (uint8_t*)&w->clip_layers[it->i0]; break;
    case MGL_WG_STAGE: base = (uint8_t*)&w->stages[it->i0]; break;
    case MGL_WG_BLOCK: base = (uint8_t*)&w->stages[it->i0].blocks[it->i1]; break;
    case MGL_WG_LAYER: base = (uint8_t*)&w->layers[it->i0]; break;
    }
    return base + it->spec->offset;
}
