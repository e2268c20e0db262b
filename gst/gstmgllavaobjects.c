/* gstmgllavaobjects.c: mgllavafilter's per-object questions (object-mode).
 *
 * The streaming thread picks the due objects of a sampled frame
 * (gstmgllavatrigger.c) and puts one question per object into the request.
 * The worker submits them together with mgl_stream_submit_frame(): the frame
 * is preprocessed once and the vision towers run once for the questions
 * admitted together; each question has its own object box. The object is
 * singled out by being the only box the model gets: its object tokens are
 * the features of that box alone (RoIAlign on the high-resolution map), the
 * image tokens still show the whole frame. Each answer becomes a result of
 * its own (result meta, bus message, JSON) carrying the object's track id,
 * label and box, and goes onto the object's ROI meta as a param structure
 * (GST_MGLLAVA_OBJECT_ANSWER_PARAM) when a frame carrying it has that track.
 *
 * Counting: the request is one sampled frame, and ends counted once, as the
 * stats invariant wants (sampled = results + dropped + failed + aborted +
 * pending): a result when at least one object was answered, else aborted or
 * failed. object-answers counts the answers. */
#include "gstmgllavafilter-private.h"
#include "gstmgllavaroi.h"

#include <string.h>

/* the questions of one request, waiting for their callbacks */
typedef struct {
    GMutex m;
    GCond c;
    guint left;
    GstMgllavaDone** done;
} GstMgllavaObjectBatch;

typedef struct {
    GstMgllavaObjectBatch* batch;
    guint index;
} GstMgllavaObjectSlot;

/* on the server's thread: copy and signal */
static void on_object_result(uint64_t id, const MglResult* res, void* data) {
    GstMgllavaObjectSlot* slot = data;
    GstMgllavaObjectBatch* b = slot->batch;
    GstMgllavaDone* d = gst_mgllava_done_new(res);

    g_mutex_lock(&b->m);
    b->done[slot->index] = d;
    b->left--;
    g_cond_broadcast(&b->c);
    g_mutex_unlock(&b->m);
}

/* Submits the questions and waits for every callback; done[i] is each
 * question's outcome (the submission's error for all when refused). */
static void submit_and_wait(GstMgllavaFilter* self, GstMgllavaJob* job, GstMgllavaObjectBatch* b) {
    guint n = job->objects->len, i;
    MglFrameRequest* reqs = g_new0(MglFrameRequest, n);
    MglGenParams* gens = g_new0(MglGenParams, n); /* each its own response matcher */
    GstMgllavaObjectSlot* slots = g_new0(GstMgllavaObjectSlot, n);
    uint64_t* ids = g_new0(uint64_t, n);
    const MglImage img = {job->rgb, job->width, job->height, job->width * 3};
    MglErr err = {0};
    MglStatus st;

    /* a flush or stop also stops requests it races with */
    job->gen.abort_flag = &self->abort_flag;
    for (i = 0; i < n; i++) {
        GstMgllavaObjectQuestion* q = &g_array_index(job->objects, GstMgllavaObjectQuestion, i);

        slots[i].batch = b;
        slots[i].index = i;
        reqs[i].question = q->prompt;
        reqs[i].boxes = &q->box;
        reqs[i].n_boxes = 1;
        gens[i] = job->gen;
        gst_mgllava_filter_constraint_bind_index(self, i, &gens[i]);
        reqs[i].params = &gens[i];
        reqs[i].done = on_object_result;
        reqs[i].user_data = &slots[i];
    }
    b->left = n;
    st = mgl_stream_submit_frame(self->stream, &img, reqs, n, ids, &err);
    if (st != MGL_OK) {
        /* refused: no callback follows */
        for (i = 0; i < n; i++) {
            b->done[i] = g_new0(GstMgllavaDone, 1);
            b->done[i]->status = st;
            b->done[i]->error = g_strdup(err.msg);
        }
        b->left = 0;
    } else {
        gboolean stopping;

        g_mutex_lock(&self->lock);
        stopping = self->flushing;
        g_mutex_unlock(&self->lock);
        if (stopping) /* a flush raced with the submission */
            for (i = 0; i < n; i++) mgl_stream_abort(self->stream, ids[i]);
        g_mutex_lock(&b->m);
        while (b->left > 0) g_cond_wait(&b->c, &b->m);
        g_mutex_unlock(&b->m);
    }
    g_free(reqs);
    g_free(gens);
    g_free(slots);
    g_free(ids);
}

