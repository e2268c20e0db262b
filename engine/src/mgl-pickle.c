/* mgl-pickle.c: restricted pickle VM for torch.save checkpoints.
 *
 * Safety model: the VM only ever builds data. GLOBAL/STACK_GLOBAL produce a
 * reference object, REDUCE/NEWOBJ/OBJ/INST/BUILD on anything but the handful
 * of torch/collections names interpreted below produce or keep an inert
 * placeholder. Nothing is imported or called, so a hostile pickle cannot run
 * code. Calls to names that only an attack would use (os.system, eval, ...)
 * are additionally refused with MGL_E_SECURITY so a tampered file is loud.
 * The one builtin interpreted is getattr, in the single form Python's
 * pickler writes below protocol 4 for a nested class (getattr(<module.Outer>,
 * "Inner")): it yields another inert reference, and every other getattr is
 * refused (resolve_getattr).
 *
 * Robustness: every read is bounds-checked against the pickle buffer; the
 * stack, mark stack, memo and object count are capped; the VM never recurses,
 * so nesting depth cannot exhaust the C stack. All objects live in one arena
 * freed at once, which also makes reference cycles (possible via the memo)
 * harmless. */
#include "mgl-pickle.h"

#include <glib.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OBJECTS (1u << 22)
#define MAX_STACK (1u << 20)
#define MAX_MARKS (1u << 16)
#define MAX_MEMO (1u << 22)
#define MAX_QUALNAME 1024u /* a class name resolved through getattr */

struct MglPickle {
    const MglPickleOpts* o;
    const uint8_t* d;
    size_t len, pos;
    size_t op_pos; /* offset of the opcode being executed */
    PkObj** objs;  /* arena: every object ever allocated */
    size_t n_objs, cap_objs;
    PkObj** stack;
    size_t sp, stack_cap;
    size_t* marks;
    size_t n_marks, marks_cap;
    GHashTable* memo;     /* (index+1) -> PkObj* */
    GHashTable* storages; /* key -> PkObj* (PK_STORAGE) */
    PkObj* none;
    MglErr* err;
};

/* ---- errors ----------------------------------------------------------- */

static MglStatus vm_err(MglPickle* vm, MglStatus code, const char* fmt, ...) MGL_PRINTF(3, 4);
static MglStatus vm_err(MglPickle* vm, MglStatus code, const char* fmt, ...) {
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return mgl_err(vm->err, code, "%s: %s: %s at offset %zu", vm->o->path, vm->o->entry, msg, vm->op_pos);
}

static MglStatus nomem(MglPickle* vm) { return vm_err(vm, MGL_E_NOMEM, "out of memory"); }

/* ---- objects ---------------------------------------------------------- */

static PkObj* new_obj(MglPickle* vm, PkType t) {
    if (vm->n_objs >= MAX_OBJECTS) return NULL;
    if (vm->n_objs == vm->cap_objs) {
        size_t nc = vm->cap_objs ? vm->cap_objs * 2 : 256;
        PkObj** n = realloc(vm->objs, nc * sizeof *n);
        if (!n) return NULL;
        vm->objs = n;
        vm->cap_objs = nc;
    }
    PkObj* o = calloc(1, sizeof *o);
    if (!o) return NULL;
    o->type = t;
    vm->objs[vm->n_objs++] = o;
    return o;
}

/* Distinguishes the object cap from a real allocation failure in messages. */
static MglStatus alloc_fail(MglPickle* vm) {
    if (vm->n_objs >= MAX_OBJECTS) return vm_err(vm, MGL_E_FORMAT, "more than %u objects", MAX_OBJECTS);
    return nomem(vm);
}

static void free_obj(PkObj* o) {
    switch (o->type) {
    case PK_STR:
    case PK_BYTES: free(o->u.str.s); break;
    case PK_LIST:
    case PK_TUPLE:
    case PK_DICT:
    case PK_SET: free(o->u.seq.v); break;
    case PK_GLOBAL: free(o->u.glob.qualname); break;
    case PK_STORAGE:
        free(o->u.storage.key);
        mgl_map_unref(o->u.storage.map);
        break;
    case PK_TENSOR: mgl_map_unref(o->u.tensor.map); break;
    default: break;
    }
    free(o);
}

void mgl_pickle_free(MglPickle* vm) {
    if (!vm) return;
    for (size_t i = 0; i < vm->n_objs; i++) free_obj(vm->objs[i]);
    free(vm->objs);
    free(vm->stack);
    free(vm->marks);
    if (vm->memo) g_hash_table_destroy(vm->memo);
    if (vm->storages) g_hash_table_destroy(vm->storages);
    free(vm);
}

static bool seq_push(PkObj* s, PkObj* item) {
    if (s->u.seq.n == s->u.seq.cap) {
        size_t nc = s->u.seq.cap ? s->u.seq.cap * 2 : 4;
        PkObj** n = realloc(s->u.seq.v, nc * sizeof *n);
        if (!n) return false;
        s->u.seq.v = n;
        s->u.seq.cap = nc;
    }
    s->u.seq.v[s->u.seq.n++] = item;
    return true;
}

static PkObj* new_str(MglPickle* vm, PkType t, const void* s, size_t len) {
    PkObj* o = new_obj(vm, t);
    if (!o) return NULL;
    o->u.str.s = malloc(len + 1);
    if (!o->u.str.s) return NULL; /* o stays in the arena and is freed with it */
    if (len) memcpy(o->u.str.s, s, len);
    o->u.str.s[len] = 0;
    o->u.str.len = len;
    return o;
}

static PkObj* new_int(MglPickle* vm, int64_t v) {
    PkObj* o = new_obj(vm, PK_INT);
    if (o) o->u.i = v;
    return o;
}

/* ---- stack ------------------------------------------------------------ */

static size_t fence(const MglPickle* vm) { return vm->n_marks ? vm->marks[vm->n_marks - 1] : 0; }

static MglStatus push(MglPickle* vm, PkObj* o) {
    if (!o) return alloc_fail(vm);
    if (vm->sp == vm->stack_cap) {
        if (vm->stack_cap >= MAX_STACK) return vm_err(vm, MGL_E_FORMAT, "pickle stack deeper than %u", MAX_STACK);
        size_t nc = vm->stack_cap ? vm->stack_cap * 2 : 64;
        PkObj** n = realloc(vm->stack, nc * sizeof *n);
        if (!n) return nomem(vm);
        vm->stack = n;
        vm->stack_cap = nc;
    }
    vm->stack[vm->sp++] = o;
    return MGL_OK;
}

/* Pops one object above the current mark (like CPython's fence check). */
static MglStatus pop(MglPickle* vm, PkObj** out) {
    if (vm->sp <= fence(vm)) return vm_err(vm, MGL_E_FORMAT, "pickle stack underflow");
    *out = vm->stack[--vm->sp];
    return MGL_OK;
}

static MglStatus top(MglPickle* vm, PkObj** out) {
    if (vm->sp <= fence(vm)) return vm_err(vm, MGL_E_FORMAT, "pickle stack underflow");
    *out = vm->stack[vm->sp - 1];
    return MGL_OK;
}

/* Pops back to the last MARK: the items are stack[*first .. sp) until the
 * caller truncates the stack with vm->sp = *first. */
