/* gstmgllavatrigger.c: mgllavafilter's triggers (see gstmgllavatrigger.h).
 *
 * The streaming thread calls gst_mgllava_filter_trigger_decide() for every
 * frame once interval sampling has had its say. With no trigger and
 * object-mode=off it returns the interval's answer and reads nothing. Else
 * it reads the frame's objects with their track ids (every frame, late ones
 * too, so a track's first frame is known), then:
 *
 *   object-mode != off: the frame is sampled when an object is due (a track
 *     never asked, or asked object-interval ago); the due objects' questions
 *     go into the request (gstmgllavaobjects.c). interval and the triggers
 *     are not used in this mode.
 *   else: sampled when the interval is due (unless interval=0 and
 *     interval-time=0: with a trigger set, that turns periodic sampling off)
 *     or a trigger fires outside the cooldown.
 *
 * Why each frame was sampled is counted in the stats. */
#include "gstmgllavafilter-private.h"
#include "gstmgllavaroi.h"
#include "gstmgllavatrack.h"

#include <string.h>

/* a track unseen for this many frames is forgotten: if its id comes back it
 * is new again */
#define TRACK_FORGET_FRAMES 900

typedef struct {
    guint64 last_seen;
    GstClockTime asked_rt; /* running time of its last question; NONE: never asked */
    gboolean asked;
} GstMgllavaTrackInfo;

GType gst_mgllava_trigger_flags_get_type(void) {
    static GType type = 0;
    static const GFlagsValue values[] = {
        {GST_MGLLAVA_TRIGGER_LABEL, "An object with a label in trigger-labels appears", "label"},
        {GST_MGLLAVA_TRIGGER_NEW_TRACK, "A new track id appears", "new-track"},
        {GST_MGLLAVA_TRIGGER_COUNT, "The number of objects changes", "count"},
        {0, NULL, NULL},
    };

    if (g_once_init_enter(&type)) {
        GType t = g_flags_register_static("GstMgllavaTriggerFlags", values);
        g_once_init_leave(&type, t);
    }
    return type;
}

GType gst_mgllava_object_mode_get_type(void) {
    static GType type = 0;
    static const GEnumValue values[] = {
        {GST_MGLLAVA_OBJECT_MODE_OFF, "One question about the whole frame", "off"},
        {GST_MGLLAVA_OBJECT_MODE_NEW_TRACK, "One question per track, when it appears", "new-track"},
        {GST_MGLLAVA_OBJECT_MODE_INTERVAL, "One question per track, again every object-interval", "interval"},
        {0, NULL, NULL},
    };

    if (g_once_init_enter(&type)) {
        GType t = g_enum_register_static("GstMgllavaObjectMode", values);
        g_once_init_leave(&type, t);
    }
    return type;
}

/* ---- settings and state ------------------------------------------------ */

void gst_mgllava_trigger_settings_init(GstMgllavaTriggerSettings* s) {
    memset(s, 0, sizeof *s);
    s->object_interval = 10 * GST_SECOND;
    s->object_prompt = g_strdup(GST_MGLLAVA_DEFAULT_OBJECT_PROMPT);
    s->object_attribute = g_strdup(GST_MGLLAVA_DEFAULT_OBJECT_ATTRIBUTE);
}

void gst_mgllava_trigger_settings_clear(GstMgllavaTriggerSettings* s) {
    g_clear_pointer(&s->trigger_labels, g_free);
    g_clear_pointer(&s->object_prompt, g_free);
    g_clear_pointer(&s->object_attribute, g_free);
}

void gst_mgllava_trigger_state_init(GstMgllavaTriggerState* st) {
    st->tracker = gst_mgllava_tracker_new();
    st->tracks = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
    st->objects = g_array_new(FALSE, FALSE, sizeof(GstMgllavaFrameObject));
    st->questions = NULL;
    gst_mgllava_trigger_state_reset(st);
}

