/* gstmgllavapublish.c
 *
 * SECTION:element-mgllavapublish
 * @title: mgllavapublish
 *
 * Passthrough element that sends each frame's detections and MG-LLaVA answers
 * as one JSON message (the layouts of mgllavajson: format=mgllava or
 * format=dlstreamer) to a file, an MQTT broker (libmosquitto) or a Redis
 * stream (hiredis), in the manner of DL Streamer's gvametapublish.
 *
 * The streaming thread only formats the message and appends it to a bounded
 * queue (max-queue; overflow policy drop-oldest or drop-newest, counted in
 * stats); a sender thread connects, publishes, acknowledges and reconnects
 * with backoff, re-sending what was in flight when a connection dropped. At
 * EOS the element waits for the queue to empty, at most flush-timeout, before
 * forwarding the EOS. docs/publishing.md describes it in full.
 *
 * |[
 * gst-launch-1.0 mgllavascenesrc ! mgllavablobdetect ! \
 *     mgllavafilter model=models/mgllava-demo ! \
 *     mgllavapublish method=mqtt address=127.0.0.1:1883 topic=cams/1 ! fakesink
 * ]|
 */
#include "gstmgllavaformat.h"
#include "gstmgllavameta.h"
#include "gstmgllavaoutbox.h"
#include "gstmgllavaoutput.h"
#include "gstmgllavasender.h"

#include <gst/base/gstbasetransform.h>
#include <gst/video/video.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

GST_DEBUG_CATEGORY_STATIC(gst_mgllava_publish_debug);
#define GST_CAT_DEFAULT gst_mgllava_publish_debug

typedef enum {
    METHOD_FILE,
    METHOD_MQTT,
    METHOD_REDIS,
} GstMgllavaPublishMethod;

typedef enum {
    OVERFLOW_DROP_OLDEST,
    OVERFLOW_DROP_NEWEST,
} GstMgllavaPublishOverflow;

#define GST_TYPE_MGLLAVA_PUBLISH_METHOD (gst_mgllava_publish_method_get_type())
static GType gst_mgllava_publish_method_get_type(void) {
    static GType type = 0;
    static const GEnumValue values[] = {
        {METHOD_FILE, "JSON lines to a file (file-path; \"-\" = standard output)", "file"},
        {METHOD_MQTT, "MQTT 3.1.1 (libmosquitto)", "mqtt"},
        {METHOD_REDIS, "Redis stream, one XADD per message (hiredis)", "redis"},
        {0, NULL, NULL},
    };

    if (g_once_init_enter(&type)) {
        GType t = g_enum_register_static("GstMgllavaPublishMethod", values);
        g_once_init_leave(&type, t);
    }
    return type;
}

#define GST_TYPE_MGLLAVA_PUBLISH_OVERFLOW (gst_mgllava_publish_overflow_get_type())
static GType gst_mgllava_publish_overflow_get_type(void) {
    static GType type = 0;
    static const GEnumValue values[] = {
        {OVERFLOW_DROP_OLDEST, "Discard the oldest waiting message", "drop-oldest"},
        {OVERFLOW_DROP_NEWEST, "Discard the new message", "drop-newest"},
        {0, NULL, NULL},
    };

    if (g_once_init_enter(&type)) {
        GType t = g_enum_register_static("GstMgllavaPublishOverflow", values);
        g_once_init_leave(&type, t);
    }
    return type;
}

#define GST_TYPE_MGLLAVA_PUBLISH (gst_mgllava_publish_get_type())
G_DECLARE_FINAL_TYPE(GstMgllavaPublish, gst_mgllava_publish, GST, MGLLAVA_PUBLISH, GstBaseTransform)

struct _GstMgllavaPublish {
    GstBaseTransform parent;

    /* with OBJECT_LOCK */
    GstMgllavaPublishMethod method;
    gchar* file_path;
    gchar* address;
    gchar* topic;
    gchar* client_id;
    guint qos;
    gboolean retain;
    gchar *username, *password;
    gboolean tls, tls_insecure;
    gchar *tls_ca_file, *tls_cert_file, *tls_key_file;
    guint64 max_stream_length;
    guint max_queue;
    GstMgllavaPublishOverflow overflow;
    GstClockTime max_reconnect_interval;
    GstClockTime connect_timeout;
    GstClockTime flush_timeout;
    gboolean skip_empty;
    GstMgllavaFormatSettings fmt;

    /* between start and stop (and the outbox until the next start, for stats) */
    GstMgllavaOutbox* outbox;
    GstMgllavaSenderConfig config;
    GstMgllavaPublishMethod running_method;
    GThread* sender;
    gboolean flushed; /* waited for the queue at EOS; nothing came since */