static MglStatus pop_mark(MglPickle* vm, size_t* first) {
    if (!vm->n_marks) return vm_err(vm, MGL_E_FORMAT, "MARK expected but none on the stack");
    *first = vm->marks[--vm->n_marks];
    return MGL_OK;
}

/* ---- reading ---------------------------------------------------------- */

static MglStatus need(MglPickle* vm, size_t n) {
    if (n > vm->len - vm->pos) return vm_err(vm, MGL_E_FORMAT, "pickle data truncated");
    return MGL_OK;
}

static uint64_t rd_le(const uint8_t* p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* A text argument: bytes up to the next newline (excluded). */
static MglStatus read_line(MglPickle* vm, const char** s, size_t* n) {
    const uint8_t* start = vm->d + vm->pos;
    const uint8_t* nl = memchr(start, '\n', vm->len - vm->pos);
    if (!nl) return vm_err(vm, MGL_E_FORMAT, "pickle data truncated (no newline)");
    *s = (const char*)start;
    *n = (size_t)(nl - start);
    vm->pos += *n + 1;
    return MGL_OK;
}

/* Decimal integer (protocol 0 INT/LONG/GET/PUT). *big when it does not fit. */
static bool parse_decimal(const char* s, size_t n, int64_t* out, bool* big) {
    size_t i = 0;
    bool neg = false;
    *big = false;
    while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
    while (n > i && (s[n - 1] == ' ' || s[n - 1] == '\r')) n--;
    if (n > i && s[n - 1] == 'L') n--; /* Python 2 long suffix */
    if (i < n && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
    if (i >= n) return false;
    uint64_t v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        unsigned dg = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - dg) / 10) {
            *big = true;
            v = UINT64_MAX;
            continue;
        }
        v = v * 10 + dg;
    }
    if (*big) return true;
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1) {
            *big = true;
            return true;
        }
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    } else {
        if (v > (uint64_t)INT64_MAX) {
            *big = true;
            return true;
        }
        *out = (int64_t)v;
    }
    return true;
}

/* LONG1/LONG4 payload: little-endian two's complement of n bytes. */
static PkObj* make_long(MglPickle* vm, const uint8_t* p, size_t n) {
    if (n == 0) return new_int(vm, 0);
    bool neg = p[n - 1] & 0x80;
    /* Bytes above the low 8 must be pure sign extension to fit int64. */
    for (size_t i = 8; i < n; i++)
        if (p[i] != (neg ? 0xff : 0x00)) return new_obj(vm, PK_BIGINT);
    if (n > 8 && ((p[7] & 0x80) != 0) != neg) return new_obj(vm, PK_BIGINT);
    size_t m = n < 8 ? n : 8;
    uint64_t v = rd_le(p, (int)m);
    if (m < 8 && neg) v |= ~UINT64_C(0) << (8 * m);
    return new_int(vm, (int64_t)v);
}

/* Python bytes-literal escapes (STRING opcode uses repr()). */
static PkObj* make_escaped_string(MglPickle* vm, const char* s, size_t n) {
    char* b = malloc(n + 1);
    if (!b) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\' || i + 1 >= n) {
            b[o++] = s[i];
            continue;
        }
        char c = s[++i];
        switch (c) {
        case 'n': b[o++] = '\n'; break;
        case 'r': b[o++] = '\r'; break;
        case 't': b[o++] = '\t'; break;
        case 'a': b[o++] = '\a'; break;
        case 'b': b[o++] = '\b'; break;
        case 'f': b[o++] = '\f'; break;
        case 'v': b[o++] = '\v'; break;
        case '\\':
        case '\'':
        case '"': b[o++] = c; break;
        case '\n': break;
        case 'x':
            if (i + 2 < n && g_ascii_isxdigit(s[i + 1]) && g_ascii_isxdigit(s[i + 2])) {
                b[o++] = (char)(g_ascii_xdigit_value(s[i + 1]) * 16 + g_ascii_xdigit_value(s[i + 2]));
                i += 2;
            } else {
                b[o++] = '\\';
                b[o++] = c;
            }
            break;
        default:
            if (c >= '0' && c <= '7') {
                int v = 0, k = 0;
                while (k < 3 && i < n && s[i] >= '0' && s[i] <= '7') {
                    v = v * 8 + (s[i] - '0');
                    i++;
                    k++;
                }
                i--;
                b[o++] = (char)(v & 0xff);
            } else {
                b[o++] = '\\';
                b[o++] = c;
            }
        }
    }
    PkObj* r = new_str(vm, PK_STR, b, o);
    free(b);
    return r;
}

/* raw-unicode-escape (UNICODE opcode): \uXXXX and \UXXXXXXXX are escapes,
 * every other byte is a Latin-1 character; the result is UTF-8. */
static PkObj* make_raw_unicode(MglPickle* vm, const char* s, size_t n) {
    if (n > (SIZE_MAX - 1) / 4) return NULL;
    char* b = malloc(n * 4 + 1);
    if (!b) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        gunichar u = c;
        if (c == '\\' && i + 1 < n && (s[i + 1] == 'u' || s[i + 1] == 'U')) {
            size_t digits = s[i + 1] == 'u' ? 4 : 8;
            if (i + 1 + digits < n) {
                gunichar v = 0;
                bool ok = true;
                for (size_t k = 0; k < digits; k++) {
                    char h = s[i + 2 + k];
                    if (!g_ascii_isxdigit(h)) {
                        ok = false;
                        break;
                    }
                    v = v * 16 + (gunichar)g_ascii_xdigit_value(h);
                }
                if (ok && v <= 0x10ffff) {
                    u = v;
                    i += 1 + digits;
                }
            }
        }
        o += (size_t)g_unichar_to_utf8(u, b + o);
    }
    PkObj* r = new_str(vm, PK_STR, b, o);
    free(b);
    return r;
}

/* ---- globals ---------------------------------------------------------- */

typedef struct {
    const char* name;
    MglDType dt;
} NameDt;

static const NameDt k_storage_types[] = {
    {"FloatStorage", MGL_DT_F32},  {"HalfStorage", MGL_DT_F16},   {"BFloat16Storage", MGL_DT_BF16},
    {"DoubleStorage", MGL_DT_F64}, {"LongStorage", MGL_DT_I64},   {"IntStorage", MGL_DT_I32},
    {"ShortStorage", MGL_DT_I16},  {"CharStorage", MGL_DT_I8},    {"ByteStorage", MGL_DT_U8},
    {"BoolStorage", MGL_DT_BOOL},  {"UntypedStorage", MGL_DT_U8},
};

static const NameDt k_dtypes[] = {
    {"float32", MGL_DT_F32},   {"float", MGL_DT_F32},   {"float16", MGL_DT_F16}, {"half", MGL_DT_F16},
    {"bfloat16", MGL_DT_BF16}, {"float64", MGL_DT_F64}, {"double", MGL_DT_F64},  {"int64", MGL_DT_I64},
    {"long", MGL_DT_I64},      {"int32", MGL_DT_I32},   {"int", MGL_DT_I32},     {"int16", MGL_DT_I16},
    {"short", MGL_DT_I16},     {"int8", MGL_DT_I8},     {"uint8", MGL_DT_U8},    {"bool", MGL_DT_BOOL},
};

/* Names no checkpoint has a reason to call. Refusing them is only a
 * diagnostic: safety comes from never calling anything at all. */