void gst_mgllava_trigger_state_clear(GstMgllavaTriggerState* st) {
    g_clear_pointer(&st->tracker, gst_mgllava_tracker_free);
    g_clear_pointer(&st->tracks, g_hash_table_unref);
    g_clear_pointer(&st->objects, g_array_unref);
    g_clear_pointer(&st->questions, g_array_unref);
}

void gst_mgllava_trigger_state_reset(GstMgllavaTriggerState* st) {
    gst_mgllava_tracker_reset(st->tracker);
    g_hash_table_remove_all(st->tracks);
    g_array_set_size(st->objects, 0);
    g_clear_pointer(&st->questions, g_array_unref);
    st->last_count = 0;
    st->last_fire_rt = GST_CLOCK_TIME_NONE;
    st->frame = 0;
}

/* ---- helpers ----------------------------------------------------------- */

const gchar* gst_mgllava_position_words(gdouble cx, gdouble cy, gint width, gint height) {
    static const gchar* const names[3][3] = {
        {"top left", "top", "top right"}, {"left", "center", "right"}, {"bottom left", "bottom", "bottom right"}};
    gint col = width > 0 ? (gint)(cx * 3 / width) : 1;
    gint row = height > 0 ? (gint)(cy * 3 / height) : 1;

    return names[CLAMP(row, 0, 2)][CLAMP(col, 0, 2)];
}

const gchar* gst_mgllava_roi_meta_get_attribute(GstVideoRegionOfInterestMeta* roi, const gchar* name, gsize len) {
    const gchar* found = NULL;
    GList* l;

    for (l = roi ? roi->params : NULL; l; l = l->next) {
        GstStructure* p = l->data;
        const gchar* attr = gst_structure_get_string(p, "attribute_name");
        const gchar* value = gst_structure_get_string(p, "label");

        if (!attr || !*attr) attr = gst_structure_get_name(p);
        if (value && strlen(attr) == len && strncmp(attr, name, len) == 0) found = value;
    }
    return found;
}

gchar* gst_mgllava_object_prompt_expand(const gchar* tmpl, const gchar* label, const gchar* position, gint id,
                                        GstVideoRegionOfInterestMeta* roi) {
    GString* s = g_string_new(NULL);
    const gchar* p = tmpl ? tmpl : "";

    while (*p) {
        const gchar* end = p[0] == '{' ? strchr(p + 1, '}') : NULL;
        const gchar* attr;

        if (p[0] == '{' && p[1] == '{') {
            g_string_append_c(s, '{');
            p += 2;
        } else if (p[0] == '}' && p[1] == '}') {
            g_string_append_c(s, '}');
            p += 2;
        } else if (g_str_has_prefix(p, "{label}")) {
            g_string_append(s, label ? label : "");
            p += strlen("{label}");
        } else if (g_str_has_prefix(p, "{position}")) {
            g_string_append(s, position ? position : "");
            p += strlen("{position}");
        } else if (g_str_has_prefix(p, "{id}")) {
            g_string_append_printf(s, "%d", id);
            p += strlen("{id}");
        } else if (end && end > p + 1 && (attr = gst_mgllava_roi_meta_get_attribute(roi, p + 1, end - p - 1))) {
            g_string_append(s, attr);
            p = end + 1;
        } else {
            g_string_append_c(s, *p++);
        }
    }
    return g_string_free(s, FALSE);
}

gint gst_mgllava_roi_meta_get_track_id(GstVideoRegionOfInterestMeta* roi) {
    GstStructure* p = gst_video_region_of_interest_meta_get_param(roi, "object_id");
    gint id = 0;

    if (p && gst_structure_get_int(p, "id", &id) && id != 0) return id;
    return roi->id;
}

/* The filter's own id on an untracked ROI meta, as a tracker writes it. */
static void set_own_track_id(GstVideoRegionOfInterestMeta* roi, gint id) {
    GstStructure* p = gst_video_region_of_interest_meta_get_param(roi, "object_id");

    roi->id = id;
    if (p)
        gst_structure_set(p, "id", G_TYPE_INT, id, NULL);
    else
        gst_video_region_of_interest_meta_add_param(roi, gst_structure_new("object_id", "id", G_TYPE_INT, id, NULL));
}

