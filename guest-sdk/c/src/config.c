/* Config and secrets: wasi:config/store ([services.config], [services.secrets]). */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "plugin_with_capabilities.h"

static plugin_with_capabilities_string_t borrowed(const char *text) {
    return (plugin_with_capabilities_string_t){(uint8_t *)text, strlen(text)};
}

static const char *copied(const plugin_with_capabilities_string_t *text) {
    return orizuru__strndup((const char *)text->ptr, text->len);
}

static orizuru_error *unreadable(wasi_config_store_error_t *error) {
    const plugin_with_capabilities_string_t *why =
        error->tag == WASI_CONFIG_STORE_ERROR_UPSTREAM ? &error->val.upstream : &error->val.io;
    orizuru_error *failed = orizuru_failed("the service's config could not be read: %s", copied(why));
    wasi_config_store_error_free(error);
    return failed;
}

orizuru_error *orizuru_config_get(const char *key, const char **value) {
    plugin_with_capabilities_string_t name = borrowed(key);
    plugin_with_capabilities_option_string_t found;
    wasi_config_store_error_t error;
    *value = NULL;
    if (!wasi_config_store_get(&name, &found, &error)) {
        return unreadable(&error);
    }
    if (found.is_some) {
        *value = copied(&found.val);
    }
    plugin_with_capabilities_option_string_free(&found);
    return NULL;
}

orizuru_error *orizuru_config_require(const char *key, const char **value) {
    orizuru_error *error = orizuru_config_get(key, value);
    if (error) {
        return error;
    }
    if (!*value) {
        return orizuru_failed("the service's config has no \"%s\"; its operator must set it under "
                              "[services.config] or [services.secrets]",
                              key);
    }
    return NULL;
}

orizuru_error *orizuru_config_all(orizuru_pairs *all) {
    plugin_with_capabilities_list_tuple2_string_string_t list;
    wasi_config_store_error_t error;
    *all = (orizuru_pairs){0};
    if (!wasi_config_store_get_all(&list, &error)) {
        return unreadable(&error);
    }
    orizuru_pair *items = orizuru__calloc(list.len + 1, sizeof *items);
    for (size_t i = 0; i < list.len; i++) {
        items[i].name = copied(&list.ptr[i].f0);
        items[i].value = copied(&list.ptr[i].f1);
    }
    plugin_with_capabilities_list_tuple2_string_string_free(&list);
    /* Sorted by key (an insertion sort: stable, so of a key given twice
     * the last value stays, as in the Rust SDK's map). */
    size_t len = list.len;
    for (size_t i = 1; i < len; i++) {
        orizuru_pair moving = items[i];
        size_t j = i;
        while (j > 0 && strcmp(items[j - 1].name, moving.name) > 0) {
            items[j] = items[j - 1];
            j--;
        }
        items[j] = moving;
    }
    size_t kept = 0;
    for (size_t i = 0; i < len; i++) {
        if (kept > 0 && strcmp(items[kept - 1].name, items[i].name) == 0) {
            items[kept - 1] = items[i];
        } else {
            items[kept++] = items[i];
        }
    }
    *all = (orizuru_pairs){items, kept};
    return NULL;
}