static bool is_dangerous(const char* mod, const char* name) {
    static const char* const mods[] = {
        "os",       "posix",  "nt",       "subprocess", "sys",     "shutil",  "socket",     "importlib",       "runpy",
        "pty",      "code",   "ctypes",   "pickle",     "_pickle", "marshal", "webbrowser", "multiprocessing", "signal",
        "commands", "popen2", "platform", "asyncio",    "pdb",     "timeit",  "tempfile",
    };
    static const char* const builtins[] = {
        "eval",    "exec",   "execfile", "compile", "open",       "file", "__import__", "getattr", "setattr", "delattr",
        "globals", "locals", "vars",     "input",   "breakpoint", "exit", "quit",       "apply",   "reload",  "help",
    };
    size_t ml = strcspn(mod, ".");  /* os.path, subprocess.x, ... count as their package */
    size_t nl = strcspn(name, "."); /* posixpath.os (the os module, reached through
                                       another one): no class is named so, and pickle
                                       cannot save a module */
    for (size_t i = 0; i < G_N_ELEMENTS(mods); i++) {
        if (strlen(mods[i]) == ml && strncmp(mod, mods[i], ml) == 0) return true;
        if (strlen(mods[i]) == nl && strncmp(name, mods[i], nl) == 0) return true;
    }
    if (strcmp(mod, "builtins") == 0 || strcmp(mod, "__builtin__") == 0)
        for (size_t i = 0; i < G_N_ELEMENTS(builtins); i++)
            if (strcmp(name, builtins[i]) == 0) return true;
    return false;
}

static bool is_builtin_getattr(const PkObj* fn) {
    return fn->type == PK_GLOBAL && (strcmp(fn->u.glob.qualname, "builtins.getattr") == 0 ||
                                     strcmp(fn->u.glob.qualname, "__builtin__.getattr") == 0);
}

/* An attribute name getattr may resolve: a Python identifier (ASCII letters,
 * digits, '_', or UTF-8 non-ASCII bytes; not starting with a digit), not a
 * dunder (__globals__, __subclasses__, __init__ ... lead to code), and not a
 * name a nested class never has but an attack reaches for (a module such as
 * os, eval/exec/getattr/..., system/popen). */
static bool getattr_name_ok(const char* s, size_t n) {
    static const char* const calls[] = {"system", "popen", "spawn", "fork", "load", "loads"};
    if (n == 0 || n > 255 || strlen(s) != n) return false;
    if (s[0] >= '0' && s[0] <= '9') return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(g_ascii_isalnum(c) || c == '_' || c >= 0x80)) return false;
    }
    if (n >= 4 && s[0] == '_' && s[1] == '_' && s[n - 1] == '_' && s[n - 2] == '_') return false;
    if (is_dangerous(s, "") || is_dangerous("builtins", s)) return false;
    for (size_t i = 0; i < G_N_ELEMENTS(calls); i++)
        if (strcmp(s, calls[i]) == 0) return false;
    return true;
}

static PkObj* make_global(MglPickle* vm, const char* mod, size_t ml, const char* name, size_t nl) {
    PkObj* o = new_obj(vm, PK_GLOBAL);
    if (!o) return NULL;
    o->u.glob.qualname = malloc(ml + nl + 2);
    if (!o->u.glob.qualname) return NULL;
    memcpy(o->u.glob.qualname, mod, ml);
    o->u.glob.qualname[ml] = '.';
    memcpy(o->u.glob.qualname + ml + 1, name, nl);
    o->u.glob.qualname[ml + 1 + nl] = 0;
    o->u.glob.dtype = -1;
    char* m = g_strndup(mod, ml);
    char* n = g_strndup(name, nl);
    PkGlobalKind k = PG_OTHER;
    if (strcmp(m, "collections") == 0 && strcmp(n, "OrderedDict") == 0)
        k = PG_ORDERED_DICT;
    else if (strcmp(m, "torch._utils") == 0) {
        if (strcmp(n, "_rebuild_tensor_v2") == 0)
            k = PG_REBUILD_V2;
        else if (strcmp(n, "_rebuild_tensor_v3") == 0)
            k = PG_REBUILD_V3;
        else if (strcmp(n, "_rebuild_parameter") == 0 || strcmp(n, "_rebuild_parameter_with_state") == 0)
            k = PG_REBUILD_PARAM;
    } else if (strcmp(m, "torch._tensor") == 0) {
        /* tensor subclasses: _rebuild_from_type_v2(func, type, args, state) */
        if (strcmp(n, "_rebuild_from_type_v2") == 0 || strcmp(n, "_rebuild_from_type") == 0) k = PG_REBUILD_FROM_TYPE;
    } else if (strcmp(m, "torch") == 0) {
        if (strcmp(n, "device") == 0)
            k = PG_DEVICE;
        else if (strcmp(n, "Size") == 0)
            k = PG_SIZE;
        for (size_t i = 0; k == PG_OTHER && i < G_N_ELEMENTS(k_storage_types); i++)
            if (strcmp(n, k_storage_types[i].name) == 0) {
                k = PG_STORAGE_TYPE;
                o->u.glob.dtype = (int)k_storage_types[i].dt;
            }
        for (size_t i = 0; k == PG_OTHER && i < G_N_ELEMENTS(k_dtypes); i++)
            if (strcmp(n, k_dtypes[i].name) == 0) {
                k = PG_DTYPE;
                o->u.glob.dtype = (int)k_dtypes[i].dt;
            }
    } else if (is_dangerous(m, n))
        k = PG_DANGEROUS;
    g_free(m);
    g_free(n);
    o->u.glob.kind = k;
    return o;
}

/* ---- torch semantics -------------------------------------------------- */

static bool is_seq(const PkObj* o) { return o->type == PK_TUPLE || o->type == PK_LIST; }