static gboolean label_in(gchar** labels, const gchar* label) {
    if (!labels || !labels[0]) return TRUE;
    return g_strv_contains((const gchar* const*)labels, label);
}

static gchar** split_labels(const gchar* list) {
    gchar** v;
    gchar** l;

    if (!list || !*list) return NULL;
    v = g_strsplit(list, ",", -1);
    for (l = v; *l; l++) g_strstrip(*l);
    return v;
}

/* ---- the frame's objects ----------------------------------------------- */

/* Reads the objects of @buf into st->objects with their track ids and
 * whether each track is new; gives ids to untracked ROI metas. */
static void scan_objects(GstMgllavaFilter* self, GstMgllavaTriggerState* st, GstBuffer* buf, gchar** labels,
                         gdouble min_size) {
    gint w = GST_VIDEO_INFO_WIDTH(&self->info), h = GST_VIDEO_INFO_HEIGHT(&self->info);
    GArray* untracked = g_array_new(FALSE, FALSE, sizeof(guint));
    GArray* tboxes = g_array_new(FALSE, FALSE, sizeof(GstMgllavaTrackBox));
    GstMeta* meta;
    gpointer state = NULL;
    GHashTableIter it;
    gpointer key, value;
    guint i;

    g_array_set_size(st->objects, 0);
    while ((meta = gst_buffer_iterate_meta_filtered(buf, &state, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))) {
        GstVideoRegionOfInterestMeta* roi = (GstVideoRegionOfInterestMeta*)meta;
        GstMgllavaFrameObject o = {0};

        o.roi = roi;
        o.label = gst_mgllava_roi_meta_get_label(roi);
        if (!label_in(labels, o.label)) continue;
        o.x1 = MIN((gdouble)roi->x, w);
        o.y1 = MIN((gdouble)roi->y, h);
        o.x2 = MIN((gdouble)roi->x + roi->w, w);
        o.y2 = MIN((gdouble)roi->y + roi->h, h);
        if (o.x2 <= o.x1 || o.y2 <= o.y1) continue;
        if (o.x2 - o.x1 < min_size || o.y2 - o.y1 < min_size) continue;
        if (!gst_mgllava_roi_meta_get_confidence(roi, &o.confidence)) o.confidence = 1.0;
        o.id = gst_mgllava_roi_meta_get_track_id(roi);
        if (o.id == 0) {
            GstMgllavaTrackBox tb = {o.x1, o.y1, o.x2, o.y2, o.label};
            guint idx = st->objects->len;

            g_array_append_val(untracked, idx);
            g_array_append_val(tboxes, tb);
        }
        g_array_append_val(st->objects, o);
    }

    /* untracked metas (cvtracker's, a detector without a tracker): the
     * filter's own IoU tracker, always run so its tracks age */
    {
        GstMgllavaTrackParams tp = GST_MGLLAVA_TRACK_PARAMS_INIT;
        gint* ids = g_new0(gint, tboxes->len + 1);

        gst_mgllava_tracker_update(st->tracker, &tp, (const GstMgllavaTrackBox*)tboxes->data, tboxes->len, ids, NULL);
        for (i = 0; i < untracked->len; i++) {
            GstMgllavaFrameObject* o =
                &g_array_index(st->objects, GstMgllavaFrameObject, g_array_index(untracked, guint, i));

            o->id = GST_MGLLAVA_TRIGGER_OWN_ID_BASE + ids[i];
            set_own_track_id(o->roi, o->id);
        }
        g_free(ids);
    }

    for (i = 0; i < st->objects->len; i++) {
        GstMgllavaFrameObject* o = &g_array_index(st->objects, GstMgllavaFrameObject, i);
        GstMgllavaTrackInfo* ti = g_hash_table_lookup(st->tracks, GINT_TO_POINTER(o->id));

        o->is_new = ti == NULL;
        if (!ti) {
            ti = g_new0(GstMgllavaTrackInfo, 1);
            ti->asked_rt = GST_CLOCK_TIME_NONE;
            g_hash_table_insert(st->tracks, GINT_TO_POINTER(o->id), ti);
        }
        ti->last_seen = st->frame;
    }

    /* forget tracks long gone */
    if (st->frame % 64 == 0) {
        g_hash_table_iter_init(&it, st->tracks);
        while (g_hash_table_iter_next(&it, &key, &value))
            if (st->frame - ((GstMgllavaTrackInfo*)value)->last_seen > TRACK_FORGET_FRAMES)
                g_hash_table_iter_remove(&it);
    }
    st->frame++;
    g_array_unref(untracked);
    g_array_unref(tboxes);
}

