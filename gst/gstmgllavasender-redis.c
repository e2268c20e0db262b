/* gstmgllavasender-redis.c: method=redis through hiredis: each message is one
 * entry of a Redis stream, `XADD <topic> [MAXLEN ~ N] * json <line>`.
 *
 * A synchronous connection (connect timeout, and a read/write timeout for
 * each batch) owned by this thread. Messages go in pipelined batches of at
 * most REDIS_BATCH; a message leaves the outbox when its XADD reply arrives
 * (an error reply counts it as failed, with one warning per kind of error).
 * A broken connection requeues the batch's unanswered messages in front and
 * reconnects after the backoff. TLS needs hiredis >= 1.0 with hiredis_ssl;
 * Debian 12 ships 0.14 without it, so there the element refuses tls=true for
 * Redis at start. */
#include "gstmgllavasender.h"

#include <string.h>

#ifdef HAVE_HIREDIS
#include <hiredis/hiredis.h>

#define REDIS_BATCH 64

gboolean gst_mgllava_sender_redis_available(void) { return TRUE; }

const gchar* gst_mgllava_sender_redis_tls_unavailable(void) {
    return "TLS for Redis needs hiredis >= 1.0 with hiredis_ssl; this build has "
           "hiredis " G_STRINGIFY(HIREDIS_MAJOR) "." G_STRINGIFY(HIREDIS_MINOR) " without it";
}

/* One command; the reply's error as a new string, or NULL when it worked.
 * @broken is set when the connection failed. */
static gchar* redis_simple(redisContext* rc, gboolean* broken, int argc, const char** argv) {
    redisReply* r = redisCommandArgv(rc, argc, argv, NULL);
    gchar* err = NULL;

    if (!r) {
        *broken = TRUE;
        return g_strdup(rc->errstr[0] ? rc->errstr : "connection lost");
    }
    if (r->type == REDIS_REPLY_ERROR) err = g_strdup(r->str);
    freeReplyObject(r);
    return err;
}

static redisContext* redis_connect(const GstMgllavaSenderConfig* c, gchar** error) {
    struct timeval tv = {c->connect_timeout_ms / 1000, (c->connect_timeout_ms % 1000) * 1000};
    struct timeval io = {5, 0};
    redisContext* rc;
    gboolean broken = FALSE;
    gchar* err;

    if (c->unix_path)
        rc = redisConnectUnixWithTimeout(c->unix_path, tv);
    else
        rc = redisConnectWithTimeout(c->host, (int)c->port, tv);
    if (!rc) {
        *error = g_strdup("out of memory");
        return NULL;
    }
    if (rc->err) {
        *error = g_strdup(rc->errstr);
        redisFree(rc);
        return NULL;
    }
    redisSetTimeout(rc, io);
    if (c->password) {
        const char* argv[3] = {"AUTH", c->username ? c->username : c->password, c->password};
        err = redis_simple(rc, &broken, c->username ? 3 : 2, argv);
        if (err) {
            *error = g_strdup_printf("AUTH: %s", err);
            g_free(err);
            redisFree(rc);
            return NULL;
        }
    }
    if (c->client_id && !broken) {
        const char* argv[3] = {"CLIENT", "SETNAME", c->client_id};
        err = redis_simple(rc, &broken, 3, argv);
        g_free(err); /* a name Redis refuses is not fatal */
    }
    if (broken) {
        *error = g_strdup(rc->errstr[0] ? rc->errstr : "connection lost");
        redisFree(rc);
        return NULL;
    }
    return rc;
}

void gst_mgllava_sender_run_redis(GstMgllavaOutbox* ob, const GstMgllavaSenderConfig* c) {
    gchar maxlen[32];
    guint attempt = 0;

    g_snprintf(maxlen, sizeof maxlen, "%" G_GUINT64_FORMAT, c->max_stream_length);
    gst_mgllava_sender_block_sigpipe();
    while (!gst_mgllava_outbox_stopping(ob)) {
        gchar* error = NULL;
        redisContext* rc = redis_connect(c, &error);
        gboolean broken = (rc == NULL);

        if (rc) {
            attempt = 0;
            gst_mgllava_outbox_set_connected(ob, TRUE, NULL);
        }
        while (!broken) {
            GstMgllavaMsg* batch[REDIS_BATCH];
            guint n = 0, i;

            while (n < REDIS_BATCH && (batch[n] = gst_mgllava_outbox_next(ob))) n++;
            if (n == 0) {
                if (!gst_mgllava_outbox_wait(ob, 1000)) break;
                continue;
            }
            for (i = 0; i < n; i++) {
                const char* argv[8];
                size_t lens[8];
                int argc = 0;

#define ARG(s, l) (argv[argc] = (s), lens[argc] = (l), argc++)
                ARG("XADD", 4);
                ARG(c->topic, strlen(c->topic));
                if (c->max_stream_length > 0) {
                    ARG("MAXLEN", 6);
                    ARG("~", 1);
                    ARG(maxlen, strlen(maxlen));
                }
                ARG("*", 1);
                ARG("json", 4);
                ARG(batch[i]->data, batch[i]->len);
#undef ARG
                redisAppendCommandArgv(rc, argc, argv, lens);
            }
            for (i = 0; i < n; i++) {
                redisReply* r = NULL;

                if (redisGetReply(rc, (void**)&r) != REDIS_OK || !r) {
                    broken = TRUE;
                    error = g_strdup(rc->errstr[0] ? rc->errstr : "connection lost");
                    break;
                }
                if (r->type == REDIS_REPLY_ERROR) {
                    gst_mgllava_outbox_warn_refused(ob, r->str);
                    gst_mgllava_outbox_done(ob, batch[i], FALSE);
                } else {
                    gst_mgllava_outbox_done(ob, batch[i], TRUE);
                }
                freeReplyObject(r);
            }
        }
        if (rc) redisFree(rc);
        gst_mgllava_sender_clear_sigpipe();
        gst_mgllava_outbox_requeue(ob);
        if (gst_mgllava_outbox_stopping(ob)) {
            g_free(error);
            break;
        }
        gst_mgllava_outbox_set_connected(ob, FALSE, error);
        g_free(error);
        if (!gst_mgllava_outbox_sleep(ob, gst_mgllava_sender_backoff_ms(attempt++, c->max_backoff_ms))) break;
    }
}

#else /* !HAVE_HIREDIS */

gboolean gst_mgllava_sender_redis_available(void) { return FALSE; }

const gchar* gst_mgllava_sender_redis_tls_unavailable(void) { return "this build has no Redis support (hiredis)"; }

void gst_mgllava_sender_run_redis(GstMgllavaOutbox* ob, const GstMgllavaSenderConfig* c) { g_return_if_reached(); }

#endif