    /* streaming thread */
    GstVideoInfo info;
    gboolean have_info;
    guint64 frame;
    GString* line;
};

enum {
    PROP_0,
    PROP_METHOD,
    PROP_FILE_PATH,
    PROP_ADDRESS,
    PROP_TOPIC,
    PROP_CLIENT_ID,
    PROP_QOS,
    PROP_RETAIN,
    PROP_USERNAME,
    PROP_PASSWORD,
    PROP_TLS,
    PROP_TLS_CA_FILE,
    PROP_TLS_CERT_FILE,
    PROP_TLS_KEY_FILE,
    PROP_TLS_INSECURE,
    PROP_MAX_STREAM_LENGTH,
    PROP_MAX_QUEUE,
    PROP_OVERFLOW,
    PROP_MAX_RECONNECT_INTERVAL,
    PROP_CONNECT_TIMEOUT,
    PROP_FLUSH_TIMEOUT,
    PROP_SKIP_EMPTY,
    PROP_FORMAT,
    PROP_TIMINGS,
    PROP_SOURCE,
    PROP_TAGS,
    PROP_STATS,
};

G_DEFINE_TYPE(GstMgllavaPublish, gst_mgllava_publish, GST_TYPE_BASE_TRANSFORM);
GST_ELEMENT_REGISTER_DEFINE(mgllavapublish, "mgllavapublish", GST_RANK_NONE, GST_TYPE_MGLLAVA_PUBLISH);

static GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS("video/x-raw(ANY)"));
static GstStaticPadTemplate src_template =
    GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS("video/x-raw(ANY)"));

#define DEFAULT_TOPIC "mgllava"
#define DEFAULT_QOS 1
#define DEFAULT_MAX_QUEUE 1000
#define DEFAULT_MAX_RECONNECT_INTERVAL (5 * GST_SECOND)
#define DEFAULT_CONNECT_TIMEOUT (5 * GST_SECOND)
#define DEFAULT_FLUSH_TIMEOUT (5 * GST_SECOND)

/* "host:port", "[v6]:port", "host" (default port), "tcp://host:port",
 * "mqtt://...", "redis://..."; for Redis "unix:/path". FALSE with @error. */
static gboolean parse_address(const gchar* address, guint default_port, GstMgllavaSenderConfig* c, gboolean allow_unix,
                              gchar** error) {
    const gchar* a = address && *address ? address : "localhost";
    const gchar* colon;
    gchar* end = NULL;
    guint64 port = default_port;

    if (allow_unix && g_str_has_prefix(a, "unix:")) {
        if (a[5] == '\0') {
            *error = g_strdup("empty Unix socket path");
            return FALSE;
        }
        c->unix_path = g_strdup(a + 5);
        return TRUE;
    }
    if (strstr(a, "://")) a = strstr(a, "://") + 3;
    if (*a == '[') {
        const gchar* close = strchr(a, ']');

        if (!close) {
            *error = g_strdup_printf("bad address \"%s\"", address);
            return FALSE;
        }
        c->host = g_strndup(a + 1, close - a - 1);
        colon = close[1] == ':' ? close + 1 : NULL;
        if (close[1] != '\0' && !colon) {
            *error = g_strdup_printf("bad address \"%s\"", address);
            return FALSE;
        }
    } else {
        colon = strrchr(a, ':');
        c->host = colon ? g_strndup(a, colon - a) : g_strdup(a);
    }
    if (colon) {
        port = g_ascii_strtoull(colon + 1, &end, 10);
        if (end == colon + 1 || *end != '\0' || port == 0 || port > 65535) {
            *error = g_strdup_printf("bad port in address \"%s\"", address);
            return FALSE;
        }
    }
    if (!*c->host) {
        *error = g_strdup_printf("no host in address \"%s\"", address);
        return FALSE;
    }
    c->port = (guint)port;
    return TRUE;
}

static gboolean file_readable(const gchar* path) { return path == NULL || g_file_test(path, G_FILE_TEST_IS_REGULAR); }

static gpointer sender_thread(gpointer data) {
    GstMgllavaPublish* self = data;

    switch (self->running_method) {
    case METHOD_FILE: gst_mgllava_sender_run_file(self->outbox, &self->config); break;
    case METHOD_MQTT: gst_mgllava_sender_run_mqtt(self->outbox, &self->config); break;
    case METHOD_REDIS: gst_mgllava_sender_run_redis(self->outbox, &self->config); break;
    }
    return NULL;
}