static MglStatus persistent_load(MglPickle* vm, PkObj* pid, PkObj** out) {
    *out = NULL;
    if (pid->type != PK_TUPLE || pid->u.seq.n < 5)
        return vm_err(vm, MGL_E_UNSUPPORTED, "persistent id is not a ('storage', type, key, location, numel) tuple");
    PkObj** a = pid->u.seq.v;
    if ((a[0]->type != PK_STR && a[0]->type != PK_BYTES) || strcmp(a[0]->u.str.s, "storage") != 0)
        return vm_err(vm, MGL_E_UNSUPPORTED, "persistent id of unknown kind");
    if (a[1]->type != PK_GLOBAL || (a[1]->u.glob.kind != PG_STORAGE_TYPE && a[1]->u.glob.kind != PG_DTYPE))
        return vm_err(vm, MGL_E_UNSUPPORTED, "storage type %s not supported",
                      a[1]->type == PK_GLOBAL ? a[1]->u.glob.qualname : "(not a class)");
    char keybuf[32];
    const char* key;
    if (a[2]->type == PK_STR || a[2]->type == PK_BYTES)
        key = a[2]->u.str.s;
    else if (a[2]->type == PK_INT) {
        snprintf(keybuf, sizeof keybuf, "%" PRId64, a[2]->u.i);
        key = keybuf;
    } else
        return vm_err(vm, MGL_E_FORMAT, "storage key is not a string");
    if (a[4]->type != PK_INT || a[4]->u.i < 0) return vm_err(vm, MGL_E_FORMAT, "storage '%s': bad element count", key);
    MglDType dt = (MglDType)a[1]->u.glob.dtype;
    size_t es = mgl_dtype_size(dt);
    uint64_t numel = (uint64_t)a[4]->u.i;

    PkObj* s = g_hash_table_lookup(vm->storages, key);
    if (s && s->u.storage.dtype == (int)dt) {
        if (numel > s->u.storage.nbytes / es)
            return vm_err(vm, MGL_E_FORMAT, "storage '%s': %" PRIu64 " elements exceed its %" PRIu64 " bytes", key,
                          numel, s->u.storage.nbytes);
        *out = s;
        return MGL_OK;
    }
    if (!vm->o->load_storage) return vm_err(vm, MGL_E_UNSUPPORTED, "persistent ids not allowed here");
    const uint8_t* data;
    uint64_t nbytes;
    MglStatus st = vm->o->load_storage(vm->o->ud, key, &data, &nbytes, vm->err);
    if (st != MGL_OK) return st;
    if (numel > nbytes / es)
        return vm_err(vm, MGL_E_FORMAT,
                      "storage '%s': %" PRIu64 " elements of %zu bytes exceed its %" PRIu64 "-byte entry", key, numel,
                      es, nbytes);
    s = new_obj(vm, PK_STORAGE);
    if (!s) return alloc_fail(vm);
    s->u.storage.key = strdup(key);
    if (!s->u.storage.key) return nomem(vm);
    s->u.storage.dtype = (int)dt;
    s->u.storage.data = data;
    s->u.storage.nbytes = numel * es; /* the usable bytes are what the id declares */
    s->u.storage.map = mgl_map_ref(vm->o->map);
    /* First one wins for the cache; a second dtype for the same key gets its
     * own object (it still shares the bytes). */
    if (!g_hash_table_contains(vm->storages, key)) g_hash_table_insert(vm->storages, s->u.storage.key, s);
    *out = s;
    return MGL_OK;
}

/* Tensors must point at naturally aligned elements. torch pads zip entries
 * to 64 bytes so this is the rare path: a storage whose bytes sit at an odd
 * offset (archive rewritten by another zip tool) is copied once to the heap;
 * tensors already made from it keep their own reference to the old mapping. */
static MglStatus storage_align(MglPickle* vm, PkObj* s, size_t es) {
    if (es <= 1 || s->u.storage.nbytes == 0 || ((uintptr_t)s->u.storage.data % es) == 0) return MGL_OK;
    MglMap* m = calloc(1, sizeof *m);
    uint8_t* buf = malloc((size_t)s->u.storage.nbytes); /* malloc is max_align_t aligned */
    char* path = g_strdup_printf("%s:data/%s", vm->o->path, s->u.storage.key);
    char* p = path ? strdup(path) : NULL;
    g_free(path);
    if (!m || !buf || !p) {
        free(m);
        free(buf);
        free(p);
        return nomem(vm);
    }
    memcpy(buf, s->u.storage.data, (size_t)s->u.storage.nbytes);
    m->path = p;
    m->data = buf;
    m->size = (size_t)s->u.storage.nbytes;
    m->refcount = 1;
    m->mmapped = false;
    mgl_map_unref(s->u.storage.map);
    s->u.storage.map = m;
    s->u.storage.data = buf;
    return MGL_OK;
}

static MglStatus int_list(MglPickle* vm, const PkObj* o, const char* what, int64_t* v, int* n) {
    if (!is_seq(o)) return vm_err(vm, MGL_E_FORMAT, "tensor %s is not a tuple", what);
    if (o->u.seq.n > MGL_MAX_DIMS)
        return vm_err(vm, MGL_E_UNSUPPORTED, "tensor with %zu dimensions (max %d)", o->u.seq.n, MGL_MAX_DIMS);
    for (size_t i = 0; i < o->u.seq.n; i++) {
        const PkObj* e = o->u.seq.v[i];
        if (e->type != PK_INT || e->u.i < 0)
            return vm_err(vm, MGL_E_FORMAT, "tensor %s[%zu] is not a non-negative integer", what, i);
        v[i] = e->u.i;
    }
    *n = (int)o->u.seq.n;
    return MGL_OK;
}

/* _rebuild_tensor_v2(storage, storage_offset, size, stride, ...) and
 * _rebuild_tensor_v3(..., dtype, metadata): validate that every element the
 * view can reach lies inside the storage, then make a zero-copy view. */
static MglStatus rebuild_tensor(MglPickle* vm, PkObj* fn, PkObj* args, PkObj** out) {
    bool v3 = fn->u.glob.kind == PG_REBUILD_V3;
    if (!is_seq(args) || args->u.seq.n < (v3 ? 7u : 4u))
        return vm_err(vm, MGL_E_FORMAT, "%s: too few arguments", fn->u.glob.qualname);
    PkObj** a = args->u.seq.v;
    if (a[0]->type != PK_STORAGE)
        return vm_err(vm, MGL_E_FORMAT, "%s: first argument is not a storage", fn->u.glob.qualname);
    if (a[1]->type != PK_INT || a[1]->u.i < 0)
        return vm_err(vm, MGL_E_FORMAT, "tensor storage offset is not a non-negative integer");
    PkObj* s = a[0];
    MglDType dt = (MglDType)s->u.storage.dtype;
    if (v3) {
        if (a[6]->type != PK_GLOBAL || a[6]->u.glob.kind != PG_DTYPE)
            return vm_err(vm, MGL_E_UNSUPPORTED, "_rebuild_tensor_v3: unsupported dtype %s",
                          a[6]->type == PK_GLOBAL ? a[6]->u.glob.qualname : "(not a dtype)");
        dt = (MglDType)a[6]->u.glob.dtype;
    }
    PkObj* t = new_obj(vm, PK_TENSOR);
    if (!t) return alloc_fail(vm);
    t->u.tensor.dtype = dt;
    int nd_size, nd_stride;
    MGL_TRY(int_list(vm, a[2], "size", t->u.tensor.shape, &nd_size));
    MGL_TRY(int_list(vm, a[3], "stride", t->u.tensor.stride, &nd_stride));
    if (nd_size != nd_stride)
        return vm_err(vm, MGL_E_FORMAT, "tensor size has %d dims but stride has %d", nd_size, nd_stride);
    t->u.tensor.ndim = nd_size;

    size_t es = mgl_dtype_size(dt);
    uint64_t cap = s->u.storage.nbytes / es; /* storage length in elements */
    uint64_t off = (uint64_t)a[1]->u.i;
    bool empty = false;
    for (int i = 0; i < nd_size; i++) empty |= t->u.tensor.shape[i] == 0;
    /* Highest element index reachable: offset + sum (size-1)*stride, each
     * step overflow-checked (everything is non-negative). */
    uint64_t reach = off;
    bool ovf = false;
    if (!empty) {
        for (int i = 0; i < nd_size && !ovf; i++) {
            uint64_t sz = (uint64_t)t->u.tensor.shape[i] - 1, stv = (uint64_t)t->u.tensor.stride[i];
            if (sz && stv > UINT64_MAX / sz) {
                ovf = true;
                break;
            }
            uint64_t prod = sz * stv;
            if (reach > UINT64_MAX - prod) {
                ovf = true;
                break;
            }
            reach += prod;
        }
    }
    if (ovf || (empty ? off > cap : reach >= cap))
        return vm_err(vm, MGL_E_FORMAT,
                      "tensor view (offset %" PRIu64 ") reaches past its storage '%s' of %" PRIu64 " elements", off,
                      s->u.storage.key, cap);
    /* A view with zero strides can name far more elements than its storage
     * holds; the element count (of the non-zero sizes, for an empty view) must
     * still fit int64. */
    {
        uint64_t prod = 1;
        for (int i = 0; i < nd_size; i++) {
            uint64_t sz = (uint64_t)t->u.tensor.shape[i];
            if (sz == 0) continue;
            if (prod > (uint64_t)INT64_MAX / sz)
                return vm_err(vm, MGL_E_FORMAT, "tensor view of storage '%s' has more than 2^63 elements",
                              s->u.storage.key);
            prod *= sz;
        }
        /* zero strides let a view repeat its storage: allowed (expand() saves
         * that way), but never beyond 2^40 bytes, so nothing downstream can be
         * made to write or allocate without bound */
        if (!empty && prod > cap && prod > ((uint64_t)1 << 40) / es)
            return vm_err(vm, MGL_E_FORMAT,
                          "tensor view of storage '%s' repeats its %" PRIu64 " elements to %" PRIu64 ": too large",
                          s->u.storage.key, cap, prod);
    }
    MGL_TRY(storage_align(vm, s, es));
    t->u.tensor.data = s->u.storage.data + off * es;
    t->u.tensor.map = mgl_map_ref(s->u.storage.map);
    *out = t;
    return MGL_OK;
}

