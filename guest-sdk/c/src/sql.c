/* SQL: orizuru:service/sql ([services.sql.NAME]). */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "plugin_with_capabilities.h"

typedef plugin_with_capabilities_string_t wit_string;

static wit_string borrowed(const char *text) {
    return (wit_string){(uint8_t *)text, strlen(text)};
}

static const char *copied(const wit_string *text) {
    return orizuru__strndup((const char *)text->ptr, text->len);
}

static plugin_with_capabilities_list_option_string_t params_of(const char *const *params,
                                                               size_t len) {
    plugin_with_capabilities_option_string_t *items =
        orizuru__calloc(len ? len : 1, sizeof *items);
    for (size_t i = 0; i < len; i++) {
        items[i].is_some = params[i] != NULL;
        if (params[i]) {
            items[i].val = borrowed(params[i]);
        }
    }
    return (plugin_with_capabilities_list_option_string_t){items, len};
}

/* The sentence of a statement that gave no answer, as the Rust SDK says it. */
static orizuru_error *sql_failed(const char *connection, orizuru_service_sql_sql_error_t *error) {
    orizuru_error *failed;
    switch (error->tag) {
    case ORIZURU_SERVICE_SQL_SQL_ERROR_QUERY_FAILED: {
        const orizuru_service_sql_db_error_t *db = &error->val.query_failed;
        const char *sentence =
            orizuru_format("PostgreSQL refused a statement on SQL connection \"%s\": %s (SQLSTATE %s)",
                           connection, copied(&db->message), copied(&db->code));
        if (db->detail.is_some) {
            sentence = orizuru_format("%s; %s", sentence, copied(&db->detail.val));
        }
        if (db->hint.is_some) {
            sentence = orizuru_format("%s; hint: %s", sentence, copied(&db->hint.val));
        }
        failed = orizuru__error(ORIZURU__FAILED, sentence);
        failed->sql_code = copied(&db->code);
        break;
    }
    case ORIZURU_SERVICE_SQL_SQL_ERROR_NO_SUCH_CONNECTION:
        failed = orizuru__error(ORIZURU__FAILED, copied(&error->val.no_such_connection));
        break;
    case ORIZURU_SERVICE_SQL_SQL_ERROR_CONNECTION_FAILED:
        failed = orizuru__error(ORIZURU__FAILED, copied(&error->val.connection_failed));
        break;
    case ORIZURU_SERVICE_SQL_SQL_ERROR_UNSUPPORTED_TYPE:
        failed = orizuru__error(ORIZURU__FAILED, copied(&error->val.unsupported_type));
        break;
    default:
        failed = orizuru__error(ORIZURU__FAILED, copied(&error->val.timeout));
        break;
    }
    orizuru_service_sql_sql_error_free(error);
    return failed;
}

orizuru_error *orizuru_sql_query(const char *connection, const char *statement,
                                 const char *const *params, size_t params_len,
                                 orizuru_rows *rows) {
    wit_string name = borrowed(connection), text = borrowed(statement);
    plugin_with_capabilities_list_option_string_t bound = params_of(params, params_len);
    orizuru_service_sql_row_set_t set;
    orizuru_service_sql_sql_error_t error;
    *rows = (orizuru_rows){0};
    if (!orizuru_service_sql_query(&name, &text, &bound, &set, &error)) {
        return sql_failed(connection, &error);
    }
    const char **columns = orizuru__calloc(set.columns.len + 1, sizeof *columns);
    for (size_t i = 0; i < set.columns.len; i++) {
        columns[i] = copied(&set.columns.ptr[i]);
    }
    const char *const **values = orizuru__calloc(set.rows.len + 1, sizeof *values);
    for (size_t r = 0; r < set.rows.len; r++) {
        const plugin_with_capabilities_list_option_string_t *row = &set.rows.ptr[r];
        const char **cells = orizuru__calloc(row->len + 1, sizeof *cells);
        for (size_t c = 0; c < row->len; c++) {
            cells[c] = row->ptr[c].is_some ? copied(&row->ptr[c].val) : NULL;
        }
        values[r] = cells;
    }
    rows->columns = (orizuru_strings){columns, set.columns.len};
    rows->len = set.rows.len;
    rows->rows = values;
    orizuru_service_sql_row_set_free(&set);
    return NULL;
}

orizuru_error *orizuru_sql_execute(const char *connection, const char *statement,
                                   const char *const *params, size_t params_len,
                                   uint64_t *changed) {
    wit_string name = borrowed(connection), text = borrowed(statement);
    plugin_with_capabilities_list_option_string_t bound = params_of(params, params_len);
    orizuru_service_sql_sql_error_t error;
    *changed = 0;
    if (!orizuru_service_sql_execute(&name, &text, &bound, changed, &error)) {
        return sql_failed(connection, &error);
    }
    return NULL;
}

const char *orizuru_sql_code(const orizuru_error *error) {
    return error ? error->sql_code : NULL;
}

orizuru_error *orizuru_rows_get(const orizuru_rows *rows, size_t row, const char *column,
                                const char **value) {
    *value = NULL;
    for (size_t c = 0; c < rows->columns.len; c++) {
        if (strcmp(rows->columns.items[c], column) == 0) {
            if (row >= rows->len) {
                return orizuru_failed("the query answered %zu rows, so it has no row %zu; "
                                      "check rows.len before reading",
                                      rows->len, row);
            }
            *value = rows->rows[row][c];
            return NULL;
        }
    }
    const char *have = "";
    for (size_t c = 0; c < rows->columns.len; c++) {
        have = orizuru_format("%s%s%s", have, c ? ", " : "", rows->columns.items[c]);
    }
    return orizuru_failed(
        "the query's rows have no column \"%s\" (they have %s); select it, or read another",
        column, have);
}

static const char *quoted(void (*quote)(wit_string *, wit_string *), const char *text) {
    wit_string in = borrowed(text), out;
    quote(&in, &out);
    const char *result = copied(&out);
    plugin_with_capabilities_string_free(&out);
    return result;
}

const char *orizuru_sql_quote_identifier(const char *name) {
    return quoted(orizuru_service_sql_quote_identifier, name);
}

const char *orizuru_sql_quote_literal(const char *value) {
    return quoted(orizuru_service_sql_quote_literal, value);
}