static gboolean gst_mgllava_publish_start(GstBaseTransform* trans) {
    GstMgllavaPublish* self = GST_MGLLAVA_PUBLISH(trans);
    GstMgllavaSenderConfig* c = &self->config;
    gchar *error = NULL, *what = NULL, *file_path;
    gchar* address;
    guint max_queue;
    gboolean drop_newest;

    gst_mgllava_sender_config_clear(c);
    memset(c, 0, sizeof *c);
    GST_OBJECT_LOCK(self);
    self->running_method = self->method;
    file_path = g_strdup(self->file_path);
    address = g_strdup(self->address);
    c->topic = g_strdup(self->topic && *self->topic ? self->topic : DEFAULT_TOPIC);
    c->client_id = self->client_id && *self->client_id ? g_strdup(self->client_id) : NULL;
    c->qos = self->qos;
    c->retain = self->retain;
    c->username = self->username && *self->username ? g_strdup(self->username) : NULL;
    c->password = self->password && *self->password ? g_strdup(self->password) : NULL;
    c->tls = self->tls;
    c->tls_insecure = self->tls_insecure;
    c->tls_ca_file = g_strdup(self->tls_ca_file);
    c->tls_cert_file = g_strdup(self->tls_cert_file);
    c->tls_key_file = g_strdup(self->tls_key_file);
    c->max_stream_length = self->max_stream_length;
    c->max_backoff_ms = (guint)MIN(self->max_reconnect_interval / GST_MSECOND, G_MAXUINT);
    c->connect_timeout_ms = (guint)CLAMP(self->connect_timeout / GST_MSECOND, 100, G_MAXUINT);
    max_queue = self->max_queue;
    drop_newest = self->overflow == OVERFLOW_DROP_NEWEST;
    GST_OBJECT_UNLOCK(self);
    c->keepalive_s = 30;

    if (!c->client_id)
        c->client_id = g_strdup_printf("mgllava-%s-%d-%s", g_get_host_name(), (int)getpid(), GST_OBJECT_NAME(self));

    switch (self->running_method) {
    case METHOD_FILE:
        c->file = gst_mgllava_output_open(
            GST_ELEMENT(self), file_path && *file_path && strcmp(file_path, "stdout") != 0 ? file_path : "-");
        if (!c->file) goto failed; /* the error is posted */
        what = g_strdup_printf("file %s", file_path ? file_path : "-");
        break;
    case METHOD_MQTT:
        if (!gst_mgllava_sender_mqtt_available()) {
            error = g_strdup("method=mqtt is unavailable: this build has no "
                             "libmosquitto (install libmosquitto-dev and rebuild)");
            goto config_error;
        }
        if (!parse_address(address, c->tls ? 8883 : 1883, c, FALSE, &error)) goto config_error;
        if (strlen(c->client_id) > 23)
            GST_INFO_OBJECT(self, "client id longer than MQTT 3.1.1's 23 bytes: "
                                  "most brokers accept it, some refuse it");
        what = g_strdup_printf("MQTT broker %s:%u (topic %s)", c->host, c->port, c->topic);
        break;
    case METHOD_REDIS:
        if (!gst_mgllava_sender_redis_available()) {
            error = g_strdup("method=redis is unavailable: this build has no "
                             "hiredis (install libhiredis-dev and rebuild)");
            goto config_error;
        }
        if (c->tls) {
            error = g_strdup(gst_mgllava_sender_redis_tls_unavailable());
            goto config_error;
        }
        if (c->qos != DEFAULT_QOS) GST_INFO_OBJECT(self, "qos applies to MQTT only");
        if (!parse_address(address, 6379, c, TRUE, &error)) goto config_error;
        what = c->unix_path ? g_strdup_printf("Redis %s (stream %s)", c->unix_path, c->topic)
                            : g_strdup_printf("Redis %s:%u (stream %s)", c->host, c->port, c->topic);
        break;
    }
    if (c->tls &&
        !(file_readable(c->tls_ca_file) && file_readable(c->tls_cert_file) && file_readable(c->tls_key_file))) {
        error = g_strdup("a TLS file (tls-ca-file, tls-cert-file, tls-key-file) "
                         "is not a readable file");
        goto config_error;
    }
    if (!c->tls_cert_file != !c->tls_key_file) {
        error = g_strdup("tls-cert-file and tls-key-file go together");
        goto config_error;
    }

    {
        GstMgllavaOutbox* old = self->outbox;

        GST_OBJECT_LOCK(self);
        self->outbox = gst_mgllava_outbox_new(GST_ELEMENT(self), what, max_queue, drop_newest);
        GST_OBJECT_UNLOCK(self);
        gst_mgllava_outbox_free(old);
    }
    self->flushed = FALSE;
    self->frame = 0;
    self->have_info = FALSE;
    if (!self->line) self->line = g_string_sized_new(1024);
    self->sender = g_thread_new("mgllavapublish", sender_thread, self);
    GST_INFO_OBJECT(self, "publishing to %s", what);
    g_free(what);
    g_free(file_path);
    g_free(address);
    return TRUE;

config_error:
    GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS, ("%s", error), (NULL));