/* getattr(parent, name) as Python's pickler writes it below protocol 4 for a
 * nested class (Outer.Inner: GLOBAL module Outer, then getattr(that,
 * "Inner"); deeper nesting chains these). That is the one form accepted: the
 * parent a class reference already modelled as inert (PG_OTHER, outside
 * builtins) and the name a plain attribute name (getattr_name_ok). The
 * result is again only a reference, "module.Outer.Inner", that nothing ever
 * calls. Any other getattr (on an object, a string, a torch or dangerous
 * name, a dunder, with a default) is refused as an attack would use it. */
static MglStatus resolve_getattr(MglPickle* vm, PkObj* fn, PkObj* args, PkObj** out) {
    char what[160];
    if (args->type != PK_TUPLE || args->u.seq.n != 2)
        return vm_err(vm, MGL_E_SECURITY, "refusing pickle that calls %s with %s arguments", fn->u.glob.qualname,
                      args->type == PK_TUPLE ? (args->u.seq.n < 2 ? "too few" : "too many") : "non-tuple");
    PkObj* parent = args->u.seq.v[0];
    PkObj* name = args->u.seq.v[1];
    if (parent->type != PK_GLOBAL || parent->u.glob.kind != PG_OTHER ||
        g_str_has_prefix(parent->u.glob.qualname, "builtins.") ||
        g_str_has_prefix(parent->u.glob.qualname, "__builtin__."))
        return vm_err(vm, MGL_E_SECURITY,
                      "refusing pickle that calls %s on a %s (only a nested class name on an "
                      "inert class reference is resolved)",
                      fn->u.glob.qualname, mgl_pickle_describe(parent, what, sizeof what));
    if (name->type != PK_STR || !getattr_name_ok(name->u.str.s, name->u.str.len)) {
        if (name->type == PK_STR) {
            char* esc = g_strescape(name->u.str.len > 64 ? "(long name)" : name->u.str.s, NULL);
            snprintf(what, sizeof what, "'%s'", esc);
            g_free(esc);
        } else
            mgl_pickle_describe(name, what, sizeof what);
        return vm_err(vm, MGL_E_SECURITY, "refusing pickle that calls %s(%s, %s): not a nested class name",
                      fn->u.glob.qualname, parent->u.glob.qualname, what);
    }
    const char* pq = parent->u.glob.qualname;
    size_t pl = strlen(pq);
    /* a chain of getattr through the memo would otherwise grow each name
     * from the last: quadratic memory from a linear file */
    if (pl + 1 + name->u.str.len > MAX_QUALNAME)
        return vm_err(vm, MGL_E_FORMAT, "nested class name longer than %u bytes", MAX_QUALNAME);
    PkObj* o = new_obj(vm, PK_GLOBAL);
    if (!o) return alloc_fail(vm);
    o->u.glob.qualname = malloc(pl + name->u.str.len + 2);
    if (!o->u.glob.qualname) return nomem(vm);
    memcpy(o->u.glob.qualname, pq, pl);
    o->u.glob.qualname[pl] = '.';
    memcpy(o->u.glob.qualname + pl + 1, name->u.str.s, name->u.str.len + 1);
    o->u.glob.kind = PG_OTHER;
    o->u.glob.dtype = -1;
    *out = o;
    return MGL_OK;
}

/* depth bounds the only nesting a file can drive here: _rebuild_from_type_v2
 * whose inner func is again _rebuild_from_type_v2. */
static MglStatus call(MglPickle* vm, PkObj* fn, PkObj* args, PkObj** out, int depth) {
    if (fn->type == PK_GLOBAL) {
        switch (fn->u.glob.kind) {
        case PG_DANGEROUS:
            if (is_builtin_getattr(fn)) return resolve_getattr(vm, fn, args, out);
            return vm_err(vm, MGL_E_SECURITY, "refusing pickle that calls %s", fn->u.glob.qualname);
        case PG_REBUILD_V2:
        case PG_REBUILD_V3: return rebuild_tensor(vm, fn, args, out);
        case PG_REBUILD_PARAM:
            /* A Parameter is its data tensor for our purposes. */
            if (is_seq(args) && args->u.seq.n >= 1 && args->u.seq.v[0]->type == PK_TENSOR) {
                *out = args->u.seq.v[0];
                return MGL_OK;
            }
            break;
        case PG_ORDERED_DICT: {
            PkObj* d = new_obj(vm, PK_DICT);
            if (!d) return alloc_fail(vm);
            /* OrderedDict([(k, v), ...]) form; torch's own form has no args. */
            if (is_seq(args) && args->u.seq.n >= 1 && is_seq(args->u.seq.v[0])) {
                PkObj* items = args->u.seq.v[0];
                for (size_t i = 0; i < items->u.seq.n; i++) {
                    PkObj* kv = items->u.seq.v[i];
                    if (!is_seq(kv) || kv->u.seq.n != 2) continue;
                    if (!seq_push(d, kv->u.seq.v[0]) || !seq_push(d, kv->u.seq.v[1])) return nomem(vm);
                }
            }
            *out = d;
            return MGL_OK;
        }
        case PG_REBUILD_FROM_TYPE:
            /* The subclass itself is dropped: the data is what matters. */
            if (depth < 4 && is_seq(args) && args->u.seq.n >= 3) {
                PkObj* r = NULL;
                MGL_TRY(call(vm, args->u.seq.v[0], args->u.seq.v[2], &r, depth + 1));
                if (r->type == PK_TENSOR) {
                    *out = r;
                    return MGL_OK;
                }
            }
            break;
        case PG_SIZE:
            if (is_seq(args) && args->u.seq.n >= 1 && is_seq(args->u.seq.v[0])) {
                PkObj* src = args->u.seq.v[0];
                PkObj* t = new_obj(vm, PK_TUPLE);
                if (!t) return alloc_fail(vm);
                for (size_t i = 0; i < src->u.seq.n; i++)
                    if (!seq_push(t, src->u.seq.v[i])) return nomem(vm);
                *out = t;
                return MGL_OK;
            }
            break;
        default: break;
        }
    }
    PkObj* o = new_obj(vm, PK_OBJECT);
    if (!o) return alloc_fail(vm);
    o->u.obj.cls = fn;
    *out = o;
    return MGL_OK;
}