/* ---- per-object questions ---------------------------------------------- */

/* Questions for the due objects of the frame (at most @max, 0 = all, the
 * most confident first); returns how many. */
static guint select_objects(GstMgllavaFilter* self, GstMgllavaTriggerState* st, const GstMgllavaTriggerSettings* cfg,
                            GstClockTime rt, guint max) {
    gint w = GST_VIDEO_INFO_WIDTH(&self->info), h = GST_VIDEO_INFO_HEIGHT(&self->info);
    GPtrArray* due = g_ptr_array_new();
    guint i, n;

    for (i = 0; i < st->objects->len; i++) {
        GstMgllavaFrameObject* o = &g_array_index(st->objects, GstMgllavaFrameObject, i);
        GstMgllavaTrackInfo* ti = g_hash_table_lookup(st->tracks, GINT_TO_POINTER(o->id));

        if (!ti->asked)
            g_ptr_array_add(due, o);
        else if (cfg->object_mode == GST_MGLLAVA_OBJECT_MODE_INTERVAL && GST_CLOCK_TIME_IS_VALID(rt) &&
                 GST_CLOCK_TIME_IS_VALID(ti->asked_rt) && rt >= ti->asked_rt + cfg->object_interval)
            g_ptr_array_add(due, o);
    }
    n = max > 0 ? MIN(max, due->len) : due->len;
    if (n < due->len) {
        /* the most confident first; equal ones in buffer order (stable) */
        for (i = 1; i < due->len; i++) {
            gpointer x = due->pdata[i];
            guint j = i;

            while (j > 0 &&
                   ((GstMgllavaFrameObject*)due->pdata[j - 1])->confidence < ((GstMgllavaFrameObject*)x)->confidence) {
                due->pdata[j] = due->pdata[j - 1];
                j--;
            }
            due->pdata[j] = x;
        }
    }
    if (n > 0 && !st->questions) {
        st->questions = g_array_new(FALSE, TRUE, sizeof(GstMgllavaObjectQuestion));
        g_array_set_clear_func(st->questions, gst_mgllava_object_question_clear);
    }
    for (i = 0; i < n; i++) {
        GstMgllavaFrameObject* o = due->pdata[i];
        GstMgllavaTrackInfo* ti = g_hash_table_lookup(st->tracks, GINT_TO_POINTER(o->id));
        GstMgllavaObjectQuestion q = {0};
        const gchar* pos = gst_mgllava_position_words((o->x1 + o->x2) / 2, (o->y1 + o->y2) / 2, w, h);

        q.id = o->id;
        q.label = g_strdup(o->label);
        q.prompt = gst_mgllava_object_prompt_expand(cfg->object_prompt, o->label, pos, o->id, o->roi);
        q.box.x1 = (float)o->x1;
        q.box.y1 = (float)o->y1;
        q.box.x2 = (float)o->x2;
        q.box.y2 = (float)o->y2;
        q.box.score = (float)o->confidence;
        q.box.label = q.label;
        g_array_append_val(st->questions, q);
        ti->asked = TRUE;
        ti->asked_rt = rt;
    }
    g_ptr_array_free(due, TRUE);
    return n;
}

void gst_mgllava_object_question_clear(gpointer data) {
    GstMgllavaObjectQuestion* q = data;

    g_free(q->label);
    g_free(q->prompt);
}

GArray* gst_mgllava_filter_trigger_take_questions(GstMgllavaFilter* self) {
    GArray* q = self->trig_state.questions;

    self->trig_state.questions = NULL;
    return q;
}