failed:
    g_free(error);
    g_free(what);
    g_free(file_path);
    g_free(address);
    if (c->file) gst_mgllava_output_close(c->file);
    c->file = NULL;
    gst_mgllava_sender_config_clear(c);
    return FALSE;
}

static gboolean gst_mgllava_publish_stop(GstBaseTransform* trans) {
    GstMgllavaPublish* self = GST_MGLLAVA_PUBLISH(trans);
    GstClockTime timeout;

    if (!self->sender) return TRUE;
    GST_OBJECT_LOCK(self);
    timeout = self->flush_timeout;
    GST_OBJECT_UNLOCK(self);
    if (!self->flushed && timeout > 0 && gst_mgllava_outbox_n_queued(self->outbox) > 0 &&
        !gst_mgllava_outbox_drain(self->outbox, timeout))
        GST_WARNING_OBJECT(self, "%u messages not sent when stopping", gst_mgllava_outbox_n_queued(self->outbox));
    gst_mgllava_outbox_stop(self->outbox);
    g_thread_join(self->sender);
    self->sender = NULL;
    gst_mgllava_outbox_discard(self->outbox);
    if (self->config.file) gst_mgllava_output_close(self->config.file);
    self->config.file = NULL;
    gst_mgllava_sender_config_clear(&self->config);
    return TRUE;
}

static gboolean gst_mgllava_publish_set_caps(GstBaseTransform* trans, GstCaps* incaps, GstCaps* outcaps) {
    GstMgllavaPublish* self = GST_MGLLAVA_PUBLISH(trans);

    self->have_info = gst_video_info_from_caps(&self->info, incaps);
    return TRUE;
}

static void enqueue_line(GstMgllavaPublish* self) {
    GString* s = self->line;
    gsize len = s->len;

    /* a message is the JSON object alone, without the line's newline (the
     * file method writes it back) */
    if (self->running_method != METHOD_FILE && len > 0 && s->str[len - 1] == '\n') len--;
    gst_mgllava_outbox_push(self->outbox, g_strndup(s->str, len), len);
}

static GstFlowReturn gst_mgllava_publish_transform_ip(GstBaseTransform* trans, GstBuffer* buf) {
    GstMgllavaPublish* self = GST_MGLLAVA_PUBLISH(trans);
    GstMgllavaFormatSettings st;
    gboolean skip_empty;
    guint n;

    GST_OBJECT_LOCK(self);
    skip_empty = self->skip_empty;
    gst_mgllava_format_settings_copy(&st, &self->fmt);
    GST_OBJECT_UNLOCK(self);

    n = gst_mgllava_format_buffer(self->line, &st, buf, self->have_info ? &self->info : NULL, &trans->segment,
                                  self->frame);
    gst_mgllava_format_settings_clear(&st);
    self->frame++;
    if (!skip_empty || n > 0) {
        enqueue_line(self);
        self->flushed = FALSE;
    }
    return GST_FLOW_OK;
}

static gboolean gst_mgllava_publish_sink_event(GstBaseTransform* trans, GstEvent* event) {
    GstMgllavaPublish* self = GST_MGLLAVA_PUBLISH(trans);

    if (self->outbox && gst_mgllava_late_results_event_get_size(event) > 0) {
        GstMgllavaFormatSettings st;

        GST_OBJECT_LOCK(self);
        gst_mgllava_format_settings_copy(&st, &self->fmt);
        GST_OBJECT_UNLOCK(self);
        if (gst_mgllava_format_late_results(self->line, &st, event, self->have_info ? &self->info : NULL) > 0) {
            enqueue_line(self);
            self->flushed = FALSE;
        }
        gst_mgllava_format_settings_clear(&st);
    } else if (GST_EVENT_TYPE(event) == GST_EVENT_EOS && self->outbox) {
        GstClockTime timeout;

        GST_OBJECT_LOCK(self);
        timeout = self->flush_timeout;
        GST_OBJECT_UNLOCK(self);
        /* deliver what is queued before the EOS goes on, at most flush-timeout */
        if (timeout > 0) {
            self->flushed = TRUE;
            if (!gst_mgllava_outbox_drain(self->outbox, timeout))
                GST_ELEMENT_WARNING(self, RESOURCE, WRITE,
                                    ("%u messages not yet published at EOS after flush-timeout",
                                     gst_mgllava_outbox_n_queued(self->outbox)),
                                    ("they stay queued until the element stops"));
        }
    }
    return GST_BASE_TRANSFORM_CLASS(gst_mgllava_publish_parent_class)->sink_event(trans, event);
}

