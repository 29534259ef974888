/* Parameters and instance data, read with cJSON into the author's field
 * tables.
 *
 * tsuru's CLI sends every parameter as text, so a typed field takes the text
 * of its type as well as the typed JSON value, and every refusal is one of
 * the sentences of guest-sdk/CONTRACT.md. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

/* Whose values are being read, for the sentences. */
typedef struct reading {
    const char *of; /* `instance "orders"`; NULL for the instance's data */
} reading;

orizuru_field orizuru_field_required(orizuru_field field) {
    field.required = true;
    return field;
}

/* `name` inside the group at `path`, as the user types it: `db.size`. */
static const char *dotted(const char *path, const char *name) {
    return *path ? orizuru_format("%s.%s", path, name) : name;
}

/* Who a value belongs to: `parameter "KEY" of OF`, or `"KEY"` in data. */
static const char *subject(const reading *r, const char *key) {
    return r->of ? orizuru_format("parameter \"%s\" of %s", key, r->of)
                 : orizuru_format("\"%s\"", key);
}

static const char *group_word(const reading *r) {
    return r->of ? "a group of parameters" : "an object";
}

/* A value as the user gave it: text quoted and escaped, other values as
 * their JSON, groups and lists by what they are. */
static const char *shown(const reading *r, const cJSON *value) {
    if (cJSON_IsObject(value)) {
        return group_word(r);
    }
    if (cJSON_IsArray(value)) {
        return "a list";
    }
    return cJSON_PrintUnformatted(value);
}

static const char *must_be(const reading *r, const char *key, const char *expected,
                           const cJSON *value) {
    return orizuru_format("%s must be %s, not %s", subject(r, key), expected, shown(r, value));
}

static const char *expected(const reading *r, orizuru_field_type type) {
    switch (type) {
    case ORIZURU_FIELD_STRING: return "text";
    case ORIZURU_FIELD_U64:
    case ORIZURU_FIELD_I64: return "a whole number";
    case ORIZURU_FIELD_F64: return "a number";
    case ORIZURU_FIELD_BOOL: return "true or false";
    case ORIZURU_FIELD_GROUP: return group_word(r);
    case ORIZURU_FIELD_JSON: break;
    }
    return "given";
}

/* A copy of `text` without the white space around it. */
static const char *trimmed(const char *text) {
    while (isspace((unsigned char)*text)) {
        text++;
    }
    size_t len = strlen(text);
    while (len > 0 && isspace((unsigned char)text[len - 1])) {
        len--;
    }
    return orizuru__strndup(text, len);
}

static bool all_of(const char *text, const char *allowed) {
    return text[strspn(text, allowed)] == '\0';
}

typedef enum { WHOLE, NOT_WHOLE, TOO_LARGE } whole_kind;

/* A whole number, from a JSON number or from text of an optional sign and
 * digits, as a sign and a magnitude. */
static whole_kind whole_number(const cJSON *value, bool *negative, uint64_t *magnitude) {
    if (cJSON_IsNumber(value)) {
        double number = value->valuedouble;
        if (number != trunc(number)) {
            return NOT_WHOLE;
        }
        *negative = number < 0;
        if (fabs(number) >= 18446744073709551616.0) {
            return TOO_LARGE;
        }
        *magnitude = (uint64_t)fabs(number);
        return WHOLE;
    }
    if (!cJSON_IsString(value)) {
        return NOT_WHOLE;
    }
    const char *text = trimmed(value->valuestring);
    *negative = *text == '-';
    if (*text == '+' || *text == '-') {
        text++;
    }
    if (!*text || !all_of(text, "0123456789")) {
        return NOT_WHOLE;
    }
    errno = 0;
    *magnitude = strtoull(text, NULL, 10);
    return errno == ERANGE ? TOO_LARGE : WHOLE;
}

/* A number, from a JSON number or from text of a decimal number. */
static bool decimal_number(const cJSON *value, double *out) {
    if (cJSON_IsNumber(value)) {
        *out = value->valuedouble;
        return true;
    }
    if (!cJSON_IsString(value)) {
        return false;
    }
    const char *text = trimmed(value->valuestring);
    /* Digits, a sign, a point and an exponent only: strtod alone would also
     * take "nan", "inf" and hexadecimal. */
    if (!all_of(text, "0123456789+-.eE") || !strpbrk(text, "0123456789")) {
        return false;
    }
    char *end;
    *out = strtod(text, &end);
    return *end == '\0' && isfinite(*out);
}

static bool boolean(const cJSON *value, bool *out) {
    if (cJSON_IsBool(value)) {
        *out = cJSON_IsTrue(value);
        return true;
    }
    if (!cJSON_IsString(value)) {
        return false;
    }
    const char *text = trimmed(value->valuestring);
    if (strcasecmp(text, "true") == 0 || strcasecmp(text, "false") == 0) {
        *out = strcasecmp(text, "true") == 0;
        return true;
    }
    return false;
}

static void forget(orizuru_field *fields, size_t count) {
    for (size_t i = 0; i < count; i++) {
        fields[i].present = false;
        if (fields[i].type == ORIZURU_FIELD_GROUP) {
            forget(fields[i].target, fields[i].count);
        }
    }
}

static const char *read_group(const reading *r, orizuru_field *fields, size_t count,
                              const cJSON *object, const char *path);