/* Instantiation without REDUCE (NEWOBJ, NEWOBJ_EX, OBJ, INST): the class is
 * never constructed; known containers become empty containers. */
static MglStatus instantiate(MglPickle* vm, PkObj* cls, PkObj** out) {
    if (cls->type == PK_GLOBAL && cls->u.glob.kind == PG_DANGEROUS)
        return vm_err(vm, MGL_E_SECURITY, "refusing pickle that instantiates %s", cls->u.glob.qualname);
    if (cls->type == PK_GLOBAL && cls->u.glob.kind == PG_ORDERED_DICT) {
        *out = new_obj(vm, PK_DICT);
        return *out ? MGL_OK : alloc_fail(vm);
    }
    PkObj* o = new_obj(vm, PK_OBJECT);
    if (!o) return alloc_fail(vm);
    o->u.obj.cls = cls;
    *out = o;
    return MGL_OK;
}

/* ---- containers ------------------------------------------------------- */

/* Appending to a placeholder (a custom list subclass, say) is dropped: the
 * real method would be code we will not run. */
static MglStatus add_items(MglPickle* vm, PkObj* target, PkObj** items, size_t n, PkType want, const char* op) {
    static const char* const kind[] = {[PK_LIST] = "list", [PK_DICT] = "dict", [PK_SET] = "set"};
    if (target->type == PK_OBJECT) return MGL_OK;
    if (target->type != want) return vm_err(vm, MGL_E_FORMAT, "%s on a non-%s", op, kind[want]);
    if (want == PK_DICT && n % 2) return vm_err(vm, MGL_E_FORMAT, "%s with an odd number of items", op);
    for (size_t i = 0; i < n; i++)
        if (!seq_push(target, items[i])) return nomem(vm);
    return MGL_OK;
}

/* Collects stack[first..sp) into a new container and truncates the stack. */
static MglStatus collect(MglPickle* vm, PkType t, size_t first) {
    PkObj* c = new_obj(vm, t);
    if (!c) return alloc_fail(vm);
    size_t n = vm->sp - first;
    if (t == PK_DICT && n % 2) return vm_err(vm, MGL_E_FORMAT, "DICT with an odd number of items");
    if (n) {
        c->u.seq.v = malloc(n * sizeof *c->u.seq.v);
        if (!c->u.seq.v) return nomem(vm);
        memcpy(c->u.seq.v, vm->stack + first, n * sizeof *c->u.seq.v);
        c->u.seq.n = c->u.seq.cap = n;
    }
    vm->sp = first;
    return push(vm, c);
}

/* ---- memo ------------------------------------------------------------- */

static MglStatus memo_put(MglPickle* vm, uint64_t idx) {
    PkObj* o = NULL;
    MGL_TRY(top(vm, &o));
    if (idx >= UINT32_MAX) return vm_err(vm, MGL_E_FORMAT, "memo index %" PRIu64 " too large", idx);
    if (g_hash_table_size(vm->memo) >= MAX_MEMO && !g_hash_table_contains(vm->memo, GSIZE_TO_POINTER(idx + 1)))
        return vm_err(vm, MGL_E_FORMAT, "memo larger than %u entries", MAX_MEMO);
    g_hash_table_insert(vm->memo, GSIZE_TO_POINTER((gsize)idx + 1), o);
    return MGL_OK;
}

static MglStatus memo_get(MglPickle* vm, uint64_t idx) {
    PkObj* o = idx < UINT32_MAX ? g_hash_table_lookup(vm->memo, GSIZE_TO_POINTER((gsize)idx + 1)) : NULL;
    if (!o) return vm_err(vm, MGL_E_FORMAT, "memo key %" PRIu64 " not found", idx);
    return push(vm, o);
}

/* ---- the VM ----------------------------------------------------------- */

static MglStatus push_string(MglPickle* vm, PkType t, uint64_t n) {
    if (n > vm->len - vm->pos)
        return vm_err(vm, MGL_E_FORMAT, "string of %" PRIu64 " bytes runs past the end of the pickle", n);
    PkObj* o = new_str(vm, t, vm->d + vm->pos, (size_t)n);
    vm->pos += (size_t)n;
    return push(vm, o);
}