#define SET_STR(field)                                                                                                 \
    do {                                                                                                               \
        g_free(self->field);                                                                                           \
        self->field = g_value_dup_string(value);                                                                       \
    } while (0)

static void gst_mgllava_publish_set_property(GObject* object, guint prop_id, const GValue* value, GParamSpec* pspec) {
    GstMgllavaPublish* self = GST_MGLLAVA_PUBLISH(object);

    GST_OBJECT_LOCK(self);
    switch (prop_id) {
    case PROP_METHOD: self->method = g_value_get_enum(value); break;
    case PROP_FILE_PATH: SET_STR(file_path); break;
    case PROP_ADDRESS: SET_STR(address); break;
    case PROP_TOPIC: SET_STR(topic); break;
    case PROP_CLIENT_ID: SET_STR(client_id); break;
    case PROP_QOS: self->qos = g_value_get_uint(value); break;
    case PROP_RETAIN: self->retain = g_value_get_boolean(value); break;
    case PROP_USERNAME: SET_STR(username); break;
    case PROP_PASSWORD: SET_STR(password); break;
    case PROP_TLS: self->tls = g_value_get_boolean(value); break;
    case PROP_TLS_CA_FILE: SET_STR(tls_ca_file); break;
    case PROP_TLS_CERT_FILE: SET_STR(tls_cert_file); break;
    case PROP_TLS_KEY_FILE: SET_STR(tls_key_file); break;
    case PROP_TLS_INSECURE: self->tls_insecure = g_value_get_boolean(value); break;
    case PROP_MAX_STREAM_LENGTH: self->max_stream_length = g_value_get_uint64(value); break;
    case PROP_MAX_QUEUE: self->max_queue = g_value_get_uint(value); break;
    case PROP_OVERFLOW: self->overflow = g_value_get_enum(value); break;
    case PROP_MAX_RECONNECT_INTERVAL: self->max_reconnect_interval = g_value_get_uint64(value); break;
    case PROP_CONNECT_TIMEOUT: self->connect_timeout = g_value_get_uint64(value); break;
    case PROP_FLUSH_TIMEOUT: self->flush_timeout = g_value_get_uint64(value); break;
    case PROP_SKIP_EMPTY: self->skip_empty = g_value_get_boolean(value); break;
    case PROP_FORMAT: self->fmt.format = g_value_get_enum(value); break;
    case PROP_TIMINGS: self->fmt.timings = g_value_get_boolean(value); break;
    case PROP_SOURCE:
        g_free(self->fmt.source);
        self->fmt.source = g_value_dup_string(value);
        break;
    case PROP_TAGS:
        if (!gst_mgllava_format_tags_valid(g_value_get_string(value))) {
            g_warning("mgllavapublish: tags must be one JSON object, not \"%s\"", g_value_get_string(value));
            break;
        }
        g_free(self->fmt.tags);
        self->fmt.tags = g_value_dup_string(value);
        break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
    }
    GST_OBJECT_UNLOCK(self);
}

