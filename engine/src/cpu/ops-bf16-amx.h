/* ops-bf16-amx.h: the AMX block of mgl_gemm_bf16, written once over four tile
 * operations that the includer defines: TZERO(t), TLOAD(t, base, stride),
 * TDP(c, a, b) (TDPBF16PS) and TSTORE(t, base, stride), with AMX_BLOCK the
 * function's name and AMX_ATTR its attributes (undefined again at the end). ops-bf16.c includes it twice:
 * with the AMX instructions, and with the software model of the tiles that
 * the tests and the start-up check compare them with. No include guard.
 *
 * Tiles (palette 1, all 16 rows x 64 bytes): 0-3 the 2 x 2 blocks of C
 * (16 x 16 floats), 4-5 the two row groups of A (16 rows x 16 pairs), 6-7
 * the panel's two halves (16 pairs x 16 columns of pairs).
 *
 * c (32 x 32 floats, rows of 32) = the rows of a0 (and a1: rows 16-31; NULL
 * for 16 rows, and then only c's first 16 rows are written) times the
 * panel p, over nkb blocks of 16 pairs. A's row groups are stored tile by
 * tile (nkb tiles of 16 rows x 16 pairs, 1 KB each), the panel as
 * pack_panel writes it (rows of NR pairs). */
AMX_ATTR static void AMX_BLOCK(const uint32_t* a0, const uint32_t* a1, const uint32_t* p, int64_t nkb, float* c) {
    TZERO(0);
    TZERO(1);
    if (a1) {
        TZERO(2);
        TZERO(3);
    }
    for (int64_t kb = 0; kb < nkb; kb++) {
        const uint32_t* b = p + kb * 16 * NR;
        TLOAD(4, a0 + kb * 256, 64);
        TLOAD(6, b, NR * 4);
        TLOAD(7, b + 16, NR * 4);
        TDP(0, 4, 6);
        TDP(1, 4, 7);
        if (a1) {
            TLOAD(5, a1 + kb * 256, 64);
            TDP(2, 5, 6);
            TDP(3, 5, 7);
        }
    }
    TSTORE(0, c, 32 * 4);
    TSTORE(1, c + 16, 32 * 4);
    if (a1) {
        TSTORE(2, c + 16 * 32, 32 * 4);
        TSTORE(3, c + 16 * 32 + 16, 32 * 4);
    }
}

/* the includer's definitions end with the function */
#undef AMX_ATTR
#undef AMX_BLOCK
#undef TZERO
#undef TLOAD
#undef TDP
#undef TSTORE
