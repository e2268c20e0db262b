/* mgl-zip.h: minimal read-only zip (incl. ZIP64) directory reader over a
 * mapped file, enough for torch.save archives (STORED entries). */
#ifndef MGL_ZIP_H
#define MGL_ZIP_H

#include "mgl-internal.h"

typedef struct {
    char* name;            /* NUL-terminated; names holding NUL are rejected */
    uint64_t local_offset; /* offset of the local file header */
    uint64_t comp_size;
    uint64_t size;
    uint16_t method; /* 0 = stored */
    uint16_t flags;
} MglZipEntry;

typedef struct {
    const char* path; /* for messages; not owned */
    const uint8_t* data;
    size_t size;
    MglZipEntry* entries;
    size_t n;
    void* index; /* GHashTable name -> entry */
} MglZip;

/* Parses the central directory of the archive in data[0..size). `path` must
 * outlive the MglZip. On failure *z is left empty (safe to close). */
MglStatus mgl_zip_open(MglZip* z, const char* path, const uint8_t* data, size_t size, MglErr* err);
void mgl_zip_close(MglZip* z);
const MglZipEntry* mgl_zip_find(const MglZip* z, const char* name);
/* Locates an entry's bytes through its local header. Only STORED entries. */
MglStatus mgl_zip_entry_data(const MglZip* z, const MglZipEntry* e, const uint8_t** data, uint64_t* size, MglErr* err);
/* True when the buffer ends in something that looks like a zip EOCD. */
bool mgl_zip_probe(const uint8_t* data, size_t size);

#endif /* MGL_ZIP_H */