static void gst_mgllava_publish_get_property(GObject* object, guint prop_id, GValue* value, GParamSpec* pspec) {
    GstMgllavaPublish* self = GST_MGLLAVA_PUBLISH(object);

    if (prop_id == PROP_STATS) {
        GstMgllavaOutbox* ob;

        /* the outbox lives from start to the next start or finalize; it is
         * replaced under the object lock */
        GST_OBJECT_LOCK(self);
        ob = self->outbox;
        if (ob)
            g_value_take_boxed(value, gst_mgllava_outbox_stats(ob));
        else
            g_value_take_boxed(value,
                               gst_structure_new("mgllava-publish-stats", "enqueued", G_TYPE_UINT64, (guint64)0,
                                                 "published", G_TYPE_UINT64, (guint64)0, "dropped", G_TYPE_UINT64,
                                                 (guint64)0, "failed", G_TYPE_UINT64, (guint64)0, "discarded",
                                                 G_TYPE_UINT64, (guint64)0, "queued", G_TYPE_UINT, 0, "in-flight",
                                                 G_TYPE_UINT, 0, "reconnects", G_TYPE_UINT64, (guint64)0, "connected",
                                                 G_TYPE_BOOLEAN, FALSE, "last-error", G_TYPE_STRING, "", NULL));
        GST_OBJECT_UNLOCK(self);
        return;
    }

    GST_OBJECT_LOCK(self);
    switch (prop_id) {
    case PROP_METHOD: g_value_set_enum(value, self->method); break;
    case PROP_FILE_PATH: g_value_set_string(value, self->file_path); break;
    case PROP_ADDRESS: g_value_set_string(value, self->address); break;
    case PROP_TOPIC: g_value_set_string(value, self->topic); break;
    case PROP_CLIENT_ID: g_value_set_string(value, self->client_id); break;
    case PROP_QOS: g_value_set_uint(value, self->qos); break;
    case PROP_RETAIN: g_value_set_boolean(value, self->retain); break;
    case PROP_USERNAME: g_value_set_string(value, self->username); break;
    case PROP_PASSWORD: g_value_set_string(value, self->password ? "********" : NULL); break;
    case PROP_TLS: g_value_set_boolean(value, self->tls); break;
    case PROP_TLS_CA_FILE: g_value_set_string(value, self->tls_ca_file); break;
    case PROP_TLS_CERT_FILE: g_value_set_string(value, self->tls_cert_file); break;
    case PROP_TLS_KEY_FILE: g_value_set_string(value, self->tls_key_file); break;
    case PROP_TLS_INSECURE: g_value_set_boolean(value, self->tls_insecure); break;
    case PROP_MAX_STREAM_LENGTH: g_value_set_uint64(value, self->max_stream_length); break;
    case PROP_MAX_QUEUE: g_value_set_uint(value, self->max_queue); break;
    case PROP_OVERFLOW: g_value_set_enum(value, self->overflow); break;
    case PROP_MAX_RECONNECT_INTERVAL: g_value_set_uint64(value, self->max_reconnect_interval); break;
    case PROP_CONNECT_TIMEOUT: g_value_set_uint64(value, self->connect_timeout); break;
    case PROP_FLUSH_TIMEOUT: g_value_set_uint64(value, self->flush_timeout); break;
    case PROP_SKIP_EMPTY: g_value_set_boolean(value, self->skip_empty); break;
    case PROP_FORMAT: g_value_set_enum(value, self->fmt.format); break;
    case PROP_TIMINGS: g_value_set_boolean(value, self->fmt.timings); break;
    case PROP_SOURCE: g_value_set_string(value, self->fmt.source); break;
    case PROP_TAGS: g_value_set_string(value, self->fmt.tags); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
    }
    GST_OBJECT_UNLOCK(self);
}

static void gst_mgllava_publish_finalize(GObject* object) {
    GstMgllavaPublish* self = GST_MGLLAVA_PUBLISH(object);

    g_free(self->file_path);
    g_free(self->address);
    g_free(self->topic);
    g_free(self->client_id);
    g_free(self->username);
    if (self->password) memset(self->password, 0, strlen(self->password));
    g_free(self->password);
    g_free(self->tls_ca_file);
    g_free(self->tls_cert_file);
    g_free(self->tls_key_file);
    gst_mgllava_format_settings_clear(&self->fmt);
    gst_mgllava_sender_config_clear(&self->config);
    gst_mgllava_outbox_free(self->outbox);
    if (self->line) g_string_free(self->line, TRUE);
    G_OBJECT_CLASS(gst_mgllava_publish_parent_class)->finalize(object);
}

static void gst_mgllava_publish_init(GstMgllavaPublish* self) {
    self->method = METHOD_FILE;
    self->file_path = g_strdup("-");
    self->topic = g_strdup(DEFAULT_TOPIC);
    self->qos = DEFAULT_QOS;
    self->max_queue = DEFAULT_MAX_QUEUE;
    self->overflow = OVERFLOW_DROP_OLDEST;
    self->max_reconnect_interval = DEFAULT_MAX_RECONNECT_INTERVAL;
    self->connect_timeout = DEFAULT_CONNECT_TIMEOUT;
    self->flush_timeout = DEFAULT_FLUSH_TIMEOUT;
    self->skip_empty = TRUE;
    gst_base_transform_set_passthrough(GST_BASE_TRANSFORM(self), TRUE);
}

#define RW_READY (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY)
#define RW_PLAYING (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING)

