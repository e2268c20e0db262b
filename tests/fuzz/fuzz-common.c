/* fuzz-common.c: see fuzz-common.h. */
#define _GNU_SOURCE
#include "fuzz-common.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef MGL_FUZZ_FIXTURES
#define MGL_FUZZ_FIXTURES "tests/fixtures"
#endif

static int g_fd = -1;
static char g_fd_path[64];
static char g_dir[128];

static void die(const char* what) {
    fprintf(stderr, "fuzz harness: %s: %s\n", what, strerror(errno));
    abort();
}

/* Only our own links live in a private folder: remove them, then the folder. */
static void remove_private_dir(const char* dir) {
    static const char* const names[] = {
        "tokenizer.json",
        "tokenizer.model",
        "tokenizer_config.json",
        "model.safetensors.index.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    };
    char p[512];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
}

static void cleanup_dir(void) {
    if (g_dir[0]) remove_private_dir(g_dir);
}

/* A crash skips atexit: sweep the folders of harness processes that are gone
 * (named mgl-fuzz-<pid>-XXXXXX). */
static void sweep_stale(const char* base) {
    DIR* d = opendir(base);
    if (!d) return;
    struct dirent* e;
    while ((e = readdir(d))) {
        long pid = 0;
        char rest[64];
        if (sscanf(e->d_name, "mgl-fuzz-%ld-%63s", &pid, rest) != 2 || pid <= 0) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", base, e->d_name);
        remove_private_dir(p);
    }
    closedir(d);
}

static void ensure_dir(void) {
    if (g_dir[0]) return;
    const char* base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    sweep_stale(base);
    snprintf(g_dir, sizeof g_dir, "%s/mgl-fuzz-%ld-XXXXXX", base, (long)getpid());
    if (!mkdtemp(g_dir)) die("mkdtemp");
    atexit(cleanup_dir);
}

const char* fuzz_write_input(const uint8_t* data, size_t size) {
    if (g_fd < 0) {
        g_fd = memfd_create("mgl-fuzz-input", 0);
        if (g_fd < 0) die("memfd_create");
        snprintf(g_fd_path, sizeof g_fd_path, "/proc/self/fd/%d", g_fd);
    }
    if (ftruncate(g_fd, 0) != 0) die("ftruncate");
    size_t done = 0;
    while (done < size) {
        ssize_t w = pwrite(g_fd, data + done, size - done, (off_t)done);
        if (w < 0) {
            if (errno == EINTR) continue;
            die("pwrite");
        }
        done += (size_t)w;
    }
    return g_fd_path;
}

const char* fuzz_private_path(const char* name) {
    static char path[256];
    ensure_dir();
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    return path;
}

const char* fuzz_named_input(const char* name) {
    const char* path = fuzz_private_path(name);
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (g_fd < 0) fuzz_write_input(NULL, 0);
        if (symlink(g_fd_path, path) != 0) die("symlink");
    }
    return path;
}

void fuzz_link_companion(const char* name, const char* target) {
    char path[256];
    snprintf(path, sizeof path, "%s", fuzz_private_path(name));
    struct stat st;
    if (lstat(path, &st) == 0) return;
    if (symlink(target, path) != 0) die("symlink");
}

const char* fuzz_fixture(const char* rel) {
    static char path[4096];
    const char* base = getenv("MGL_FIXTURES");
    if (!base || !*base) base = MGL_FUZZ_FIXTURES;
    snprintf(path, sizeof path, "%s/%s", base, rel);
    return path;
}

void fuzz_touch_tensors(const MglTensorSet* set) {
    for (size_t i = 0; i < set->n; i++) {
        const MglTensor* t = &set->items[i];
        if (mgl_tset_get(set, t->name) != t) abort(); /* the index must find every tensor */
        int64_t n = mgl_tensor_numel(t);
        (void)mgl_tensor_is_contiguous(t);
        (void)mgl_tensor_nbytes(t);
        if (n < 0) abort(); /* a loaded tensor with a negative element count */
        if (n == 0 || n > (1 << 20)) continue;
        float* dst = malloc((size_t)n * sizeof *dst);
        if (!dst) continue;
        MglErr err = {0};
        (void)mgl_tensor_to_f32(t, dst, &err);
        free(dst);
    }
}

/* ---- mmap/munmap wrappers (-Wl,--wrap=mmap,--wrap=mmap64,--wrap=munmap) ----
 * With -D_FILE_OFFSET_BITS=64 (meson's default) glibc redirects mmap to
 * mmap64, so both names are wrapped. */

void* __real_mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off);
void* __real_mmap64(void* addr, size_t len, int prot, int flags, int fd, off_t off);
int __real_munmap(void* addr, size_t len);
void* __wrap_mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off);
void* __wrap_mmap64(void* addr, size_t len, int prot, int flags, int fd, off_t off);
int __wrap_munmap(void* addr, size_t len);

typedef struct Copy {
    void* p;
    size_t len;
    struct Copy* next;
} Copy;
static Copy* g_copies;
static pthread_mutex_t g_copies_lock = PTHREAD_MUTEX_INITIALIZER;