static MglStatus step(MglPickle* vm, uint8_t op, bool* stop, PkObj** result) {
    PkObj *a = NULL, *b = NULL, *c = NULL;
    size_t first = 0;
    const char* s = NULL;
    size_t n = 0;
    int64_t iv = 0;
    bool big = false;

    switch (op) {
    case 0x80: /* PROTO */
        MGL_TRY(need(vm, 1));
        if (vm->d[vm->pos] > 5) return vm_err(vm, MGL_E_UNSUPPORTED, "pickle protocol %u", vm->d[vm->pos]);
        vm->pos++;
        return MGL_OK;
    case 0x95: /* FRAME: a length hint only; the opcodes follow inline */
        MGL_TRY(need(vm, 8));
        if (rd_le(vm->d + vm->pos, 8) > vm->len - vm->pos - 8)
            return vm_err(vm, MGL_E_FORMAT, "frame runs past the end of the pickle");
        vm->pos += 8;
        return MGL_OK;
    case '.': /* STOP */
        MGL_TRY(pop(vm, result));
        *stop = true;
        return MGL_OK;
    case '(': /* MARK */
        if (vm->n_marks == vm->marks_cap) {
            if (vm->marks_cap >= MAX_MARKS) return vm_err(vm, MGL_E_FORMAT, "more than %u nested MARKs", MAX_MARKS);
            size_t nc = vm->marks_cap ? vm->marks_cap * 2 : 16;
            size_t* nm = realloc(vm->marks, nc * sizeof *nm);
            if (!nm) return nomem(vm);
            vm->marks = nm;
            vm->marks_cap = nc;
        }
        vm->marks[vm->n_marks++] = vm->sp;
        return MGL_OK;
    case '0': /* POP: an item, or the mark itself when nothing is above it */
        if (vm->sp > fence(vm)) {
            vm->sp--;
            return MGL_OK;
        }
        MGL_TRY(pop_mark(vm, &first));
        return MGL_OK;
    case '1': /* POP_MARK */
        MGL_TRY(pop_mark(vm, &first));
        vm->sp = first;
        return MGL_OK;
    case '2': /* DUP */ MGL_TRY(top(vm, &a)); return push(vm, a);
    case 'N': return push(vm, vm->none);
    case 0x88:
    case 0x89: /* NEWTRUE, NEWFALSE */
        a = new_obj(vm, PK_BOOL);
        if (a) a->u.b = op == 0x88;
        return push(vm, a);

    /* ---- numbers ---- */
    case 'I': /* INT (text); "01"/"00" are protocol 0 booleans */
        MGL_TRY(read_line(vm, &s, &n));
        if (n == 2 && s[0] == '0' && (s[1] == '0' || s[1] == '1')) {
            a = new_obj(vm, PK_BOOL);
            if (a) a->u.b = s[1] == '1';
            return push(vm, a);
        }
        /* fall through */
    case 'L': /* LONG (text) */
        if (op == 'L') MGL_TRY(read_line(vm, &s, &n));
        if (!parse_decimal(s, n, &iv, &big)) return vm_err(vm, MGL_E_FORMAT, "bad integer literal");
        return push(vm, big ? new_obj(vm, PK_BIGINT) : new_int(vm, iv));
    case 'J': /* BININT: signed 32-bit */
        MGL_TRY(need(vm, 4));
        iv = (int32_t)(uint32_t)rd_le(vm->d + vm->pos, 4);
        vm->pos += 4;
        return push(vm, new_int(vm, iv));
    case 'K': /* BININT1 */ MGL_TRY(need(vm, 1)); return push(vm, new_int(vm, vm->d[vm->pos++]));
    case 'M': /* BININT2 */
        MGL_TRY(need(vm, 2));
        iv = (int64_t)rd_le(vm->d + vm->pos, 2);
        vm->pos += 2;
        return push(vm, new_int(vm, iv));
    case 0x8a: /* LONG1 */
        MGL_TRY(need(vm, 1));
        n = vm->d[vm->pos++];
        MGL_TRY(need(vm, n));
        a = make_long(vm, vm->d + vm->pos, n);
        vm->pos += n;
        return push(vm, a);
    case 0x8b: { /* LONG4 */
        MGL_TRY(need(vm, 4));
        int32_t l = (int32_t)(uint32_t)rd_le(vm->d + vm->pos, 4);
        vm->pos += 4;
        if (l < 0) return vm_err(vm, MGL_E_FORMAT, "LONG4 with negative length");
        MGL_TRY(need(vm, (size_t)l));
        a = make_long(vm, vm->d + vm->pos, (size_t)l);
        vm->pos += (size_t)l;
        return push(vm, a);
    }
    case 'F': { /* FLOAT (text) */
        MGL_TRY(read_line(vm, &s, &n));
        char* tmp = g_strndup(s, n);
        char* end = NULL;
        double f = g_ascii_strtod(tmp, &end);
        bool ok = end && end != tmp && (*end == 0 || *end == '\r');
        g_free(tmp);
        if (!ok) return vm_err(vm, MGL_E_FORMAT, "bad float literal");
        a = new_obj(vm, PK_FLOAT);
        if (a) a->u.f = f;
        return push(vm, a);
    }
    case 'G': { /* BINFLOAT: big-endian double */
        MGL_TRY(need(vm, 8));
        uint64_t bits = 0;
        for (int i = 0; i < 8; i++) bits = (bits << 8) | vm->d[vm->pos + (size_t)i];
        vm->pos += 8;
        a = new_obj(vm, PK_FLOAT);
        if (a) memcpy(&a->u.f, &bits, 8);
        return push(vm, a);
    }

    /* ---- strings and bytes ---- */
    case 'S': /* STRING: a quoted repr() */
        MGL_TRY(read_line(vm, &s, &n));
        while (n && s[n - 1] == '\r') n--;
        if (n < 2 || (s[0] != '\'' && s[0] != '"') || s[n - 1] != s[0])
            return vm_err(vm, MGL_E_FORMAT, "STRING argument is not quoted");
        a = make_escaped_string(vm, s + 1, n - 2);
        return push(vm, a);
    case 'T': { /* BINSTRING: signed 32-bit length */
        MGL_TRY(need(vm, 4));
        int32_t l = (int32_t)(uint32_t)rd_le(vm->d + vm->pos, 4);
        vm->pos += 4;
        if (l < 0) return vm_err(vm, MGL_E_FORMAT, "BINSTRING with negative length");
        return push_string(vm, PK_STR, (uint64_t)l);
    }
    case 'U': /* SHORT_BINSTRING */ MGL_TRY(need(vm, 1)); return push_string(vm, PK_STR, vm->d[vm->pos++]);
    case 'V': /* UNICODE: raw-unicode-escape text */
        MGL_TRY(read_line(vm, &s, &n));
        return push(vm, make_raw_unicode(vm, s, n));
    case 'X': /* BINUNICODE */
        MGL_TRY(need(vm, 4));
        vm->pos += 4;
        return push_string(vm, PK_STR, rd_le(vm->d + vm->pos - 4, 4));
    case 0x8c: /* SHORT_BINUNICODE */ MGL_TRY(need(vm, 1)); return push_string(vm, PK_STR, vm->d[vm->pos++]);
    case 0x8d: /* BINUNICODE8 */
        MGL_TRY(need(vm, 8));
        vm->pos += 8;
        return push_string(vm, PK_STR, rd_le(vm->d + vm->pos - 8, 8));
    case 'B': /* BINBYTES */
        MGL_TRY(need(vm, 4));
        vm->pos += 4;
        return push_string(vm, PK_BYTES, rd_le(vm->d + vm->pos - 4, 4));
    case 'C': /* SHORT_BINBYTES */ MGL_TRY(need(vm, 1)); return push_string(vm, PK_BYTES, vm->d[vm->pos++]);
    case 0x8e:
    case 0x96: /* BINBYTES8, BYTEARRAY8 */
        MGL_TRY(need(vm, 8));
        vm->pos += 8;
        return push_string(vm, PK_BYTES, rd_le(vm->d + vm->pos - 8, 8));

    /* ---- containers ---- */
    case ']': return push(vm, new_obj(vm, PK_LIST));
    case ')': return push(vm, new_obj(vm, PK_TUPLE));
    case '}': return push(vm, new_obj(vm, PK_DICT));
    case 0x8f: return push(vm, new_obj(vm, PK_SET));
    case 'l': MGL_TRY(pop_mark(vm, &first)); return collect(vm, PK_LIST, first);
    case 't': MGL_TRY(pop_mark(vm, &first)); return collect(vm, PK_TUPLE, first);
    case 'd': MGL_TRY(pop_mark(vm, &first)); return collect(vm, PK_DICT, first);
    case 0x91: MGL_TRY(pop_mark(vm, &first)); return collect(vm, PK_SET, first); /* FROZENSET */
    case 0x85:
    case 0x86:
    case 0x87: { /* TUPLE1/2/3 */
        size_t k = (size_t)(op - 0x84);
        if (vm->sp - fence(vm) < k) return vm_err(vm, MGL_E_FORMAT, "pickle stack underflow");
        return collect(vm, PK_TUPLE, vm->sp - k);
    }
    case 'a': /* APPEND */
        MGL_TRY(pop(vm, &b));
        MGL_TRY(top(vm, &a));
        return add_items(vm, a, &b, 1, PK_LIST, "APPEND");
    case 'e':    /* APPENDS */
    case 'u':    /* SETITEMS */
    case 0x90: { /* ADDITEMS */
        MGL_TRY(pop_mark(vm, &first));
        /* the container sits right below the mark */
        if (first <= fence(vm)) return vm_err(vm, MGL_E_FORMAT, "pickle stack underflow");
        a = vm->stack[first - 1];
        MglStatus st = add_items(vm, a, vm->stack + first, vm->sp - first,
                                 op == 'e'   ? PK_LIST
                                 : op == 'u' ? PK_DICT
                                             : PK_SET,
                                 op == 'e'   ? "APPENDS"
                                 : op == 'u' ? "SETITEMS"
                                             : "ADDITEMS");
        vm->sp = first;
        return st;
    }
    case 's': { /* SETITEM */
        MGL_TRY(pop(vm, &c));
        MGL_TRY(pop(vm, &b));
        MGL_TRY(top(vm, &a));
        PkObj* kv[2] = {b, c};
        return add_items(vm, a, kv, 2, PK_DICT, "SETITEM");
    }

    /* ---- memo ---- */
    case 'g':
    case 'p': /* GET, PUT (text) */
        MGL_TRY(read_line(vm, &s, &n));
        if (!parse_decimal(s, n, &iv, &big) || big || iv < 0) return vm_err(vm, MGL_E_FORMAT, "bad memo key");
        return op == 'g' ? memo_get(vm, (uint64_t)iv) : memo_put(vm, (uint64_t)iv);
    case 'h':
    case 'q': /* BINGET, BINPUT */
        MGL_TRY(need(vm, 1));
        iv = vm->d[vm->pos++];
        return op == 'h' ? memo_get(vm, (uint64_t)iv) : memo_put(vm, (uint64_t)iv);
    case 'j':
    case 'r': /* LONG_BINGET, LONG_BINPUT */
        MGL_TRY(need(vm, 4));
        iv = (int64_t)rd_le(vm->d + vm->pos, 4);
        vm->pos += 4;
        return op == 'j' ? memo_get(vm, (uint64_t)iv) : memo_put(vm, (uint64_t)iv);
    case 0x94: /* MEMOIZE */ return memo_put(vm, g_hash_table_size(vm->memo));

    /* ---- globals and calls ---- */
    case 'c': { /* GLOBAL module\nname\n */
        const char *m = NULL, *nm = NULL;
        size_t ml = 0, nl = 0;
        MGL_TRY(read_line(vm, &m, &ml));
        MGL_TRY(read_line(vm, &nm, &nl));
        return push(vm, make_global(vm, m, ml, nm, nl));
    }
    case 0x93: /* STACK_GLOBAL */
        MGL_TRY(pop(vm, &b));
        MGL_TRY(pop(vm, &a));
        if (a->type != PK_STR || b->type != PK_STR) return vm_err(vm, MGL_E_FORMAT, "STACK_GLOBAL needs two strings");
        return push(vm, make_global(vm, a->u.str.s, a->u.str.len, b->u.str.s, b->u.str.len));
    case 'R': /* REDUCE */
        MGL_TRY(pop(vm, &b));
        MGL_TRY(pop(vm, &a));
        MGL_TRY(call(vm, a, b, &c, 0));
        return push(vm, c);
    case 0x81: /* NEWOBJ */
        MGL_TRY(pop(vm, &b));
        MGL_TRY(pop(vm, &a));
        MGL_TRY(instantiate(vm, a, &c));
        return push(vm, c);
    case 0x92: /* NEWOBJ_EX */
        MGL_TRY(pop(vm, &c));
        MGL_TRY(pop(vm, &b));
        MGL_TRY(pop(vm, &a));
        MGL_TRY(instantiate(vm, a, &c));
        return push(vm, c);
    case 'o': /* OBJ: MARK cls args... */
        MGL_TRY(pop_mark(vm, &first));
        if (vm->sp == first) return vm_err(vm, MGL_E_FORMAT, "OBJ without a class");
        a = vm->stack[first];
        vm->sp = first;
        MGL_TRY(instantiate(vm, a, &c));
        return push(vm, c);
    case 'i': { /* INST module\nname\n, MARK args... */
        const char *m = NULL, *nm = NULL;
        size_t ml = 0, nl = 0;
        MGL_TRY(read_line(vm, &m, &ml));
        MGL_TRY(read_line(vm, &nm, &nl));
        MGL_TRY(pop_mark(vm, &first));
        vm->sp = first;
        a = make_global(vm, m, ml, nm, nl);
        if (!a) return alloc_fail(vm);
        MGL_TRY(instantiate(vm, a, &c));
        return push(vm, c);
    }
    case 'b': /* BUILD: __setstate__ is code; keep the object, drop the state */
        MGL_TRY(pop(vm, &b));
        MGL_TRY(top(vm, &a));
        return MGL_OK;
    case 'Q': /* BINPERSID */
        MGL_TRY(pop(vm, &a));
        MGL_TRY(persistent_load(vm, a, &c));
        return push(vm, c);
    case 'P': /* PERSID: text ids are never written by torch.save */
        return vm_err(vm, MGL_E_UNSUPPORTED, "text persistent id (PERSID)");
    case 0x82:
    case 0x83:
    case 0x84:
        return vm_err(vm, MGL_E_UNSUPPORTED, "extension registry opcode EXT%d", op == 0x82 ? 1 : op == 0x83 ? 2 : 4);
    case 0x97:
    case 0x98: return vm_err(vm, MGL_E_UNSUPPORTED, "out-of-band buffer opcode 0x%02x", op);
    default: return vm_err(vm, MGL_E_FORMAT, "unknown pickle opcode 0x%02x", op);
    }
}

