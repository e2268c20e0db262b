/* gstmgllavasender-mqtt.c: method=mqtt through libmosquitto (MQTT 3.1.1).
 *
 * One libmosquitto client per connection, driven by this thread alone
 * (mosquitto_loop with a 50 ms timeout, so a new message waits at most that
 * long). Messages are published from the outbox in order, at most
 * MQTT_MAX_INFLIGHT unacknowledged at a time; the on_publish callback
 * (QoS 1: PUBACK; QoS 0: written) acknowledges them in the outbox. When the
 * connection drops the client is destroyed with whatever libmosquitto still
 * held, the outbox puts every message in flight back in front of the waiting
 * ones, and after the backoff a new client sends them again: with QoS 1
 * nothing handed to the element is lost across a broker restart (a message
 * the broker took just before it went away may arrive twice: MQTT's "at
 * least once"). */
#include "gstmgllavasender.h"

#include <string.h>

#ifdef HAVE_MOSQUITTO
#include <mosquitto.h>

#define MQTT_MAX_INFLIGHT 64

typedef struct {
    GstMgllavaOutbox* ob;
    gboolean connected; /* CONNACK accepted */
    gboolean lost;      /* disconnected, or refused */
    gchar* error;
} MqttState;

static void on_connect(struct mosquitto* mosq, void* obj, int rc) {
    MqttState* st = obj;

    if (rc == 0) {
        st->connected = TRUE;
    } else {
        st->lost = TRUE;
        g_free(st->error);
        st->error = g_strdup_printf("connection refused: %s", mosquitto_connack_string(rc));
    }
}

static void on_disconnect(struct mosquitto* mosq, void* obj, int rc) {
    MqttState* st = obj;

    st->lost = TRUE;
    if (!st->error) st->error = g_strdup(rc == 0 ? "disconnected" : "connection lost");
}

static void on_publish(struct mosquitto* mosq, void* obj, int mid) {
    MqttState* st = obj;

    gst_mgllava_outbox_ack(st->ob, mid);
}

static void mqtt_once(void) {
    static gsize done = 0;

    if (g_once_init_enter(&done)) {
        mosquitto_lib_init();
        g_once_init_leave(&done, 1);
    }
}

static gchar* mosq_error(int rc) {
    if (rc == MOSQ_ERR_ERRNO) return g_strdup(g_strerror(errno));
    return g_strdup(mosquitto_strerror(rc));
}

/* A new client with the element's settings, or NULL with @error set. */
static struct mosquitto* mqtt_client(const GstMgllavaSenderConfig* c, MqttState* st, gchar** error) {
    struct mosquitto* mosq = mosquitto_new(c->client_id, TRUE, st);
    int rc;

    if (!mosq) {
        *error = g_strdup(g_strerror(errno));
        return NULL;
    }
    mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    mosquitto_max_inflight_messages_set(mosq, 0); /* the outbox bounds it */
    mosquitto_connect_callback_set(mosq, on_connect);
    mosquitto_disconnect_callback_set(mosq, on_disconnect);
    mosquitto_publish_callback_set(mosq, on_publish);
    if ((c->username || c->password) &&
        (rc = mosquitto_username_pw_set(mosq, c->username, c->password)) != MOSQ_ERR_SUCCESS)
        goto fail;
    if (c->tls) {
        rc = mosquitto_tls_set(mosq, c->tls_ca_file, c->tls_ca_file ? NULL : "/etc/ssl/certs", c->tls_cert_file,
                               c->tls_key_file, NULL);
        if (rc != MOSQ_ERR_SUCCESS) goto fail;
        if (c->tls_insecure) mosquitto_tls_insecure_set(mosq, TRUE);
    }
    return mosq;

fail:
    *error = g_strdup_printf("client setup: %s", mosquitto_strerror(rc));
    mosquitto_destroy(mosq);
    return NULL;
}

gboolean gst_mgllava_sender_mqtt_available(void) { return TRUE; }

void gst_mgllava_sender_run_mqtt(GstMgllavaOutbox* ob, const GstMgllavaSenderConfig* c) {
    guint attempt = 0;

    mqtt_once();
    gst_mgllava_sender_block_sigpipe();
    while (!gst_mgllava_outbox_stopping(ob)) {
        MqttState st = {ob, FALSE, FALSE, NULL};
        struct mosquitto* mosq;
        gint64 started = g_get_monotonic_time();
        gboolean was_connected = FALSE;
        int rc;

        mosq = mqtt_client(c, &st, &st.error);
        if (mosq) {
            rc = mosquitto_connect_async(mosq, c->host, c->port, c->keepalive_s);
            if (rc != MOSQ_ERR_SUCCESS) {
                st.error = mosq_error(rc);
                st.lost = TRUE;
            }
            while (!st.lost) {
                if (st.connected && !was_connected) {
                    was_connected = TRUE;
                    attempt = 0;
                    gst_mgllava_outbox_set_connected(ob, TRUE, NULL);
                }
                if (gst_mgllava_outbox_stopping(ob)) break;
                /* hand waiting messages to the client */
                while (st.connected && !st.lost && gst_mgllava_outbox_n_inflight(ob) < MQTT_MAX_INFLIGHT) {
                    GstMgllavaMsg* m = gst_mgllava_outbox_next(ob);

                    if (!m) break;
                    /* the mid is written to m->id before any callback can run; with
                     * QoS 0 on_publish may free m inside this call */
                    rc = mosquitto_publish(mosq, &m->id, c->topic, (int)m->len, m->data, (int)c->qos, c->retain);
                    if (rc != MOSQ_ERR_SUCCESS) {
                        if (rc == MOSQ_ERR_PAYLOAD_SIZE || rc == MOSQ_ERR_OVERSIZE_PACKET) {
                            gst_mgllava_outbox_warn_refused(ob, mosquitto_strerror(rc));
                            gst_mgllava_outbox_done(ob, m, FALSE);
                            continue;
                        }
                        st.lost = TRUE;
                        if (!st.error) st.error = mosq_error(rc);
                        break;
                    }
                }
                if (st.lost) break;
                rc = mosquitto_loop(mosq, 50, 1);
                if (rc != MOSQ_ERR_SUCCESS && !st.lost) {
                    st.lost = TRUE;
                    if (!st.error) st.error = mosq_error(rc);
                }
                if (!st.connected && !st.lost &&
                    g_get_monotonic_time() - started > (gint64)c->connect_timeout_ms * 1000) {
                    st.lost = TRUE;
                    st.error = g_strdup("no answer to CONNECT (timed out)");
                }
            }
            if (st.connected && !st.lost) {
                /* stopping: the element drained what it could; say goodbye */
                mosquitto_disconnect(mosq);
                mosquitto_loop(mosq, 50, 1);
            }
            mosquitto_destroy(mosq);
            gst_mgllava_sender_clear_sigpipe();
        } else {
            st.lost = TRUE;
        }
        gst_mgllava_outbox_requeue(ob);
        if (gst_mgllava_outbox_stopping(ob)) {
            g_free(st.error);
            break;
        }
        gst_mgllava_outbox_set_connected(ob, FALSE, st.error);
        g_free(st.error);
        if (!gst_mgllava_outbox_sleep(ob, gst_mgllava_sender_backoff_ms(attempt++, c->max_backoff_ms))) break;
    }
}

#else /* !HAVE_MOSQUITTO */

gboolean gst_mgllava_sender_mqtt_available(void) { return FALSE; }

void gst_mgllava_sender_run_mqtt(GstMgllavaOutbox* ob, const GstMgllavaSenderConfig* c) { g_return_if_reached(); }

#endif