static bool copy_instead(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
    return !addr && prot == PROT_READ && (flags & MAP_PRIVATE) && fd >= 0 && off == 0 && len > 0 &&
           !getenv("MGL_FUZZ_REAL_MMAP");
}

static void* heap_copy(size_t len, int fd);

void* __wrap_mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
    if (!copy_instead(addr, len, prot, flags, fd, off)) return __real_mmap(addr, len, prot, flags, fd, off);
    return heap_copy(len, fd);
}

void* __wrap_mmap64(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
    if (!copy_instead(addr, len, prot, flags, fd, off)) return __real_mmap64(addr, len, prot, flags, fd, off);
    return heap_copy(len, fd);
}

static void* heap_copy(size_t len, int fd) {
    Copy* c = malloc(sizeof *c);
    uint8_t* buf = malloc(len);
    if (!c || !buf) {
        free(c);
        free(buf);
        errno = ENOMEM;
        return MAP_FAILED;
    }
    size_t done = 0;
    while (done < len) {
        ssize_t r = pread(fd, buf + done, len - done, (off_t)done);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        done += (size_t)r;
    }
    if (done < len) memset(buf + done, 0, len - done); /* a real mapping would fault there */
    c->p = buf;
    c->len = len;
    pthread_mutex_lock(&g_copies_lock);
    c->next = g_copies;
    g_copies = c;
    pthread_mutex_unlock(&g_copies_lock);
    return buf;
}

int __wrap_munmap(void* addr, size_t len) {
    pthread_mutex_lock(&g_copies_lock);
    for (Copy** pp = &g_copies; *pp; pp = &(*pp)->next) {
        Copy* c = *pp;
        if (c->p != addr) continue;
        *pp = c->next;
        pthread_mutex_unlock(&g_copies_lock);
        if (c->len != len) {
            fprintf(stderr, "fuzz harness: munmap(%p, %zu) of a %zu-byte mapping\n", addr, len, c->len);
            abort();
        }
        free(c->p);
        free(c);
        return 0;
    }
    pthread_mutex_unlock(&g_copies_lock);
    return __real_munmap(addr, len);
}

/* ---- tokenizer exercise -------------------------------------------------- */

static const char k_sample[] =
    "Hello world!  The quick brown fox, 12345 apples;\n\tnew\tline  \r\n"
    "<s> </s> <unk> <|endoftext|> <|eot_id|> <image> <|user|> [INST]"
    " caf\xC3\xA9 na\xC3\xAFve \xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x98\x80 \xD0\xBF\xD1\x80\xD0\xB8 'll 's 't"
    "    ";

static void detok_ids(const MglTokenizer* tok, const int32_t* ids, size_t n, bool skip) {
    MglDetok* d = mgl_detok_new(tok, skip);
    if (!d) return;
    for (size_t i = 0; i < n; i++) (void)mgl_detok_push(d, ids[i]);
    (void)mgl_detok_flush(d);
    mgl_detok_free(d);
}

void fuzz_exercise_tokenizer(const MglTokenizer* tok) {
    int32_t nv = mgl_tokenizer_n_vocab(tok);
    (void)mgl_tokenizer_bos(tok);
    (void)mgl_tokenizer_eos(tok);
    (void)mgl_tokenizer_token_id(tok, "<s>");
    (void)mgl_tokenizer_token_id(tok, "");
    for (int a = 0; a < 2; a++) {
        int32_t* ids = NULL;
        size_t n = 0;
        MglErr err = {0};
        if (mgl_tokenizer_encode(tok, k_sample, (ptrdiff_t)(sizeof k_sample - 1), a, &ids, &n, &err) == MGL_OK) {
            for (int s = 0; s < 2; s++) {
                char* text = NULL;
                if (mgl_tokenizer_decode(tok, ids, n, s, &text, &err) == MGL_OK) free(text);
                detok_ids(tok, ids, n, s);
            }
        }
        free(ids);
    }
    /* every piece of a small vocabulary (the first 1024 of a big one), plus
     * ids just out of range */
    int32_t m = nv < 1024 ? nv : 1024;
    if (m < 0) m = 0;
    int32_t* all = malloc(((size_t)m + 4) * sizeof *all);
    if (!all) return;
    for (int32_t i = 0; i < m; i++) {
        all[i] = i;
        (void)mgl_tokenizer_id_to_piece(tok, i);
        (void)mgl_tokenizer_is_special(tok, i);
    }
    all[m] = -1;
    all[m + 1] = nv;
    all[m + 2] = INT32_MAX;
    all[m + 3] = INT32_MIN;
    (void)mgl_tokenizer_id_to_piece(tok, -1);
    (void)mgl_tokenizer_id_to_piece(tok, nv);
    (void)mgl_tokenizer_is_special(tok, -1);
    (void)mgl_tokenizer_is_special(tok, nv);
    for (int s = 0; s < 2; s++) {
        detok_ids(tok, all, (size_t)m + 4, s);
        char* text = NULL;
        MglErr err = {0};
        if (mgl_tokenizer_decode(tok, all, (size_t)m, s, &text, &err) == MGL_OK) free(text);
    }
    free(all);
}
