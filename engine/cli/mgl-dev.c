/* mgl-dev.c: `mgllava dump`: the developer command that writes one stage's
 * tensor (the parity work against the PyTorch reference). It runs the CPU
 * reference stages one by one, which the public API does not offer, so it
 * (with mgl-bench.c) is the part of the tool that uses the engine's internal
 * headers; every other command uses mgllava.h alone. */
#include "mgl-dev.h"

#include "mgl-cli.h"
#include "mgl-model.h"
#include "cpu/mgl-cpu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int write_stage(const char* path, const char* name, const float* data, int ndim, const int64_t* shape) {
    MglTensor t = {0};
    t.name = (char*)name;
    t.dtype = MGL_DT_F32;
    t.ndim = ndim;
    int64_t st = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        t.shape[i] = shape[i];
        t.stride[i] = st;
        st *= shape[i];
    }
    t.data = (const uint8_t*)data;
    const MglTensor* list[1] = {&t};
    MglErr err = {0};
    if (mgl_safetensors_write(path, list, 1, -1, NULL, &err) != MGL_OK) return cli_fail(&err);
    printf("wrote %s: %s", path, name);
    for (int i = 0; i < ndim; i++) printf("%s%lld", i ? "x" : " ", (long long)shape[i]);
    printf("\n");
    return 0;
}

/* `dump`: run the stages up to `stage` and write its tensor. */
int mgl_cmd_dump_stage(MglModel* m, const MglImage* img, const MglBox* boxes, size_t n_boxes, int order,
                       const char* question, const char* stage, const char* out) {
    MglErr err = {0};
    float *x768 = NULL, *x336 = NULL, *b768 = NULL;
    size_t nobj = 0;
    if (mgl_stage_preprocess(img, boxes, n_boxes, m->files->man.limit_num,
                             order < 0 ? m->files->man.object_order : order, &x768, &x336, &b768, &nobj,
                             &err) != MGL_OK)
        return cli_fail(&err);
    int rc = -1;
    const MglModelWeights* w = &m->w; /* the CPU reference stages */
    const int64_t P = w->n_patches, D = w->D, H = w->lc.hidden;
    if (!strcmp(stage, "x768"))
        rc = write_stage(out, stage, x768, 3, (int64_t[]){3, 768, 768});
    else if (!strcmp(stage, "x336"))
        rc = write_stage(out, stage, x336, 3, (int64_t[]){3, 336, 336});
    else if (!strcmp(stage, "boxes768"))
        rc = write_stage(out, stage, b768, 2, (int64_t[]){(int64_t)nobj, 4});
    float* clip = NULL;
    float* so[4] = {0};
    float* fused = NULL;
    if (rc < 0) {
        clip = malloc(sizeof(float) * (size_t)(P * D));
        mgl_stage_clip(w, x336, clip);
        if (!strcmp(stage, "clip")) rc = write_stage(out, stage, clip, 2, (int64_t[]){P, D});
    }
    if (rc < 0) {
        for (int s = 0; s < 4; s++) {
            int64_t hs = (MGL_AUX_SIZE / 4) >> s;
            so[s] = malloc(sizeof(float) * (size_t)(hs * hs * w->stages[s].C));
        }
        mgl_stage_convnext(w, x768, so);
        for (int s = 0; s < 4 && rc < 0; s++) {
            char nm[8];
            snprintf(nm, sizeof nm, "cnx%d", s);
            int64_t hs = (MGL_AUX_SIZE / 4) >> s;
            if (!strcmp(stage, nm)) rc = write_stage(out, stage, so[s], 3, (int64_t[]){hs, hs, w->stages[s].C});
        }
    }
    if (rc < 0) {
        fused = malloc(sizeof(float) * (size_t)(P * D));
        mgl_stage_fuse(w, clip, so[3], fused, NULL);
        if (!strcmp(stage, "fused")) rc = write_stage(out, stage, fused, 2, (int64_t[]){P, D});
    }
    if (rc < 0 && (!strcmp(stage, "vimg"))) {
        float* v = malloc(sizeof(float) * (size_t)(P * H));
        mgl_stage_mlp2(&w->proj, fused, P, H, v);
        rc = write_stage(out, stage, v, 2, (int64_t[]){P, H});
        free(v);
    }
    if (rc < 0 && (!strcmp(stage, "obj_pooled") || !strcmp(stage, "vobj"))) {
        float* pooled = malloc(sizeof(float) * nobj * (size_t)w->Cm);
        mgl_stage_objects(w, so, b768, nobj, pooled);
        if (!strcmp(stage, "obj_pooled"))
            rc = write_stage(out, stage, pooled, 2, (int64_t[]){(int64_t)nobj, w->Cm});
        else {
            float* v = malloc(sizeof(float) * nobj * (size_t)H);
            mgl_stage_mlp2(&w->bproj, pooled, (int64_t)nobj, H, v);
            rc = write_stage(out, stage, v, 2, (int64_t[]){(int64_t)nobj, H});
            free(v);
        }
        free(pooled);
    }
    if (rc < 0 && (!strcmp(stage, "embeds") || !strcmp(stage, "logits"))) {
        MglPrompt pr;
        if (mgl_prompt_build(m->tok, m->tmpl, question, true, &pr, &err) != MGL_OK)
            rc = cli_fail(&err);
        else {
            int64_t L = (int64_t)pr.n_ids + P + (int64_t)nobj;
            float* emb = malloc(sizeof(float) * (size_t)(L * H));
            mgl_stage_embeds(w, &pr, fused, so, b768, nobj, emb);
            if (!strcmp(stage, "embeds"))
                rc = write_stage(out, stage, emb, 2, (int64_t[]){L, H});
            else {
                MglCtx* c = NULL;
                mgl_ctx_new(m, &c, &err);
                float* lg = malloc(sizeof(float) * (size_t)(L * w->lc.vocab));
                if (mgl_llm_forward(c, emb, L, 0, lg, true, &err) != MGL_OK)
                    rc = cli_fail(&err);
                else
                    rc = write_stage(out, stage, lg, 2, (int64_t[]){L, w->lc.vocab});
                free(lg);
                mgl_ctx_free(c);
            }
            free(emb);
            mgl_prompt_clear(&pr);
        }
    }
    if (rc < 0) {
        mgl_err(&err, MGL_E_INVALID,
                "--stage '%s': unknown (x768 x336 boxes768 clip cnx0..cnx3 fused vimg obj_pooled vobj embeds logits)",
                stage);
        rc = cli_fail(&err);
    }
    free(x768);
    free(x336);
    free(b768);
    free(clip);
    free(fused);
    for (int s = 0; s < 4; s++) free(so[s]);
    return rc;
}
