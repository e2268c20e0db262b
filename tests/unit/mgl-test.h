/* mgl-test.h: minimal assertions for engine unit tests (exit 1 on failure, 77 = skip). */
#ifndef MGL_TEST_H
#define MGL_TEST_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int mgl_test_failures = 0;

#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                                   \
            mgl_test_failures++;                                                                                       \
        }                                                                                                              \
    } while (0)
#define CHECK_MSG(cond, ...)                                                                                           \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);                                   \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fputc('\n', stderr);                                                                                       \
            mgl_test_failures++;                                                                                       \
        }                                                                                                              \
    } while (0)
#define REQUIRE(cond)                                                                                                  \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "%s:%d: REQUIRE failed: %s\n", __FILE__, __LINE__, #cond);                                 \
            exit(1);                                                                                                   \
        }                                                                                                              \
    } while (0)
#define TEST_DONE()                                                                                                    \
    do {                                                                                                               \
        if (mgl_test_failures) {                                                                                       \
            fprintf(stderr, "%d check(s) failed\n", mgl_test_failures);                                                \
            return 1;                                                                                                  \
        }                                                                                                              \
        printf("all checks passed\n");                                                                                 \
        return 0;                                                                                                      \
    } while (0)

static inline const char* test_env(const char* name) {
    const char* v = getenv(name);
    if (!v || !*v) {
        fprintf(stderr, "environment variable %s not set\n", name);
        exit(1);
    }
    return v;
}
#endif
