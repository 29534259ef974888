/* Key-value: wasi:keyvalue/store and atomics (`keyvalue = true`). */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "plugin_with_capabilities.h"

struct orizuru_bucket {
    wasi_keyvalue_store_own_bucket_t handle;
    const char *name;
    bool open;
};

static plugin_with_capabilities_string_t borrowed(const char *text) {
    return (plugin_with_capabilities_string_t){(uint8_t *)text, strlen(text)};
}

static orizuru_error *refused(const char *bucket, wasi_keyvalue_store_error_t *error) {
    const char *why;
    switch (error->tag) {
    case WASI_KEYVALUE_STORE_ERROR_NO_SUCH_STORE:
        why = "it does not exist";
        break;
    case WASI_KEYVALUE_STORE_ERROR_ACCESS_DENIED:
        why = "this service is not granted the key-value store (keyvalue = true)";
        break;
    default:
        why = orizuru__strndup((const char *)error->val.other.ptr, error->val.other.len);
        break;
    }
    wasi_keyvalue_store_error_free(error);
    return orizuru_failed("the key-value bucket \"%s\" refused: %s", bucket, why);
}

static void close_bucket(void *arg) {
    orizuru_bucket *bucket = arg;
    if (bucket->open) {
        wasi_keyvalue_store_bucket_drop_own(bucket->handle);
        bucket->open = false;
    }
}

static wasi_keyvalue_store_borrow_bucket_t borrow(orizuru_bucket *bucket) {
    return wasi_keyvalue_store_borrow_bucket(bucket->handle);
}

orizuru_error *orizuru_kv_open(const char *name, orizuru_bucket **bucket) {
    plugin_with_capabilities_string_t identifier = borrowed(name);
    wasi_keyvalue_store_own_bucket_t handle;
    wasi_keyvalue_store_error_t error;
    *bucket = NULL;
    if (!wasi_keyvalue_store_open(&identifier, &handle, &error)) {
        return refused(name, &error);
    }
    orizuru_bucket *opened = orizuru__calloc(1, sizeof *opened);
    opened->handle = handle;
    opened->name = orizuru_strdup(name);
    opened->open = true;
    orizuru__at_action_end(close_bucket, opened);
    *bucket = opened;
    return NULL;
}

orizuru_error *orizuru_kv_get(orizuru_bucket *bucket, const char *key, const uint8_t **value,
                              size_t *len) {
    plugin_with_capabilities_string_t name = borrowed(key);
    plugin_with_capabilities_option_list_u8_t found;
    wasi_keyvalue_store_error_t error;
    *value = NULL;
    *len = 0;
    if (!wasi_keyvalue_store_method_bucket_get(borrow(bucket), &name, &found, &error)) {
        return refused(bucket->name, &error);
    }
    if (found.is_some) {
        uint8_t *copy = orizuru__alloc(found.val.len + 1);
        if (found.val.len) {
            memcpy(copy, found.val.ptr, found.val.len);
        }
        copy[found.val.len] = '\0';
        *value = copy;
        *len = found.val.len;
    }
    plugin_with_capabilities_option_list_u8_free(&found);
    return NULL;
}

orizuru_error *orizuru_kv_set(orizuru_bucket *bucket, const char *key, const void *value,
                              size_t len) {
    plugin_with_capabilities_string_t name = borrowed(key);
    plugin_with_capabilities_list_u8_t bytes = {(uint8_t *)value, len};
    wasi_keyvalue_store_error_t error;
    if (!wasi_keyvalue_store_method_bucket_set(borrow(bucket), &name, &bytes, &error)) {
        return refused(bucket->name, &error);
    }
    return NULL;
}

orizuru_error *orizuru_kv_set_text(orizuru_bucket *bucket, const char *key, const char *value) {
    return orizuru_kv_set(bucket, key, value, strlen(value));
}

orizuru_error *orizuru_kv_delete(orizuru_bucket *bucket, const char *key) {
    plugin_with_capabilities_string_t name = borrowed(key);
    wasi_keyvalue_store_error_t error;
    if (!wasi_keyvalue_store_method_bucket_delete(borrow(bucket), &name, &error)) {
        return refused(bucket->name, &error);
    }
    return NULL;
}

orizuru_error *orizuru_kv_exists(orizuru_bucket *bucket, const char *key, bool *exists) {
    plugin_with_capabilities_string_t name = borrowed(key);
    wasi_keyvalue_store_error_t error;
    *exists = false;
    if (!wasi_keyvalue_store_method_bucket_exists(borrow(bucket), &name, exists, &error)) {
        return refused(bucket->name, &error);
    }
    return NULL;
}

orizuru_error *orizuru_kv_keys(orizuru_bucket *bucket, orizuru_strings *keys) {
    const char **items = NULL;
    size_t len = 0, size = 0;
    uint64_t cursor = 0;
    bool has_cursor = false;
    *keys = (orizuru_strings){0};
    for (;;) {
        wasi_keyvalue_store_key_response_t page;
        wasi_keyvalue_store_error_t error;
        if (!wasi_keyvalue_store_method_bucket_list_keys(borrow(bucket),
                                                         has_cursor ? &cursor : NULL, &page,
                                                         &error)) {
            return refused(bucket->name, &error);
        }
        for (size_t i = 0; i < page.keys.len; i++) {
            if (len + 1 >= size) {
                size_t grown = size ? size * 2 : 16;
                const char **bigger = orizuru__calloc(grown, sizeof *bigger);
                if (len) {
                    memcpy(bigger, items, len * sizeof *items);
                }
                items = bigger;
                size = grown;
            }
            items[len++] = orizuru__strndup((const char *)page.keys.ptr[i].ptr, page.keys.ptr[i].len);
        }
        has_cursor = page.cursor.is_some;
        cursor = page.cursor.val;
        wasi_keyvalue_store_key_response_free(&page);
        if (!has_cursor) {
            break;
        }
    }
    if (!items) {
        items = orizuru__calloc(1, sizeof *items);
    }
    *keys = (orizuru_strings){items, len};
    return NULL;
}

orizuru_error *orizuru_kv_increment(orizuru_bucket *bucket, const char *key, uint64_t delta,
                                    uint64_t *value) {
    plugin_with_capabilities_string_t name = borrowed(key);
    wasi_keyvalue_atomics_error_t error;
    *value = 0;
    if (!wasi_keyvalue_atomics_increment(borrow(bucket), &name, delta, value, &error)) {
        return refused(bucket->name, &error);
    }
    return NULL;
}