MglStatus mgl_pickle_run(const uint8_t* data, size_t len, const MglPickleOpts* opts, MglPickle** out_vm, PkObj** result,
                         MglErr* err) {
    *out_vm = NULL;
    *result = NULL;
    MglPickle* vm = calloc(1, sizeof *vm);
    if (!vm) return mgl_err(err, MGL_E_NOMEM, "%s: out of memory", opts->path);
    vm->o = opts;
    vm->d = data;
    vm->len = data ? len : 0;
    vm->err = err;
    vm->memo = g_hash_table_new(g_direct_hash, g_direct_equal);
    vm->storages = g_hash_table_new(g_str_hash, g_str_equal);
    vm->none = new_obj(vm, PK_NONE);
    if (!vm->none) {
        mgl_pickle_free(vm);
        return mgl_err(err, MGL_E_NOMEM, "%s: out of memory", opts->path);
    }

    bool stop = false;
    MglStatus st = MGL_OK;
    while (!stop) {
        vm->op_pos = vm->pos;
        if (vm->pos >= vm->len) {
            st = vm_err(vm, MGL_E_FORMAT, "pickle data truncated (ends without STOP)");
            break;
        }
        st = step(vm, vm->d[vm->pos++], &stop, result);
        if (st != MGL_OK) break;
    }
    if (st != MGL_OK) {
        *result = NULL;
        mgl_pickle_free(vm);
        return st;
    }
    *out_vm = vm;
    return MGL_OK;
}

const char* mgl_pickle_describe(const PkObj* o, char* buf, size_t len) {
    static const char* const names[] = {
        [PK_NONE] = "None",     [PK_BOOL] = "bool",       [PK_INT] = "int",       [PK_BIGINT] = "int",
        [PK_FLOAT] = "float",   [PK_STR] = "str",         [PK_BYTES] = "bytes",   [PK_LIST] = "list",
        [PK_TUPLE] = "tuple",   [PK_DICT] = "dict",       [PK_SET] = "set",       [PK_GLOBAL] = "class reference",
        [PK_OBJECT] = "object", [PK_STORAGE] = "storage", [PK_TENSOR] = "tensor",
    };
    if (o->type == PK_OBJECT && o->u.obj.cls && o->u.obj.cls->type == PK_GLOBAL)
        snprintf(buf, len, "%s object", o->u.obj.cls->u.glob.qualname);
    else if (o->type == PK_GLOBAL)
        snprintf(buf, len, "reference to %s", o->u.glob.qualname);
    else
        snprintf(buf, len, "%s", names[o->type]);
    return buf;
}
