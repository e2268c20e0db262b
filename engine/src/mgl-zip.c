/* mgl-zip.c: read-only zip directory reader (with ZIP64) over a mapped file.
 *
 * The archive is untrusted: every offset and size read from it is checked
 * against the mapped size with overflow-safe arithmetic before use. Only the
 * directory structures are parsed; entry data is handed out as a pointer into
 * the mapping (torch.save writes STORED entries, so no inflation is needed). */
#include "mgl-zip.h"

#include <glib.h>
#include <stdlib.h>
#include <string.h>

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_LOC64 0x07064b50u

#define EOCD_LEN 22u
#define LOC64_LEN 20u
#define EOCD64_LEN 56u
#define CEN_LEN 46u
#define LOCAL_LEN 30u

static uint16_t rd16(const uint8_t* p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t rd32(const uint8_t* p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t rd64(const uint8_t* p) { return (uint64_t)rd32(p) | ((uint64_t)rd32(p + 4) << 32); }

/* off + len <= size, without overflow. */
static bool in_bounds(uint64_t off, uint64_t len, uint64_t size) { return off <= size && len <= size - off; }

/* Search backwards for the EOCD: it is followed by a comment of up to 64 KiB,
 * so the signature can be anywhere in the last 22 + 65535 bytes. The comment
 * length must agree with where the record sits, which rejects a signature
 * that merely appears inside the comment. */
static bool find_eocd(const uint8_t* data, size_t size, size_t* out) {
    if (size < EOCD_LEN) return false;
    size_t last = size - EOCD_LEN;
    size_t first = last > 65535u ? last - 65535u : 0;
    for (size_t p = last + 1; p-- > first;) {
        if (rd32(data + p) != SIG_EOCD) continue;
        uint16_t clen = rd16(data + p + 20);
        if ((uint64_t)p + EOCD_LEN + clen <= size) {
            *out = p;
            return true;
        }
    }
    return false;
}

bool mgl_zip_probe(const uint8_t* data, size_t size) {
    size_t p;
    return data && find_eocd(data, size, &p);
}

void mgl_zip_close(MglZip* z) {
    if (!z) return;
    for (size_t i = 0; i < z->n; i++) free(z->entries[i].name);
    free(z->entries);
    if (z->index) g_hash_table_destroy(z->index);
    memset(z, 0, sizeof *z);
}

/* Applies the ZIP64 extended-information extra field (id 0x0001) of a central
 * entry: it holds, in this order, only those of the 64-bit values whose
 * 32-bit field was saturated to 0xFFFFFFFF. */
static MglStatus apply_zip64_extra(MglZip* z, MglZipEntry* e, const uint8_t* extra, size_t elen, bool need_size,
                                   bool need_csize, bool need_off, MglErr* err) {
    size_t p = 0;
    while (p + 4 <= elen) {
        uint16_t id = rd16(extra + p), len = rd16(extra + p + 2);
        if (len > elen - p - 4) break; /* ragged tail: some writers pad; ignore */
        if (id == 0x0001) {
            const uint8_t* f = extra + p + 4;
            size_t need = 8u * ((size_t)need_size + need_csize + need_off);
            if (len < need)
                return mgl_err(err, MGL_E_FORMAT, "%s: zip entry '%s': ZIP64 extra field too short", z->path, e->name);
            if (need_size) {
                e->size = rd64(f);
                f += 8;
            }
            if (need_csize) {
                e->comp_size = rd64(f);
                f += 8;
            }
            if (need_off) {
                e->local_offset = rd64(f);
            }
            return MGL_OK;
        }
        p += 4u + len;
    }
    if (need_size || need_csize || need_off)
        return mgl_err(err, MGL_E_FORMAT, "%s: zip entry '%s': sizes saturated but no ZIP64 extra field", z->path,
                       e->name);
    return MGL_OK;
}

MglStatus mgl_zip_open(MglZip* z, const char* path, const uint8_t* data, size_t size, MglErr* err) {
    memset(z, 0, sizeof *z);
    z->path = path;
    z->data = data;
    z->size = size;

    size_t eocd;
    if (!data || !find_eocd(data, size, &eocd))
        return mgl_err(err, MGL_E_FORMAT, "%s: not a zip archive (no end-of-central-directory record)", path);
    const uint8_t* e = data + eocd;
    uint64_t n_entries = rd16(e + 10);
    uint64_t cd_size = rd32(e + 12);
    uint64_t cd_off = rd32(e + 16);
    if (rd16(e + 4) != 0 || rd16(e + 6) != 0 || rd16(e + 8) != rd16(e + 10))
        return mgl_err(err, MGL_E_UNSUPPORTED, "%s: multi-disk zip archives are not supported", path);

    /* ZIP64: a locator right before the EOCD points at the 64-bit record. Use
     * it whenever present; writers (miniz in torch) may emit it even when the
     * 32-bit fields are not saturated. */
    bool saturated = n_entries == 0xFFFFu || cd_size == 0xFFFFFFFFu || cd_off == 0xFFFFFFFFu;
    if (eocd >= LOC64_LEN && rd32(data + eocd - LOC64_LEN) == SIG_LOC64) {
        const uint8_t* loc = data + eocd - LOC64_LEN;
        uint64_t rec = rd64(loc + 8);
        if (!in_bounds(rec, EOCD64_LEN, eocd - LOC64_LEN) || rd32(data + rec) != SIG_EOCD64)
            return mgl_err(err, MGL_E_FORMAT, "%s: ZIP64 end-of-central-directory record missing or out of bounds",
                           path);
        const uint8_t* r = data + rec;
        if (rd32(r + 16) != 0 || rd32(r + 20) != 0 || rd64(r + 24) != rd64(r + 32))
            return mgl_err(err, MGL_E_UNSUPPORTED, "%s: multi-disk zip archives are not supported", path);
        n_entries = rd64(r + 32);
        cd_size = rd64(r + 40);
        cd_off = rd64(r + 48);
        if (!in_bounds(cd_off, cd_size, rec))
            return mgl_err(err, MGL_E_FORMAT, "%s: central directory (offset %llu, %llu bytes) lies outside the file",
                           path, (unsigned long long)cd_off, (unsigned long long)cd_size);
    } else {
        if (saturated) return mgl_err(err, MGL_E_FORMAT, "%s: ZIP64 archive without a ZIP64 locator", path);
        if (!in_bounds(cd_off, cd_size, eocd))
            return mgl_err(err, MGL_E_FORMAT, "%s: central directory (offset %llu, %llu bytes) lies outside the file",
                           path, (unsigned long long)cd_off, (unsigned long long)cd_size);
    }
    /* Each entry needs at least CEN_LEN bytes: this bounds the allocation by
     * the file size, whatever count the record claims. */
    if (n_entries > cd_size / CEN_LEN)
        return mgl_err(err, MGL_E_FORMAT, "%s: central directory claims %llu entries in %llu bytes", path,
                       (unsigned long long)n_entries, (unsigned long long)cd_size);

    z->entries = calloc(n_entries ? (size_t)n_entries : 1, sizeof *z->entries);
    if (!z->entries) return mgl_err(err, MGL_E_NOMEM, "%s: out of memory", path);
    z->index = g_hash_table_new(g_str_hash, g_str_equal);

    uint64_t p = cd_off, end = cd_off + cd_size;
    for (uint64_t i = 0; i < n_entries; i++) {
        if (!in_bounds(p, CEN_LEN, end) || rd32(data + p) != SIG_CENTRAL) {
            mgl_zip_close(z);
            return mgl_err(err, MGL_E_FORMAT, "%s: bad central directory entry %llu at offset %llu", path,
                           (unsigned long long)i, (unsigned long long)p);
        }
        const uint8_t* c = data + p;
        uint16_t nlen = rd16(c + 28), xlen = rd16(c + 30), clen = rd16(c + 32);
        uint64_t total = (uint64_t)CEN_LEN + nlen + xlen + clen;
        if (!in_bounds(p, total, end)) {
            mgl_zip_close(z);
            return mgl_err(err, MGL_E_FORMAT, "%s: central directory entry %llu overruns the directory", path,
                           (unsigned long long)i);
        }
        const uint8_t* nm = c + CEN_LEN;
        if (memchr(nm, 0, nlen)) {
            mgl_zip_close(z);
            return mgl_err(err, MGL_E_FORMAT, "%s: zip entry %llu has a NUL byte in its name", path,
                           (unsigned long long)i);
        }
        MglZipEntry* ent = &z->entries[z->n];
        ent->name = malloc((size_t)nlen + 1);
        if (!ent->name) {
            mgl_zip_close(z);
            return mgl_err(err, MGL_E_NOMEM, "%s: out of memory", path);
        }
        memcpy(ent->name, nm, nlen);
        ent->name[nlen] = 0;
        z->n++;
        ent->flags = rd16(c + 8);
        ent->method = rd16(c + 10);
        ent->comp_size = rd32(c + 20);
        ent->size = rd32(c + 24);
        ent->local_offset = rd32(c + 42);
        MglStatus st = apply_zip64_extra(z, ent, nm + nlen, xlen, ent->size == 0xFFFFFFFFu,
                                         ent->comp_size == 0xFFFFFFFFu, ent->local_offset == 0xFFFFFFFFu, err);
        if (st != MGL_OK) {
            mgl_zip_close(z);
            return st;
        }
        /* Two entries with one name would make lookups ambiguous (and could
         * hide data from a reviewer using another tool): refuse. */
        if (g_hash_table_contains(z->index, ent->name)) {
            MglStatus s2 = mgl_err(err, MGL_E_FORMAT, "%s: duplicate zip entry '%s'", path, ent->name);
            mgl_zip_close(z);
            return s2;
        }
        g_hash_table_insert(z->index, ent->name, ent);
        p += total;
    }
    return MGL_OK;
}

const MglZipEntry* mgl_zip_find(const MglZip* z, const char* name) {
    return z->index ? g_hash_table_lookup(z->index, name) : NULL;
}

MglStatus mgl_zip_entry_data(const MglZip* z, const MglZipEntry* e, const uint8_t** data, uint64_t* size, MglErr* err) {
    *data = NULL;
    *size = 0;
    if (e->flags & 1u) return mgl_err(err, MGL_E_UNSUPPORTED, "%s: zip entry '%s' is encrypted", z->path, e->name);
    if (e->method != 0)
        return mgl_err(err, MGL_E_UNSUPPORTED,
                       "%s: zip entry '%s' uses compression method %u (only stored entries are supported)", z->path,
                       e->name, e->method);
    if (e->comp_size != e->size)
        return mgl_err(err, MGL_E_FORMAT, "%s: stored zip entry '%s' has compressed size %llu != size %llu", z->path,
                       e->name, (unsigned long long)e->comp_size, (unsigned long long)e->size);
    /* The local header's name/extra lengths differ from the central ones
     * (torch pads the local extra field to align data to 64 bytes), so the
     * data offset must come from the local header. */
    if (!in_bounds(e->local_offset, LOCAL_LEN, z->size) || rd32(z->data + e->local_offset) != SIG_LOCAL)
        return mgl_err(err, MGL_E_FORMAT, "%s: zip entry '%s': local header at offset %llu missing or out of bounds",
                       z->path, e->name, (unsigned long long)e->local_offset);
    const uint8_t* l = z->data + e->local_offset;
    uint64_t doff = e->local_offset + LOCAL_LEN + rd16(l + 26) + rd16(l + 28);
    if (!in_bounds(doff, e->size, z->size))
        return mgl_err(err, MGL_E_FORMAT,
                       "%s: zip entry '%s': data (offset %llu, %llu bytes) runs past the end of the file", z->path,
                       e->name, (unsigned long long)doff, (unsigned long long)e->size);
    *data = z->data + doff;
    *size = e->size;
    return MGL_OK;
}
