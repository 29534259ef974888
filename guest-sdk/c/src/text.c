/* The call arena, errors and string helpers. */
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

/* ---- Text ------------------------------------------------------------------ */

/* Decodes one UTF-8 character of valid text; answers its length. */
static size_t decode_char(const unsigned char *text, uint32_t *out) {
    unsigned char b = text[0];
    if (b < 0x80) {
        *out = b;
        return 1;
    }
    if (b < 0xE0) {
        *out = ((uint32_t)(b & 0x1F) << 6) | (text[1] & 0x3F);
        return 2;
    }
    if (b < 0xF0) {
        *out = ((uint32_t)(b & 0x0F) << 12) | ((uint32_t)(text[1] & 0x3F) << 6) | (text[2] & 0x3F);
        return 3;
    }
    *out = ((uint32_t)(b & 0x07) << 18) | ((uint32_t)(text[1] & 0x3F) << 12) |
           ((uint32_t)(text[2] & 0x3F) << 6) | (text[3] & 0x3F);
    return 4;
}

/* Unicode's White_Space, as Rust's char::is_whitespace. */
static bool is_white_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

const char *orizuru_trim(const char *text) {
    const unsigned char *at = (const unsigned char *)text;
    size_t len = strlen(text);
    size_t start = 0;
    while (start < len) {
        uint32_t c;
        size_t n = decode_char(at + start, &c);
        if (start + n > len || !is_white_space(c)) {
            break;
        }
        start += n;
    }
    size_t end = start;
    size_t kept = start;
    while (end < len) {
        uint32_t c;
        size_t n = decode_char(at + end, &c);
        if (end + n > len) {
            n = len - end;
        }
        end += n;
        if (!is_white_space(c)) {
            kept = end;
        }
    }
    return orizuru__strndup(text + start, kept - start);
}

bool orizuru_parse_u64(const char *text, uint64_t *out) {
    const char *at = text;
    if (at[0] == '+') {
        at++;
    }
    if (!*at) {
        return false;
    }
    uint64_t value = 0;
    for (; *at; at++) {
        if (*at < '0' || *at > '9') {
            return false;
        }
        unsigned digit = (unsigned)(*at - '0');
        if (value > (UINT64_MAX - digit) / 10) {
            return false;
        }
        value = value * 10 + digit;
    }
    *out = value;
    return true;
}

/* The length of the valid UTF-8 sequence at `b`, 0 when invalid, and in
 * *bad how many bytes form the invalid prefix to replace (at least 1). */
static size_t utf8_sequence(const uint8_t *b, size_t left, size_t *bad) {
    uint8_t first = b[0];
    if (first < 0x80) {
        return 1;
    }
    size_t need;
    uint8_t low = 0x80, high = 0xBF;
    if (first >= 0xC2 && first <= 0xDF) {
        need = 1;
    } else if (first == 0xE0) {
        need = 2, low = 0xA0;
    } else if ((first >= 0xE1 && first <= 0xEC) || first == 0xEE || first == 0xEF) {
        need = 2;
    } else if (first == 0xED) {
        need = 2, high = 0x9F;
    } else if (first == 0xF0) {
        need = 3, low = 0x90;
    } else if (first >= 0xF1 && first <= 0xF3) {
        need = 3;
    } else if (first == 0xF4) {
        need = 3, high = 0x8F;
    } else {
        *bad = 1;
        return 0;
    }
    size_t i = 1;
    for (; i <= need; i++) {
        uint8_t lo = i == 1 ? low : 0x80, hi = i == 1 ? high : 0xBF;
        if (i >= left || b[i] < lo || b[i] > hi) {
            *bad = i;
            return 0;
        }
    }
    return need + 1;
}

const char *orizuru_utf8_lossy(const uint8_t *bytes, size_t len, size_t *text_len) {
    /* Each invalid byte grows to at most three. */
    char *text = orizuru__alloc(len * 3 + 1);
    size_t out = 0;
    for (size_t at = 0; at < len;) {
        size_t bad = 0;
        size_t n = utf8_sequence(bytes + at, len - at, &bad);
        if (n) {
            memcpy(text + out, bytes + at, n);
            out += n;
            at += n;
        } else {
            memcpy(text + out, "\xEF\xBF\xBD", 3);
            out += 3;
            at += bad;
        }
    }
    text[out] = '\0';
    if (text_len) {
        *text_len = out;
    }
    return text;
}
