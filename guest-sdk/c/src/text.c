/* The call arena, errors and string helpers. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- The call arena ------------------------------------------------------- */

typedef struct chunk {
    struct chunk *next;
    size_t used, size;
    _Alignas(16) unsigned char bytes[];
} chunk;

static chunk *arena;

_Noreturn void orizuru__out_of_memory(void) {
    static const char message[] =
        "orizuru: the plugin ran out of memory; raise the service's memory_mb or make the call "
        "use less\n";
    fwrite(message, 1, sizeof message - 1, stderr);
    abort();
}

void *orizuru__malloc(size_t size) {
    void *memory = malloc(size ? size : 1);
    if (!memory) {
        orizuru__out_of_memory();
    }
    return memory;
}

void *orizuru__alloc(size_t size) {
    size = (size + 15) & ~(size_t)15;
    if (!arena || arena->size - arena->used < size) {
        size_t wanted = size > 16384 ? size : 16384;
        chunk *fresh = malloc(sizeof(chunk) + wanted);
        if (!fresh) {
            orizuru__out_of_memory();
        }
        fresh->used = 0;
        fresh->size = wanted;
        if (arena && size > 16384) {
            /* A large block goes behind the current chunk, which keeps its room. */
            fresh->next = arena->next;
            arena->next = fresh;
            fresh->used = size;
            return fresh->bytes;
        }
        fresh->next = arena;
        arena = fresh;
    }
    void *memory = arena->bytes + arena->used;
    arena->used += size;
    return memory;
}

void *orizuru__calloc(size_t count, size_t size) {
    if (size && count > SIZE_MAX / size) {
        orizuru__out_of_memory();
    }
    void *memory = orizuru__alloc(count * size);
    memset(memory, 0, count * size);
    return memory;
}

/* cJSON's memory is the arena's too, so an author frees none of it. */
static void keep_until_the_call_ends(void *memory) {
    (void)memory;
}

void orizuru__call_start(void) {
    static bool hooked;
    if (!hooked) {
        cJSON_Hooks hooks = {.malloc_fn = orizuru__alloc, .free_fn = keep_until_the_call_ends};
        cJSON_InitHooks(&hooks);
        hooked = true;
    }
}

void orizuru__arena_reset(void) {
    while (arena) {
        chunk *next = arena->next;
        free(arena);
        arena = next;
    }
}

char *orizuru__strndup(const char *text, size_t len) {
    char *copy = orizuru__alloc(len + 1);
    memcpy(copy, text, len);
    copy[len] = '\0';
    return copy;
}

char *orizuru__vformat(const char *format, va_list args) {
    va_list again;
    va_copy(again, args);
    int len = vsnprintf(NULL, 0, format, args);
    if (len < 0) {
        va_end(again);
        return orizuru__strndup(format, strlen(format));
    }
    char *text = orizuru__alloc((size_t)len + 1);
    vsnprintf(text, (size_t)len + 1, format, again);
    va_end(again);
    return text;
}

const char *orizuru_format(const char *format, ...) {
    va_list args;
    va_start(args, format);
    char *text = orizuru__vformat(format, args);
    va_end(args);
    return text;
}

const char *orizuru_strdup(const char *text) {
    return text ? orizuru__strndup(text, strlen(text)) : NULL;
}

/* ---- The end of an action ------------------------------------------------- */

typedef struct closer {
    struct closer *next;
    void (*fn)(void *);
    void *arg;
} closer;

static closer *closers;

void orizuru__at_action_end(void (*fn)(void *), void *arg) {
    closer *entry = orizuru__alloc(sizeof *entry);
    entry->fn = fn;
    entry->arg = arg;
    entry->next = closers;
    closers = entry;
}

void orizuru__action_end(void) {
    while (closers) {
        closer *entry = closers;
        closers = entry->next;
        entry->fn(entry->arg);
    }
}

/* ---- Errors -------------------------------------------------------------- */

orizuru_error *orizuru__error(int kind, const char *message) {
    orizuru_error *error = orizuru__calloc(1, sizeof *error);
    error->kind = kind;
    error->message = message;
    return error;
}

#define ERROR_CONSTRUCTOR(fn, kind)                          \
    orizuru_error *fn(const char *format, ...) {             \
        va_list args;                                        \
        va_start(args, format);                              \
        char *message = orizuru__vformat(format, args);      \
        va_end(args);                                        \
        return orizuru__error(kind, message);                \
    }

ERROR_CONSTRUCTOR(orizuru_invalid, ORIZURU__INVALID)
ERROR_CONSTRUCTOR(orizuru_not_found, ORIZURU__NOT_FOUND)
ERROR_CONSTRUCTOR(orizuru_conflict, ORIZURU__CONFLICT)
ERROR_CONSTRUCTOR(orizuru_not_ready, ORIZURU__NOT_READY)
ERROR_CONSTRUCTOR(orizuru_failed, ORIZURU__FAILED)

orizuru_error *orizuru_unsupported(void) {
    return orizuru__error(ORIZURU__UNSUPPORTED, NULL);
}

orizuru_error *orizuru_missing_params(const char *name, ...) {
    size_t count = 0;
    va_list args;
    va_start(args, name);
    for (const char *each = name; each; each = va_arg(args, const char *)) {
        count++;
    }
    va_end(args);
    const char **names = orizuru__calloc(count ? count : 1, sizeof *names);
    va_start(args, name);
    size_t at = 0;
    for (const char *each = name; each; each = va_arg(args, const char *)) {
        names[at++] = orizuru_strdup(each);
    }
    va_end(args);
    orizuru_error *error = orizuru__error(ORIZURU__MISSING_PARAMS, NULL);
    error->names.items = names;
    error->names.len = count;
    return error;
}

const char *orizuru_error_message(const orizuru_error *error) {
    if (!error) {
        return NULL;
    }
    if (error->kind == ORIZURU__MISSING_PARAMS) {
        size_t len = 0;
        for (size_t i = 0; i < error->names.len; i++) {
            len += strlen(error->names.items[i]) + 2;
        }
        char *text = orizuru__alloc(len + 32);
        strcpy(text, "missing parameters: ");
        for (size_t i = 0; i < error->names.len; i++) {
            if (i) {
                strcat(text, ", ");
            }
            strcat(text, error->names.items[i]);
        }
        return text;
    }
    return error->message;
}
