/* Logging: wasi:logging/logging (`logging = true`). */
#include <string.h>

#include "internal.h"
#include "plugin_with_capabilities.h"

static void log_at(wasi_logging_logging_level_t level, const char *format, va_list args) {
    char *message = orizuru__vformat(format, args);
    plugin_with_capabilities_string_t context = {(uint8_t *)"", 0};
    plugin_with_capabilities_string_t text = {(uint8_t *)message, strlen(message)};
    wasi_logging_logging_log(level, &context, &text);
}

#define LOG_FUNCTION(fn, level)                  \
    void fn(const char *format, ...) {           \
        va_list args;                            \
        va_start(args, format);                  \
        log_at(level, format, args);             \
        va_end(args);                            \
    }

LOG_FUNCTION(orizuru_log_trace, WASI_LOGGING_LOGGING_LEVEL_TRACE)
LOG_FUNCTION(orizuru_log_debug, WASI_LOGGING_LOGGING_LEVEL_DEBUG)
LOG_FUNCTION(orizuru_log_info, WASI_LOGGING_LOGGING_LEVEL_INFO)
LOG_FUNCTION(orizuru_log_warn, WASI_LOGGING_LOGGING_LEVEL_WARN)
LOG_FUNCTION(orizuru_log_error, WASI_LOGGING_LOGGING_LEVEL_ERROR)
