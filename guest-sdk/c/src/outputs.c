/* What the actions write their answers into, and the request helpers. */
#include <string.h>

#include "internal.h"

/* Appends to a growing list of pairs in the call arena. */
static orizuru_pair *push(orizuru_pair **items, size_t *len, size_t *size) {
    if (*len == *size) {
        size_t grown = *size ? *size * 2 : 8;
        orizuru_pair *bigger = orizuru__calloc(grown, sizeof *bigger);
        if (*len) {
            memcpy(bigger, *items, *len * sizeof *bigger);
        }
        *items = bigger;
        *size = grown;
    }
    return &(*items)[(*len)++];
}

void orizuru_plan_add(orizuru_plans *plans, const char *name, const char *description) {
    orizuru_pair *plan = push(&plans->items, &plans->len, &plans->size);
    plan->name = orizuru_strdup(name);
    plan->value = orizuru_strdup(description ? description : "");
}

void orizuru_provisioned_ready(orizuru_provisioned *out) {
    out->pending = false;
}

void orizuru_provisioned_pending(orizuru_provisioned *out) {
    out->pending = true;
}

void orizuru_provisioned_data(orizuru_provisioned *out, const char *data) {
    out->data = orizuru_strdup(data);
}

void orizuru_info_add(orizuru_info *info, const char *label, const char *value) {
    orizuru_pair *item = push(&info->items, &info->len, &info->size);
    item->name = orizuru_strdup(label);
    item->value = orizuru_strdup(value ? value : "");
}

void orizuru_info_addf(orizuru_info *info, const char *label, const char *format, ...) {
    va_list args;
    va_start(args, format);
    char *value = orizuru__vformat(format, args);
    va_end(args);
    orizuru_info_add(info, label, value);
}

void orizuru_status_up(orizuru_status *out) {
    out->kind = ORIZURU__UP;
    out->text = NULL;
}

#define STATUS_SETTER(fn, which)                   \
    void fn(orizuru_status *out, const char *format, ...) { \
        va_list args;                               \
        va_start(args, format);                     \
        out->text = orizuru__vformat(format, args); \
        va_end(args);                               \
        out->kind = which;                          \
    }

STATUS_SETTER(orizuru_status_pending, ORIZURU__PENDING)
STATUS_SETTER(orizuru_status_down, ORIZURU__DOWN)
STATUS_SETTER(orizuru_status_custom, ORIZURU__CUSTOM)

/* The index of `name` in the sorted env, or where it would go. */
static size_t env_find(const orizuru_env *env, const char *name, bool *found) {
    size_t low = 0, high = env->len;
    while (low < high) {
        size_t middle = low + (high - low) / 2;
        int order = strcmp(env->items[middle].name, name);
        if (order == 0) {
            *found = true;
            return middle;
        }
        if (order < 0) {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    *found = false;
    return low;
}

void orizuru_env_set(orizuru_env *env, const char *name, const char *value) {
    bool found;
    size_t at = env_find(env, name, &found);
    if (found) {
        env->items[at].value = orizuru_strdup(value ? value : "");
        return;
    }
    push(&env->items, &env->len, &env->size);
    memmove(&env->items[at + 1], &env->items[at], (env->len - 1 - at) * sizeof env->items[0]);
    env->items[at].name = orizuru_strdup(name);
    env->items[at].value = orizuru_strdup(value ? value : "");
}

void orizuru_env_setf(orizuru_env *env, const char *name, const char *format, ...) {
    va_list args;
    va_start(args, format);
    char *value = orizuru__vformat(format, args);
    va_end(args);
    orizuru_env_set(env, name, value);
}

const char *orizuru_env_get(const orizuru_env *env, const char *name) {
    bool found;
    size_t at = env_find(env, name, &found);
    return found ? env->items[at].value : NULL;
}

void orizuru_proxy_respond(orizuru_proxy_response *response, uint16_t status, const void *body,
                           size_t body_len) {
    response->status = status;
    uint8_t *copy = orizuru__alloc(body_len ? body_len : 1);
    if (body_len) {
        memcpy(copy, body, body_len);
    }
    response->body = copy;
    response->body_len = body_len;
}

void orizuru_proxy_respond_text(orizuru_proxy_response *response, uint16_t status,
                                const char *body) {
    orizuru_proxy_respond(response, status, body, body ? strlen(body) : 0);
}

void orizuru_proxy_header_add(orizuru_proxy_response *response, const char *name,
                              const char *value) {
    orizuru_pair *header = push(&response->headers, &response->len, &response->size);
    header->name = orizuru_strdup(name);
    header->value = orizuru_strdup(value ? value : "");
}

static bool same_ignoring_case(const char *a, const char *b) {
    for (; *a && *b; a++, b++) {
        char x = *a >= 'A' && *a <= 'Z' ? (char)(*a + 32) : *a;
        char y = *b >= 'A' && *b <= 'Z' ? (char)(*b + 32) : *b;
        if (x != y) {
            return false;
        }
    }
    return *a == *b;
}

const char *orizuru_proxy_header(const orizuru_proxy_request *request, const char *name) {
    for (size_t i = 0; i < request->headers.len; i++) {
        if (same_ignoring_case(request->headers.items[i].name, name)) {
            return request->headers.items[i].value;
        }
    }
    return NULL;
}

orizuru_strings orizuru_proxy_query_values(const orizuru_proxy_request *request,
                                           const char *name) {
    const char **values = orizuru__calloc(request->query.len + 1, sizeof *values);
    size_t len = 0;
    for (size_t i = 0; i < request->query.len; i++) {
        if (strcmp(request->query.items[i].name, name) == 0) {
            values[len++] = request->query.items[i].value;
        }
    }
    return (orizuru_strings){values, len};
}
