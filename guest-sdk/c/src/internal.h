/* What the SDK's files share; not part of the API. */
#ifndef ORIZURU_INTERNAL_H
#define ORIZURU_INTERNAL_H

#include <stdarg.h>

#include "orizuru.h"

/* The call arena: everything the SDK hands out lives here until the action
 * returns. Running out of memory stops the call with a sentence on stderr. */
void *orizuru__alloc(size_t size);
void *orizuru__calloc(size_t count, size_t size);
char *orizuru__strndup(const char *text, size_t len);
char *orizuru__vformat(const char *format, va_list args);
void orizuru__arena_reset(void);
/* Called as each action's call comes in: points cJSON at the arena. */
void orizuru__call_start(void);
_Noreturn void orizuru__out_of_memory(void);
/* malloc that stops the call when memory runs out (for what the host frees). */
void *orizuru__malloc(size_t size);

struct orizuru_error {
    enum {
        ORIZURU__INVALID,
        ORIZURU__NOT_FOUND,
        ORIZURU__CONFLICT,
        ORIZURU__NOT_READY,
        ORIZURU__FAILED,
        ORIZURU__UNSUPPORTED,
        ORIZURU__MISSING_PARAMS,
    } kind;
    const char *message;   /* all but unsupported and missing params */
    orizuru_strings names; /* missing params */
    const char *sql_code;  /* a failure from a refused SQL statement */
};

orizuru_error *orizuru__error(int kind, const char *message);

/* Runs `fn(arg)` when the current action returns (before its answer is
 * handed over): how the SDK closes what an action opened. */
void orizuru__at_action_end(void (*fn)(void *), void *arg);
void orizuru__action_end(void);

/* What the actions write into. */
struct orizuru_plans {
    orizuru_pair *items; /* name, description */
    size_t len, size;
};

struct orizuru_provisioned {
    bool pending;
    const char *data; /* NULL: none */
};

struct orizuru_info {
    orizuru_pair *items; /* label, value */
    size_t len, size;
};

struct orizuru_status {
    enum { ORIZURU__UP, ORIZURU__PENDING, ORIZURU__DOWN, ORIZURU__CUSTOM } kind;
    const char *text;
};

struct orizuru_env {
    orizuru_pair *items; /* kept sorted by name */
    size_t len, size;
};

struct orizuru_proxy_response {
    uint16_t status;
    const uint8_t *body;
    size_t body_len;
    orizuru_pair *headers;
    size_t len, size;
};

#endif
