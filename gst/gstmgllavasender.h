/* gstmgllavasender.h: mgllavapublish's sender threads, one per method. Each
 * runs until gst_mgllava_outbox_stopping(), taking messages from the outbox,
 * connecting, reconnecting with backoff and requeueing what was in flight
 * when a connection drops. MQTT needs libmosquitto and Redis needs hiredis
 * at build time; without them _available() is FALSE and the element refuses
 * the method with a clear error. */
#ifndef __GST_MGLLAVA_SENDER_H__
#define __GST_MGLLAVA_SENDER_H__

#include "gstmgllavaoutbox.h"

#include <stdio.h>

G_BEGIN_DECLS

typedef struct {
    gchar* host; /* from address; for Redis "unix:PATH" gives a socket */
    guint port;
    gchar* unix_path; /* Redis over a Unix socket, else NULL */
    gchar* topic;     /* MQTT topic / Redis stream key */
    gchar* client_id;
    guint qos;
    gboolean retain;
    gchar *username, *password;
    gboolean tls, tls_insecure;
    gchar *tls_ca_file, *tls_cert_file, *tls_key_file;
    guint64 max_stream_length; /* Redis XADD MAXLEN ~ N, 0 = none */
    guint keepalive_s;
    guint max_backoff_ms;
    guint connect_timeout_ms;
    FILE* file; /* method=file: opened by the element */
} GstMgllavaSenderConfig;

void gst_mgllava_sender_config_clear(GstMgllavaSenderConfig* c);

/* The backoff before reconnection attempt @attempt (0-based): 100 ms doubled
 * each time, at most @max_ms. */
guint gst_mgllava_sender_backoff_ms(guint attempt, guint max_ms);

/* Blocks SIGPIPE in the calling (sender) thread, so that writing to a socket
 * the broker closed returns EPIPE instead of ending the process; and
 * consumes one pending SIGPIPE. */
void gst_mgllava_sender_block_sigpipe(void);
void gst_mgllava_sender_clear_sigpipe(void);

gboolean gst_mgllava_sender_mqtt_available(void);
gboolean gst_mgllava_sender_redis_available(void);
/* A string for the element's error when TLS is asked for and not possible,
 * else NULL. */
const gchar* gst_mgllava_sender_redis_tls_unavailable(void);

void gst_mgllava_sender_run_file(GstMgllavaOutbox* ob, const GstMgllavaSenderConfig* c);
void gst_mgllava_sender_run_mqtt(GstMgllavaOutbox* ob, const GstMgllavaSenderConfig* c);
void gst_mgllava_sender_run_redis(GstMgllavaOutbox* ob, const GstMgllavaSenderConfig* c);

G_END_DECLS

#endif