/* One value into its field; NULL when it fits, else why not. */
static const char *read_value(const reading *r, orizuru_field *field, const cJSON *value,
                              const char *key) {
    if (cJSON_IsNull(value)) {
        if (!field->required) {
            return NULL; /* as if absent: the variable keeps its default */
        }
        if (field->type == ORIZURU_FIELD_JSON) {
            return orizuru_format("%s is missing", subject(r, key));
        }
        return must_be(r, key, expected(r, field->type), value);
    }
    switch (field->type) {
    case ORIZURU_FIELD_STRING:
        if (!cJSON_IsString(value)) {
            return must_be(r, key, "text", value);
        }
        *(const char **)field->target = value->valuestring;
        break;
    case ORIZURU_FIELD_U64: {
        bool negative;
        uint64_t magnitude;
        whole_kind kind = whole_number(value, &negative, &magnitude);
        if (kind == NOT_WHOLE) {
            return must_be(r, key, "a whole number", value);
        }
        if (kind == TOO_LARGE || (negative && magnitude > 0)) {
            return must_be(r, key, "a whole number from 0 to 18446744073709551615", value);
        }
        *(uint64_t *)field->target = magnitude;
        break;
    }
    case ORIZURU_FIELD_I64: {
        bool negative;
        uint64_t magnitude;
        whole_kind kind = whole_number(value, &negative, &magnitude);
        if (kind == NOT_WHOLE) {
            return must_be(r, key, "a whole number", value);
        }
        uint64_t limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
        if (kind == TOO_LARGE || magnitude > limit) {
            return must_be(r, key,
                           "a whole number from -9223372036854775808 to 9223372036854775807",
                           value);
        }
        *(int64_t *)field->target =
            negative && magnitude > 0 ? -(int64_t)(magnitude - 1) - 1 : (int64_t)magnitude;
        break;
    }
    case ORIZURU_FIELD_F64:
        if (!decimal_number(value, field->target)) {
            return must_be(r, key, "a number", value);
        }
        break;
    case ORIZURU_FIELD_BOOL:
        if (!boolean(value, field->target)) {
            return must_be(r, key, "true or false", value);
        }
        break;
    case ORIZURU_FIELD_GROUP: {
        if (!cJSON_IsObject(value)) {
            return must_be(r, key, group_word(r), value);
        }
        const char *why = read_group(r, field->target, field->count, value, key);
        if (why) {
            return why;
        }
        break;
    }
    case ORIZURU_FIELD_JSON:
        *(const cJSON **)field->target = value;
        break;
    }
    field->present = true;
    return NULL;
}

/* A key the group at `path` does not declare, naming those it does. */
static const char *unknown(const reading *r, const orizuru_field *fields, size_t count,
                           const char *path, const char *key) {
    if (count == 0) {
        return orizuru_format("%s has no parameter \"%s\"; it takes no parameters", r->of, key);
    }
    const char *names = dotted(path, fields[0].name);
    for (size_t i = 1; i < count; i++) {
        names = orizuru_format("%s, %s", names, dotted(path, fields[i].name));
    }
    return orizuru_format("%s has no parameter \"%s\"; the parameters are: %s", r->of, key, names);
}

static const char *read_group(const reading *r, orizuru_field *fields, size_t count,
                              const cJSON *object, const char *path) {
    const cJSON *item;
    cJSON_ArrayForEach(item, object) {
        const char *key = dotted(path, item->string);
        orizuru_field *field = NULL;
        for (size_t i = 0; i < count && !field; i++) {
            if (strcmp(fields[i].name, item->string) == 0) {
                field = &fields[i];
            }
        }
        if (!field) {
            if (r->of) {
                return unknown(r, fields, count, path, key);
            }
            continue; /* data may hold what this version no longer reads */
        }
        const char *why = read_value(r, field, item, key);
        if (why) {
            return why;
        }
    }
    for (size_t i = 0; i < count; i++) {
        if (fields[i].required && !fields[i].present) {
            return orizuru_format("%s is missing", subject(r, dotted(path, fields[i].name)));
        }
    }
    return NULL;
}

static orizuru_error *parameters(const char *json, const char *of, orizuru_field *fields,
                                 size_t count) {
    forget(fields, count);
    const cJSON *object = cJSON_Parse(json);
    if (!cJSON_IsObject(object)) {
        return orizuru_failed("the host handed the parameters of %s as text that is not a JSON "
                              "object; report this to the host's operator",
                              of);
    }
    reading r = {.of = of};
    const char *why = read_group(&r, fields, count, object, "");
    return why ? orizuru_invalid("%s", why) : NULL;
}

orizuru_error *orizuru_instance_parameters(const orizuru_instance *instance, orizuru_field *fields,
                                           size_t count) {
    return parameters(instance->parameters, orizuru_format("instance \"%s\"", instance->name),
                      fields, count);
}

orizuru_error *orizuru_app_parameters(const orizuru_app_binding *app, orizuru_field *fields,
                                      size_t count) {
    return parameters(app->parameters,
                      orizuru_format("the binding of app \"%s\"", app->app_name), fields, count);
}

orizuru_error *orizuru_instance_data(const orizuru_instance *instance, orizuru_field *fields,
                                     size_t count, bool *present) {
    forget(fields, count);
    *present = instance->data != NULL;
    if (!instance->data) {
        return NULL;
    }
    const char *end = NULL;
    const cJSON *object = cJSON_ParseWithOpts(instance->data, &end, true);
    const char *why;
    if (!object) {
        why = orizuru_format("it is not JSON (it goes wrong at byte %td)", end - instance->data);
    } else if (!cJSON_IsObject(object)) {
        why = "it is not a JSON object";
    } else {
        reading r = {.of = NULL};
        why = read_group(&r, fields, count, object, "");
    }
    if (why) {
        return orizuru_failed("the data stored for instance \"%s\" could not be read: %s",
                              instance->name, why);
    }
    return NULL;
}