/* ---- the decision ------------------------------------------------------ */

static guint fire_reasons(GstMgllavaTriggerState* st, guint flags, gchar** trigger_labels) {
    guint reasons = 0, i, n = st->objects->len;

    for (i = 0; i < n; i++) {
        const GstMgllavaFrameObject* o = &g_array_index(st->objects, GstMgllavaFrameObject, i);

        if (!o->is_new) continue;
        if (flags & GST_MGLLAVA_TRIGGER_NEW_TRACK) reasons |= GST_MGLLAVA_TRIGGER_NEW_TRACK;
        if ((flags & GST_MGLLAVA_TRIGGER_LABEL) && label_in(trigger_labels, o->label))
            reasons |= GST_MGLLAVA_TRIGGER_LABEL;
    }
    if ((flags & GST_MGLLAVA_TRIGGER_COUNT) && (gint)n != st->last_count) reasons |= GST_MGLLAVA_TRIGGER_COUNT;
    st->last_count = (gint)n;
    return reasons;
}

gboolean gst_mgllava_filter_trigger_decide(GstMgllavaFilter* self, GstBuffer* buf, GstClockTime rt, gboolean late,
                                           gboolean interval_due) {
    GstMgllavaTriggerState* st = &self->trig_state;
    GstMgllavaTriggerSettings cfg;
    guint interval, max_objects, reasons, n_questions = 0;
    guint64 interval_time;
    gchar **labels, **trigger_labels;
    gdouble min_size;
    gboolean periodic, cooled = FALSE;

    GST_OBJECT_LOCK(self);
    cfg = self->trig;
    if (cfg.trigger == 0 && cfg.object_mode == GST_MGLLAVA_OBJECT_MODE_OFF) {
        GST_OBJECT_UNLOCK(self);
        if (interval_due) {
            g_mutex_lock(&self->lock);
            self->trig_stats.interval++;
            g_mutex_unlock(&self->lock);
        }
        return interval_due;
    }
    cfg.object_prompt = g_strdup(cfg.object_prompt);
    trigger_labels = split_labels(cfg.trigger_labels);
    cfg.trigger_labels = NULL;
    cfg.object_attribute = NULL;
    labels = split_labels(self->object_labels);
    min_size = self->min_object_size;
    max_objects = self->max_objects;
    interval = self->interval;
    interval_time = self->interval_time;
    GST_OBJECT_UNLOCK(self);

    scan_objects(self, st, buf, labels, min_size);
    g_strfreev(labels);

    if (cfg.object_mode != GST_MGLLAVA_OBJECT_MODE_OFF) {
        /* a late frame asks nothing: its objects stay due for a later one */
        if (!late) n_questions = select_objects(self, st, &cfg, rt, max_objects);
        g_free(cfg.object_prompt);
        g_strfreev(trigger_labels);
        if (n_questions == 0) return FALSE;
        g_mutex_lock(&self->lock);
        self->trig_stats.objects++;
        self->trig_stats.object_questions += n_questions;
        g_mutex_unlock(&self->lock);
        return TRUE;
    }
    g_free(cfg.object_prompt);

    /* interval=0 (and no interval-time) with a trigger: triggers only */
    periodic = interval_due && !(interval == 0 && interval_time == 0);
    reasons = fire_reasons(st, cfg.trigger, trigger_labels);
    g_strfreev(trigger_labels);
    if (late) reasons = 0;
    if (reasons && cfg.cooldown > 0 && GST_CLOCK_TIME_IS_VALID(rt) && GST_CLOCK_TIME_IS_VALID(st->last_fire_rt) &&
        rt < st->last_fire_rt + cfg.cooldown) {
        reasons = 0;
        cooled = TRUE;
    }
    if (reasons) st->last_fire_rt = rt;

    g_mutex_lock(&self->lock);
    if (periodic) self->trig_stats.interval++;
    if (reasons & GST_MGLLAVA_TRIGGER_LABEL) self->trig_stats.label++;
    if (reasons & GST_MGLLAVA_TRIGGER_NEW_TRACK) self->trig_stats.new_track++;
    if (reasons & GST_MGLLAVA_TRIGGER_COUNT) self->trig_stats.count++;
    if (cooled) self->trig_stats.cooled++;
    g_mutex_unlock(&self->lock);
    if (reasons)
        GST_LOG_OBJECT(self, "frame %" G_GUINT64_FORMAT ": triggered (%s%s%s)", self->frame_count,
                       reasons & GST_MGLLAVA_TRIGGER_LABEL ? "label " : "",
                       reasons & GST_MGLLAVA_TRIGGER_NEW_TRACK ? "new-track " : "",
                       reasons & GST_MGLLAVA_TRIGGER_COUNT ? "count" : "");
    return periodic || reasons != 0;
}