void gst_mgllava_filter_run_objects(GstMgllavaFilter* self, GstMgllavaJob* job) {
    guint n = job->objects->len, i, n_ok = 0, n_aborted = 0, n_incomplete = 0;
    GstMgllavaObjectBatch b;
    GQueue answers = G_QUEUE_INIT;
    gint max_batch = 0;
    MglStatus first_error = MGL_OK;
    const gchar* first_msg = NULL;
    GstMgllavaResult* r;

    g_mutex_init(&b.m);
    g_cond_init(&b.c);
    b.done = g_new0(GstMgllavaDone*, n);
    submit_and_wait(self, job, &b);

    for (i = 0; i < n; i++) {
        GstMgllavaObjectQuestion* q = &g_array_index(job->objects, GstMgllavaObjectQuestion, i);
        GstMgllavaDone* d = b.done[i];

        max_batch = MAX(max_batch, d->batch);
        if (d->status == MGL_OK) {
            r = gst_mgllava_result_new(job, d);
            if (!gst_mgllava_filter_constraint_finish_index(self, i, d->ids, d->n_ids, r)) n_incomplete++;
            g_free(r->fields.prompt);
            r->fields.prompt = g_strdup(q->prompt);
            r->fields.object_id = q->id;
            r->fields.object_label = g_strdup(q->label);
            r->fields.object_x = (gint)q->box.x1;
            r->fields.object_y = (gint)q->box.y1;
            r->fields.object_w = (gint)(q->box.x2 - q->box.x1);
            r->fields.object_h = (gint)(q->box.y2 - q->box.y1);
            {
                /* as the frame's answers: the structured answer also as a value */
                GstStructure* msg = gst_mgllava_result_meta_to_structure(&r->fields);

                gst_mgllava_constraint_add_answer(msg, r->fields.json);
                gst_element_post_message(GST_ELEMENT(self), gst_message_new_element(GST_OBJECT(self), msg));
            }
            GST_DEBUG_OBJECT(self, "frame %" G_GUINT64_FORMAT ", object %d (%s): \"%s\" (batch %d)", job->frame, q->id,
                             q->label, r->fields.text, d->batch);
            g_queue_push_tail(&answers, r);
            n_ok++;
        } else if (d->status == MGL_E_ABORTED) {
            n_aborted++;
        } else if (first_error == MGL_OK) {
            first_error = d->status;
            first_msg = d->error;
        }
    }
    if (first_error != MGL_OK)
        GST_ELEMENT_WARNING(self, STREAM, FAILED,
                            ("Inference failed on %u of the %u object question(s) of frame %" G_GUINT64_FORMAT ".",
                             n - n_ok - n_aborted, n, job->frame),
                            ("%s: %s", mgl_status_to_string(first_error), first_msg ? first_msg : ""));

    /* the request ends counted once (see above) */
    g_mutex_lock(&self->lock);
    if (max_batch > self->max_batch_seen) self->max_batch_seen = max_batch;
    self->trig_stats.object_answers += n_ok;
    self->n_incomplete += n_incomplete;
    if (n_ok > 0)
        self->n_results++;
    else if (n_aborted == n)
        self->n_aborted++;
    else
        self->n_failed++;
    if (self->flushing) {
        g_queue_clear_full(&answers, (GDestroyNotify)gst_mgllava_result_free);
    } else if (n_ok == 0) {
        /* nothing produced: still completes the sequence number */
        r = g_new0(GstMgllavaResult, 1);
        r->seq = job->seq;
        r->fields.source_frame = GST_MGLLAVA_NO_ANSWER;
        g_queue_push_tail(&self->results, r);
    } else {
        while ((r = g_queue_pop_head(&answers))) g_queue_push_tail(&self->results, r);
    }
    self->busy = FALSE;
    g_cond_broadcast(&self->cond);
    g_mutex_unlock(&self->lock);

    for (i = 0; i < n; i++) gst_mgllava_done_free(b.done[i]);
    g_free(b.done);
    g_mutex_clear(&b.m);
    g_cond_clear(&b.c);
}

/* ---- answers on the ROI metas ------------------------------------------ */

void gst_mgllava_filter_attach_object_answer(GstMgllavaFilter* self, GstBuffer* buf, const GstMgllavaResultMeta* r) {
    GstMeta* meta;
    gpointer state = NULL;
    gchar *attribute, *model;

    if (r->object_id == 0) return;
    while ((meta = gst_buffer_iterate_meta_filtered(buf, &state, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))) {
        GstVideoRegionOfInterestMeta* roi = (GstVideoRegionOfInterestMeta*)meta;

        if (gst_mgllava_roi_meta_get_track_id(roi) != r->object_id) continue;
        GST_OBJECT_LOCK(self);
        attribute = g_strdup(self->trig.object_attribute);
        model = g_path_get_basename(self->model_path ? self->model_path : "mgllava");
        GST_OBJECT_UNLOCK(self);
        /* as DL Streamer's classifiers attach a result to a ROI: label (the
         * answer), model_name, attribute_name; then the question and the
         * frame the answer is about */
        GstStructure* param = gst_structure_new(
            GST_MGLLAVA_OBJECT_ANSWER_PARAM, "label", G_TYPE_STRING, r->text, "model_name", G_TYPE_STRING, model,
            "attribute_name", G_TYPE_STRING, attribute, "text", G_TYPE_STRING, r->text, "prompt", G_TYPE_STRING,
            r->prompt, "object_id", G_TYPE_INT, r->object_id, "source_frame", G_TYPE_UINT64, r->source_frame,
            "source_pts", G_TYPE_UINT64, (guint64)r->source_pts, NULL);

        /* a structured answer (response-schema): how it ended, and the value */
        if (r->constraint) gst_structure_set(param, "constraint", G_TYPE_STRING, r->constraint, NULL);
        if (r->json) gst_structure_set(param, "json", G_TYPE_STRING, r->json, NULL);
        gst_mgllava_constraint_add_answer(param, r->json);
        gst_video_region_of_interest_meta_add_param(roi, param);
        g_free(attribute);
        g_free(model);
        return;
    }
    GST_DEBUG_OBJECT(self, "object %d is not on this frame: its answer is in the result meta only", r->object_id);
}