static void gst_mgllava_publish_class_init(GstMgllavaPublishClass* klass) {
    GObjectClass* gobject_class = G_OBJECT_CLASS(klass);
    GstElementClass* element_class = GST_ELEMENT_CLASS(klass);
    GstBaseTransformClass* trans_class = GST_BASE_TRANSFORM_CLASS(klass);

    GST_DEBUG_CATEGORY_INIT(gst_mgllava_publish_debug, "mgllavapublish", 0, "MG-LLaVA answers to files and brokers");
    gobject_class->set_property = gst_mgllava_publish_set_property;
    gobject_class->get_property = gst_mgllava_publish_get_property;
    gobject_class->finalize = gst_mgllava_publish_finalize;

    g_object_class_install_property(
        gobject_class, PROP_METHOD,
        g_param_spec_enum("method", "Method",
                          "Where messages go: file, mqtt (needs libmosquitto at build time) "
                          "or redis (a Redis stream; needs hiredis)",
                          GST_TYPE_MGLLAVA_PUBLISH_METHOD, METHOD_FILE, RW_READY));
    g_object_class_install_property(
        gobject_class, PROP_FILE_PATH,
        g_param_spec_string("file-path", "File path",
                            "method=file: file to write JSON lines to (\"-\" or \"stdout\" = "
                            "standard output)",
                            "-", RW_READY));
    g_object_class_install_property(
        gobject_class, PROP_ADDRESS,
        g_param_spec_string("address", "Address",
                            "Broker address host[:port] (also [v6addr]:port, tcp://host:port); "
                            "default port 1883 (8883 with tls) for MQTT, 6379 for Redis; "
                            "unix:/path for a Redis Unix socket; unset = localhost",
                            NULL, RW_READY));
    g_object_class_install_property(
        gobject_class, PROP_TOPIC,
        g_param_spec_string("topic", "Topic", "MQTT topic, or the Redis stream key", DEFAULT_TOPIC, RW_READY));
    g_object_class_install_property(gobject_class, PROP_CLIENT_ID,
                                    g_param_spec_string("client-id", "Client id",
                                                        "MQTT client id / Redis CLIENT SETNAME; unset = "
                                                        "mgllava-<host>-<pid>-<element name>",
                                                        NULL, RW_READY));
    g_object_class_install_property(
        gobject_class, PROP_QOS,
        g_param_spec_uint("qos", "QoS",
                          "MQTT quality of service: 0 at most once, 1 at least once (queued "
                          "messages are re-sent across a broker restart)",
                          0, 1, DEFAULT_QOS, RW_READY));
    g_object_class_install_property(
        gobject_class, PROP_RETAIN,
        g_param_spec_boolean("retain", "Retain",
                             "MQTT retain flag (the broker keeps the last message of the topic "
                             "for new subscribers)",
                             FALSE, RW_READY));
    g_object_class_install_property(
        gobject_class, PROP_USERNAME,
        g_param_spec_string("username", "Username", "MQTT username / Redis ACL user (with password)", NULL, RW_READY));
    g_object_class_install_property(gobject_class, PROP_PASSWORD,
                                    g_param_spec_string("password", "Password",
                                                        "MQTT password / Redis AUTH password (reads back as ********)",
                                                        NULL, RW_READY));
    g_object_class_install_property(
        gobject_class, PROP_TLS,
        g_param_spec_boolean("tls", "TLS", "Connect with TLS (MQTT; Redis TLS needs hiredis >= 1.0)", FALSE, RW_READY));
    g_object_class_install_property(
        gobject_class, PROP_TLS_CA_FILE,
        g_param_spec_string("tls-ca-file", "TLS CA file",
                            "PEM file of the CA certificates that sign the broker's; unset = "
                            "the system's (/etc/ssl/certs)",
                            NULL, RW_READY));
    g_object_class_install_property(gobject_class, PROP_TLS_CERT_FILE,
                                    g_param_spec_string("tls-cert-file", "TLS certificate file",
                                                        "PEM client certificate (with tls-key-file)", NULL, RW_READY));
    g_object_class_install_property(
        gobject_class, PROP_TLS_KEY_FILE,
        g_param_spec_string("tls-key-file", "TLS key file", "PEM client key (unencrypted)", NULL, RW_READY));
    g_object_class_install_property(gobject_class, PROP_TLS_INSECURE,
                                    g_param_spec_boolean("tls-insecure", "TLS insecure",
                                                         "Do not check that the broker's certificate names its host "
                                                         "(testing only)",
                                                         FALSE, RW_READY));
    g_object_class_install_property(
        gobject_class, PROP_MAX_STREAM_LENGTH,
        g_param_spec_uint64("max-stream-length", "Max stream length",
                            "Redis: trim the stream to about this many entries (XADD MAXLEN ~); "
                            "0 = no trimming",
                            0, G_MAXUINT64, 0, RW_READY));
    g_object_class_install_property(
        gobject_class, PROP_MAX_QUEUE,
        g_param_spec_uint("max-queue", "Max queue",
                          "Messages that may wait for the broker (not counting up to 64 sent "
                          "and not yet acknowledged); then the overflow policy applies",
                          1, G_MAXINT, DEFAULT_MAX_QUEUE, RW_READY));
    g_object_class_install_property(
        gobject_class, PROP_OVERFLOW,
        g_param_spec_enum("overflow", "Overflow",
                          "When max-queue messages wait: drop the oldest waiting message or "
                          "the new one (counted in stats.dropped); the streaming thread never "
                          "waits",
                          GST_TYPE_MGLLAVA_PUBLISH_OVERFLOW, OVERFLOW_DROP_OLDEST, RW_READY));
    g_object_class_install_property(
        gobject_class, PROP_MAX_RECONNECT_INTERVAL,
        g_param_spec_uint64("max-reconnect-interval", "Max reconnect interval",
                            "Reconnection backoff: 100 ms doubled after each failed attempt up "
                            "to this (ns)",
                            100 * GST_MSECOND, G_MAXUINT64, DEFAULT_MAX_RECONNECT_INTERVAL, RW_READY));
    g_object_class_install_property(
        gobject_class, PROP_CONNECT_TIMEOUT,
        g_param_spec_uint64("connect-timeout", "Connect timeout", "How long one connection attempt may take (ns)",
                            100 * GST_MSECOND, G_MAXUINT64, DEFAULT_CONNECT_TIMEOUT, RW_READY));
    g_object_class_install_property(
        gobject_class, PROP_FLUSH_TIMEOUT,
        g_param_spec_uint64("flush-timeout", "Flush timeout",
                            "At EOS and when stopping, wait at most this long (ns) for queued "
                            "messages to be published; 0 = do not wait",
                            0, G_MAXUINT64, DEFAULT_FLUSH_TIMEOUT, RW_PLAYING));
    g_object_class_install_property(gobject_class, PROP_SKIP_EMPTY,
                                    g_param_spec_boolean("skip-empty", "Skip empty",
                                                         "Publish only frames that carry at least one MG-LLaVA answer "
                                                         "(false: every frame, with its detections)",
                                                         TRUE, RW_PLAYING));
    g_object_class_install_property(gobject_class, PROP_FORMAT,
                                    g_param_spec_enum("format", "Format",
                                                      "JSON layout: mgllava (the project's schema) or dlstreamer (DL "
                                                      "Streamer gvametaconvert's layout); see docs/publishing.md",
                                                      GST_TYPE_MGLLAVA_FORMAT, GST_MGLLAVA_FORMAT_MGLLAVA, RW_PLAYING));
    g_object_class_install_property(gobject_class, PROP_TIMINGS,
                                    g_param_spec_boolean("timings", "Timings",
                                                         "Add each answer's engine stage timings (\"timings_ms\")",
                                                         FALSE, RW_PLAYING));
    g_object_class_install_property(gobject_class, PROP_SOURCE,
                                    g_param_spec_string("source", "Source",
                                                        "A name of the stream written as \"source\" in every message",
                                                        NULL, RW_PLAYING));
    g_object_class_install_property(
        gobject_class, PROP_TAGS,
        g_param_spec_string("tags", "Tags", "A JSON object written as \"tags\" in every message", NULL, RW_PLAYING));
    g_object_class_install_property(
        gobject_class, PROP_STATS,
        g_param_spec_boxed("stats", "Statistics",
                           "mgllava-publish-stats: enqueued, published, dropped, failed, "
                           "discarded, queued, in-flight, reconnects, connected, last-error",
                           GST_TYPE_STRUCTURE, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

    gst_element_class_add_static_pad_template(element_class, &sink_template);
    gst_element_class_add_static_pad_template(element_class, &src_template);
    gst_element_class_set_static_metadata(element_class, "MG-LLaVA answer publisher", "Sink/Metadata/Network",
                                          "Sends each frame's detections and MG-LLaVA answers as JSON to a file, "
                                          "an MQTT broker or a Redis stream, without blocking the stream",
                                          "mgllava developers");
    trans_class->start = GST_DEBUG_FUNCPTR(gst_mgllava_publish_start);
    trans_class->stop = GST_DEBUG_FUNCPTR(gst_mgllava_publish_stop);
    trans_class->set_caps = GST_DEBUG_FUNCPTR(gst_mgllava_publish_set_caps);
    trans_class->transform_ip = GST_DEBUG_FUNCPTR(gst_mgllava_publish_transform_ip);
    trans_class->sink_event = GST_DEBUG_FUNCPTR(gst_mgllava_publish_sink_event);
}