void gst_mgllava_filter_trigger_add_stats(GstMgllavaFilter* self, GstStructure* s) {
    const GstMgllavaTriggerStats* t = &self->trig_stats;

    gst_structure_set(s, "sampled-interval", G_TYPE_UINT64, t->interval, "sampled-label", G_TYPE_UINT64, t->label,
                      "sampled-new-track", G_TYPE_UINT64, t->new_track, "sampled-count", G_TYPE_UINT64, t->count,
                      "sampled-objects", G_TYPE_UINT64, t->objects, "trigger-cooldown-skipped", G_TYPE_UINT64,
                      t->cooled, "object-questions", G_TYPE_UINT64, t->object_questions, "object-answers",
                      G_TYPE_UINT64, t->object_answers, NULL);
}

/* ---- properties -------------------------------------------------------- */

enum {
    PROP_TRIGGER = GST_MGLLAVA_TRIGGER_PROP_BASE,
    PROP_TRIGGER_LABELS,
    PROP_TRIGGER_COOLDOWN,
    PROP_OBJECT_MODE,
    PROP_OBJECT_INTERVAL,
    PROP_OBJECT_PROMPT,
    PROP_OBJECT_ATTRIBUTE,
};

void gst_mgllava_filter_trigger_install_properties(GObjectClass* klass) {
    const GParamFlags mut = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING;

    g_object_class_install_property(
        klass, PROP_TRIGGER,
        g_param_spec_flags("trigger", "Trigger",
                           "Also sample a frame when: label = an object with a label in trigger-labels appears, "
                           "new-track = a new track id appears, count = the number of objects changes (with "
                           "interval=0 and interval-time=0 only these sample)",
                           GST_TYPE_MGLLAVA_TRIGGER_FLAGS, 0, mut));
    g_object_class_install_property(klass, PROP_TRIGGER_LABELS,
                                    g_param_spec_string("trigger-labels", "Trigger labels",
                                                        "Comma-separated labels for trigger=label (empty = any label)",
                                                        NULL, mut));
    g_object_class_install_property(
        klass, PROP_TRIGGER_COOLDOWN,
        g_param_spec_uint64("trigger-cooldown", "Trigger cooldown",
                            "After a triggered frame, triggers fire again only this many ns of running time later "
                            "(0 = none)",
                            0, G_MAXUINT64, 0, mut));
    g_object_class_install_property(
        klass, PROP_OBJECT_MODE,
        g_param_spec_enum("object-mode", "Object mode",
                          "Ask object-prompt about each object (its box as the only object tokens): once per track "
                          "(new-track) or every object-interval per track (interval); the answer goes on the object's "
                          "ROI meta. interval and trigger are not used in these modes",
                          GST_TYPE_MGLLAVA_OBJECT_MODE, GST_MGLLAVA_OBJECT_MODE_OFF, mut));
    g_object_class_install_property(klass, PROP_OBJECT_INTERVAL,
                                    g_param_spec_uint64("object-interval", "Object interval",
                                                        "object-mode=interval: ask about a track again after this "
                                                        "many ns of running time",
                                                        1, G_MAXUINT64, 10 * GST_SECOND, mut));
    g_object_class_install_property(
        klass, PROP_OBJECT_PROMPT,
        g_param_spec_string("object-prompt", "Object prompt",
                            "Question asked about each object in object-mode: {label}, {position} (top left ... "
                            "bottom right, thirds of the frame), {id} (track id) and {NAME} (the object's ROI param "
                            "with attribute_name NAME, e.g. an earlier filter's answer) are replaced",
                            GST_MGLLAVA_DEFAULT_OBJECT_PROMPT, mut));
    g_object_class_install_property(
        klass, PROP_OBJECT_ATTRIBUTE,
        g_param_spec_string("object-attribute", "Object attribute",
                            "attribute_name of the param structure a per-object answer adds to its ROI meta",
                            GST_MGLLAVA_DEFAULT_OBJECT_ATTRIBUTE, mut));
    gst_type_mark_as_plugin_api(GST_TYPE_MGLLAVA_TRIGGER_FLAGS, 0);
    gst_type_mark_as_plugin_api(GST_TYPE_MGLLAVA_OBJECT_MODE, 0);
}

