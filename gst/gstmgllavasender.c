/* gstmgllavasender.c: what the sender threads share, and the file method. */
#include "gstmgllavasender.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>

void gst_mgllava_sender_config_clear(GstMgllavaSenderConfig* c) {
    g_clear_pointer(&c->host, g_free);
    g_clear_pointer(&c->unix_path, g_free);
    g_clear_pointer(&c->topic, g_free);
    g_clear_pointer(&c->client_id, g_free);
    g_clear_pointer(&c->username, g_free);
    g_clear_pointer(&c->password, g_free);
    g_clear_pointer(&c->tls_ca_file, g_free);
    g_clear_pointer(&c->tls_cert_file, g_free);
    g_clear_pointer(&c->tls_key_file, g_free);
}

guint gst_mgllava_sender_backoff_ms(guint attempt, guint max_ms) {
    guint64 ms = 100;

    while (attempt-- > 0 && ms < max_ms) ms *= 2;
    return (guint)MIN(ms, (guint64)MAX(max_ms, 100));
}

void gst_mgllava_sender_block_sigpipe(void) {
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

void gst_mgllava_sender_clear_sigpipe(void) {
    sigset_t set, pending;
    struct timespec zero = {0, 0};

    sigpending(&pending);
    if (!sigismember(&pending, SIGPIPE)) return;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR)
        ;
}

/* method=file: each message is one line, written and flushed in order. */
void gst_mgllava_sender_run_file(GstMgllavaOutbox* ob, const GstMgllavaSenderConfig* c) {
    gst_mgllava_outbox_set_connected(ob, TRUE, NULL);
    for (;;) {
        GstMgllavaMsg* m;

        while ((m = gst_mgllava_outbox_next(ob))) {
            gboolean ok = fwrite(m->data, 1, m->len, c->file) == m->len && fflush(c->file) == 0;

            if (!ok) gst_mgllava_outbox_warn_refused(ob, g_strerror(errno));
            gst_mgllava_outbox_done(ob, m, ok);
        }
        if (!gst_mgllava_outbox_wait(ob, 1000)) break;
    }
}