static void set_string(gchar** dst, const GValue* value, const gchar* fallback) {
    const gchar* v = g_value_get_string(value);

    g_free(*dst);
    *dst = g_strdup(v ? v : fallback);
}

gboolean gst_mgllava_filter_trigger_set_property(GstMgllavaFilter* self, guint prop_id, const GValue* value) {
    GstMgllavaTriggerSettings* s = &self->trig;

    switch (prop_id) {
    case PROP_TRIGGER: s->trigger = g_value_get_flags(value); break;
    case PROP_TRIGGER_LABELS: set_string(&s->trigger_labels, value, NULL); break;
    case PROP_TRIGGER_COOLDOWN: s->cooldown = g_value_get_uint64(value); break;
    case PROP_OBJECT_MODE: s->object_mode = g_value_get_enum(value); break;
    case PROP_OBJECT_INTERVAL: s->object_interval = g_value_get_uint64(value); break;
    case PROP_OBJECT_PROMPT:
        set_string(&s->object_prompt, value, GST_MGLLAVA_DEFAULT_OBJECT_PROMPT);
        if (!*g_strstrip(s->object_prompt)) {
            g_warning("mgllavafilter: object-prompt must not be empty; using \"%s\"",
                      GST_MGLLAVA_DEFAULT_OBJECT_PROMPT);
            g_free(s->object_prompt);
            s->object_prompt = g_strdup(GST_MGLLAVA_DEFAULT_OBJECT_PROMPT);
        }
        break;
    case PROP_OBJECT_ATTRIBUTE:
        set_string(&s->object_attribute, value, GST_MGLLAVA_DEFAULT_OBJECT_ATTRIBUTE);
        if (!*s->object_attribute) {
            g_warning("mgllavafilter: object-attribute must not be empty; using \"%s\"",
                      GST_MGLLAVA_DEFAULT_OBJECT_ATTRIBUTE);
            g_free(s->object_attribute);
            s->object_attribute = g_strdup(GST_MGLLAVA_DEFAULT_OBJECT_ATTRIBUTE);
        }
        break;
    default: return FALSE;
    }
    return TRUE;
}

gboolean gst_mgllava_filter_trigger_get_property(GstMgllavaFilter* self, guint prop_id, GValue* value) {
    const GstMgllavaTriggerSettings* s = &self->trig;

    switch (prop_id) {
    case PROP_TRIGGER: g_value_set_flags(value, s->trigger); break;
    case PROP_TRIGGER_LABELS: g_value_set_string(value, s->trigger_labels); break;
    case PROP_TRIGGER_COOLDOWN: g_value_set_uint64(value, s->cooldown); break;
    case PROP_OBJECT_MODE: g_value_set_enum(value, s->object_mode); break;
    case PROP_OBJECT_INTERVAL: g_value_set_uint64(value, s->object_interval); break;
    case PROP_OBJECT_PROMPT: g_value_set_string(value, s->object_prompt); break;
    case PROP_OBJECT_ATTRIBUTE: g_value_set_string(value, s->object_attribute); break;
    default: return FALSE;
    }
    return TRUE;
}
