/* JSON: reading objects into field tables with serde_json's sentences, and
 * writing JSON text with serde_json's escaping.
 *
 * Tokenising is jsmn's (Debian's libjsmn-dev, MIT): it answers each value's
 * byte offsets, which give the positions serde_json names in its errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSMN_STATIC
#define JSMN_STRICT
#include "jsmn.h"

#include "internal.h"

/* ---- Numbers as serde_json and zmij write them ------------------------------- */

/* A finite f64 as serde_json writes it and names it in errors (zmij's
 * shortest round-trip digits; fixed notation for exponents -5 to 15). */
static void format_f64(double value, char *out) {
    if (value == 0) {
        strcpy(out, signbit(value) ? "-0.0" : "0.0");
        return;
    }
    char scientific[40];
    for (int precision = 0; precision <= 17; precision++) {
        snprintf(scientific, sizeof scientific, "%.*e", precision, value);
        if (strtod(scientific, NULL) == value) {
            break;
        }
    }
    /* [-]d[.ddd]e[+-]x */
    const char *at = scientific;
    char *o = out;
    if (*at == '-') {
        *o++ = '-';
        at++;
    }
    char digits[24];
    size_t n = 0;
    while (*at && *at != 'e') {
        if (*at != '.') {
            digits[n++] = *at;
        }
        at++;
    }
    while (n > 1 && digits[n - 1] == '0') {
        n--;
    }
    int exponent = atoi(at + 1);
    if (exponent >= -5 && exponent <= 15) {
        if ((int)n - 1 <= exponent) {
            memcpy(o, digits, n);
            o += n;
            for (int zeros = exponent - ((int)n - 1); zeros > 0; zeros--) {
                *o++ = '0';
            }
            memcpy(o, ".0", 3);
        } else if (exponent >= 0) {
            memcpy(o, digits, (size_t)exponent + 1);
            o += exponent + 1;
            *o++ = '.';
            memcpy(o, digits + exponent + 1, n - (size_t)exponent - 1);
            o += n - (size_t)exponent - 1;
            *o = '\0';
        } else {
            *o++ = '0';
            *o++ = '.';
            for (int zeros = -exponent - 1; zeros > 0; zeros--) {
                *o++ = '0';
            }
            memcpy(o, digits, n);
            o[n] = '\0';
        }
        return;
    }
    *o++ = digits[0];
    if (n > 1) {
        *o++ = '.';
        memcpy(o, digits + 1, n - 1);
        o += n - 1;
    }
    sprintf(o, "e%c%d", exponent < 0 ? '-' : '+', exponent < 0 ? -exponent : exponent);
}

/* Powers of ten, as serde_json scales with them. */
static const double POW10[309] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9,
    1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
    1e20, 1e21, 1e22, 1e23, 1e24, 1e25, 1e26, 1e27, 1e28, 1e29,
    1e30, 1e31, 1e32, 1e33, 1e34, 1e35, 1e36, 1e37, 1e38, 1e39,
    1e40, 1e41, 1e42, 1e43, 1e44, 1e45, 1e46, 1e47, 1e48, 1e49,
    1e50, 1e51, 1e52, 1e53, 1e54, 1e55, 1e56, 1e57, 1e58, 1e59,
    1e60, 1e61, 1e62, 1e63, 1e64, 1e65, 1e66, 1e67, 1e68, 1e69,
    1e70, 1e71, 1e72, 1e73, 1e74, 1e75, 1e76, 1e77, 1e78, 1e79,
    1e80, 1e81, 1e82, 1e83, 1e84, 1e85, 1e86, 1e87, 1e88, 1e89,
    1e90, 1e91, 1e92, 1e93, 1e94, 1e95, 1e96, 1e97, 1e98, 1e99,
    1e100, 1e101, 1e102, 1e103, 1e104, 1e105, 1e106, 1e107, 1e108, 1e109,
    1e110, 1e111, 1e112, 1e113, 1e114, 1e115, 1e116, 1e117, 1e118, 1e119,
    1e120, 1e121, 1e122, 1e123, 1e124, 1e125, 1e126, 1e127, 1e128, 1e129,
    1e130, 1e131, 1e132, 1e133, 1e134, 1e135, 1e136, 1e137, 1e138, 1e139,
    1e140, 1e141, 1e142, 1e143, 1e144, 1e145, 1e146, 1e147, 1e148, 1e149,
    1e150, 1e151, 1e152, 1e153, 1e154, 1e155, 1e156, 1e157, 1e158, 1e159,
    1e160, 1e161, 1e162, 1e163, 1e164, 1e165, 1e166, 1e167, 1e168, 1e169,
    1e170, 1e171, 1e172, 1e173, 1e174, 1e175, 1e176, 1e177, 1e178, 1e179,
    1e180, 1e181, 1e182, 1e183, 1e184, 1e185, 1e186, 1e187, 1e188, 1e189,
    1e190, 1e191, 1e192, 1e193, 1e194, 1e195, 1e196, 1e197, 1e198, 1e199,
    1e200, 1e201, 1e202, 1e203, 1e204, 1e205, 1e206, 1e207, 1e208, 1e209,
    1e210, 1e211, 1e212, 1e213, 1e214, 1e215, 1e216, 1e217, 1e218, 1e219,
    1e220, 1e221, 1e222, 1e223, 1e224, 1e225, 1e226, 1e227, 1e228, 1e229,
    1e230, 1e231, 1e232, 1e233, 1e234, 1e235, 1e236, 1e237, 1e238, 1e239,
    1e240, 1e241, 1e242, 1e243, 1e244, 1e245, 1e246, 1e247, 1e248, 1e249,
    1e250, 1e251, 1e252, 1e253, 1e254, 1e255, 1e256, 1e257, 1e258, 1e259,
    1e260, 1e261, 1e262, 1e263, 1e264, 1e265, 1e266, 1e267, 1e268, 1e269,
    1e270, 1e271, 1e272, 1e273, 1e274, 1e275, 1e276, 1e277, 1e278, 1e279,
    1e280, 1e281, 1e282, 1e283, 1e284, 1e285, 1e286, 1e287, 1e288, 1e289,
    1e290, 1e291, 1e292, 1e293, 1e294, 1e295, 1e296, 1e297, 1e298, 1e299,
    1e300, 1e301, 1e302, 1e303, 1e304, 1e305, 1e306, 1e307, 1e308,
};

/* serde_json's f64 from a significand and a decimal exponent (without its
 * float_roundtrip feature, as the Rust SDK builds it). */
static double from_parts(bool positive, uint64_t significand, int32_t exponent, bool *range) {
    double f = (double)significand;
    for (;;) {
        uint32_t magnitude = exponent < 0 ? (uint32_t)0 - (uint32_t)exponent : (uint32_t)exponent;
        if (magnitude < 309) {
            if (exponent >= 0) {
                f *= POW10[magnitude];
                if (isinf(f)) {
                    *range = false;
                }
            } else {
                f /= POW10[magnitude];
            }
            break;
        }
        if (f == 0.0) {
            break;
        }
        if (exponent >= 0) {
            *range = false;
            break;
        }
        f /= 1e308;
        exponent += 308;
    }
    return positive ? f : -f;
}

#define OVERFLOWS(a, b, max) ((a) >= (max) / 10 && ((a) > (max) / 10 || (b) > (max) % 10))

/* Reads a JSON number's text exactly as serde_json does: a whole number that
 * fits a u64 (or, negative, an i64) stays one; anything else becomes an f64
 * by serde_json's own arithmetic. False when it is out of range. */
static bool read_number(orizuru_json_value *value) {
    const char *at = value->text, *end = value->text + value->text_len;
    bool positive = *at != '-';
    bool range = true;
    if (!positive) {
        at++;
    }
    uint64_t significand = 0;
    int32_t exponent = 0;
    bool overflowed = false;
    while (at < end && *at >= '0' && *at <= '9') {
        unsigned digit = (unsigned)(*at - '0');
        if (overflowed) {
            exponent++; /* digits past a u64 only scale it */
        } else if (OVERFLOWS(significand, digit, UINT64_MAX)) {
            overflowed = true;
            exponent++;
        } else {
            significand = significand * 10 + digit;
        }
        at++;
    }
    if (at == end && !overflowed) {
        if (positive) {
            value->is_u64 = true;
            value->u64 = significand;
            value->f64 = (double)significand;
        } else {
            int64_t negative = (int64_t)(0 - significand);
            if (negative >= 0) {
                value->f64 = -(double)significand; /* -0 and below i64::MIN */
            } else {
                value->is_i64 = true;
                value->i64 = negative;
                value->f64 = (double)negative;
            }
        }
        return true;
    }
    if (at < end && *at == '.') {
        at++;
        bool skipping = false;
        while (at < end && *at >= '0' && *at <= '9') {
            unsigned digit = (unsigned)(*at - '0');
            if (!skipping && OVERFLOWS(significand, digit, UINT64_MAX)) {
                skipping = true; /* later digits are ignored */
            }
            if (!skipping) {
                significand = significand * 10 + digit;
                exponent--;
            }
            at++;
        }
    }
    if (at < end && (*at == 'e' || *at == 'E')) {
        at++;
        bool positive_exp = true;
        if (*at == '+' || *at == '-') {
            positive_exp = *at == '+';
            at++;
        }
        int32_t exp = 0;
        while (at < end && *at >= '0' && *at <= '9') {
            int32_t digit = *at - '0';
            if (OVERFLOWS(exp, digit, INT32_MAX)) {
                if (significand != 0 && positive_exp) {
                    return false;
                }
                value->f64 = positive ? 0.0 : -0.0;
                return true;
            }
            exp = exp * 10 + digit;
            at++;
        }
        int64_t final_exp = positive_exp ? (int64_t)exponent + exp : (int64_t)exponent - exp;
        exponent = final_exp > INT32_MAX   ? INT32_MAX
                   : final_exp < INT32_MIN ? INT32_MIN
                                           : (int32_t)final_exp;
    }
    value->f64 = from_parts(positive, significand, exponent, &range);
    return range;
}

/* ---- Strings ------------------------------------------------------------------ */

static size_t put_utf8(char *out, uint32_t c) {
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (char)(0xC0 | (c >> 6));
        out[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (char)(0xE0 | (c >> 12));
        out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        out[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (c >> 18));
    out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    out[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static uint32_t read_hex4(const char *at) {
    uint32_t value = 0;
    for (int i = 0; i < 4; i++) {
        int digit = hex_digit(at[i]);
        value = (value << 4) | (uint32_t)(digit < 0 ? 0 : digit);
    }
    return value;
}

/* The decoded text of a JSON string's inside (jsmn checked its escapes). */
static char *unescape(const char *text, size_t len, size_t *out_len) {
    char *out = orizuru__alloc(len + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] != '\\') {
            out[o++] = text[i];
            continue;
        }
        char c = text[++i];
        switch (c) {
        case 'b': out[o++] = '\b'; break;
        case 'f': out[o++] = '\f'; break;
        case 'n': out[o++] = '\n'; break;
        case 'r': out[o++] = '\r'; break;
        case 't': out[o++] = '\t'; break;
        case 'u': {
            uint32_t unit = read_hex4(text + i + 1);
            i += 4;
            if (unit >= 0xD800 && unit <= 0xDBFF && i + 6 < len && text[i + 1] == '\\' &&
                text[i + 2] == 'u') {
                uint32_t low = read_hex4(text + i + 3);
                if (low >= 0xDC00 && low <= 0xDFFF) {
                    unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                    i += 6;
                }
            }
            if (unit >= 0xD800 && unit <= 0xDFFF) {
                unit = 0xFFFD; /* a lone surrogate */
            }
            o += put_utf8(out + o, unit);
            break;
        }
        default: out[o++] = c; break; /* " \ / */
        }
    }
    out[o] = '\0';
    *out_len = o;
    return out;
}

const char *orizuru__debug_string(const char *text, size_t len) {
    char *out = orizuru__alloc(len * 6 + 3);
    size_t o = 0;
    out[o++] = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        switch (c) {
        case '"': memcpy(out + o, "\\\"", 2), o += 2; break;
        case '\\': memcpy(out + o, "\\\\", 2), o += 2; break;
        case '\n': memcpy(out + o, "\\n", 2), o += 2; break;
        case '\r': memcpy(out + o, "\\r", 2), o += 2; break;
        case '\t': memcpy(out + o, "\\t", 2), o += 2; break;
        case '\0': memcpy(out + o, "\\0", 2), o += 2; break;
        default:
            if (c < 0x20 || c == 0x7F) {
                o += (size_t)sprintf(out + o, "\\u{%x}", c);
            } else {
                out[o++] = (char)c;
            }
        }
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}

const char *orizuru_json_describe(const orizuru_json_value *value) {
    switch (value->kind) {
    case ORIZURU_JSON_NULL: return "null";
    case ORIZURU_JSON_BOOL: return value->boolean ? "boolean `true`" : "boolean `false`";
    case ORIZURU_JSON_NUMBER:
        if (value->is_u64) {
            return orizuru_format("integer `%llu`", (unsigned long long)value->u64);
        }
        if (value->is_i64) {
            return orizuru_format("integer `%lld`", (long long)value->i64);
        } else {
            char number[64];
            format_f64(value->f64, number);
            return orizuru_format("floating point `%s`", number);
        }
    case ORIZURU_JSON_STRING:
        return orizuru_format("string %s", orizuru__debug_string(value->string, value->string_len));
    case ORIZURU_JSON_ARRAY: return "sequence";
    case ORIZURU_JSON_OBJECT: return "map";
    }
    return "value";
}

/* ---- Reading ------------------------------------------------------------------ */

typedef struct document {
    const char *json;
    size_t len;
    jsmntok_t *tokens;
    int count;
} document;

/* The token after the value at `at` and everything inside it. */
static int skip(const document *doc, int at) {
    const jsmntok_t *token = &doc->tokens[at];
    int next = at + 1;
    if (token->type == JSMN_OBJECT) {
        for (int i = 0; i < token->size; i++) {
            next = skip(doc, next + 1);
        }
    } else if (token->type == JSMN_ARRAY) {
        for (int i = 0; i < token->size; i++) {
            next = skip(doc, next);
        }
    }
    return next;
}

/* Where a value starts (its opening quote for a string). */
static size_t value_start(const jsmntok_t *token) {
    return (size_t)token->start - (token->type == JSMN_STRING);
}

/* Where a value ends (after its closing quote for a string). */
static size_t value_end(const jsmntok_t *token) {
    return (size_t)token->end + (token->type == JSMN_STRING);
}

/* The value at `token`; *out_of_range when it is a number too large for an
 * f64, which serde_json refuses. */
static orizuru_json_value make_value(const document *doc, const jsmntok_t *token,
                                     bool *out_of_range) {
    orizuru_json_value value = {0};
    *out_of_range = false;
    size_t start = value_start(token), end = value_end(token);
    value.text = orizuru__strndup(doc->json + start, end - start);
    value.text_len = end - start;
    switch (token->type) {
    case JSMN_OBJECT: value.kind = ORIZURU_JSON_OBJECT; break;
    case JSMN_ARRAY: value.kind = ORIZURU_JSON_ARRAY; break;
    case JSMN_STRING:
        value.kind = ORIZURU_JSON_STRING;
        value.string = unescape(doc->json + token->start, (size_t)(token->end - token->start),
                                &value.string_len);
        break;
    default:
        switch (doc->json[token->start]) {
        case 'n': value.kind = ORIZURU_JSON_NULL; break;
        case 't': value.kind = ORIZURU_JSON_BOOL, value.boolean = true; break;
        case 'f': value.kind = ORIZURU_JSON_BOOL, value.boolean = false; break;
        default:
            value.kind = ORIZURU_JSON_NUMBER;
            *out_of_range = !read_number(&value);
            break;
        }
    }
    return value;
}

/* " at line L column C" for the byte offset `at`, as serde_json counts. */
static const char *at_position(const document *doc, size_t at) {
    size_t line = 1, line_start = 0;
    for (size_t i = 0; i < at && i < doc->len; i++) {
        if (doc->json[i] == '\n') {
            line++;
            line_start = i + 1;
        }
    }
    return orizuru_format(" at line %zu column %zu", line, at - line_start);
}

static const char *located(const document *doc, const char *message, size_t at) {
    return orizuru_format("%s%s", message, at_position(doc, at));
}

/* Where serde_json names a value that it read and refused: at the opening
 * bracket of an array or object, after anything else. */
static size_t refused_at(const jsmntok_t *token) {
    return token->type == JSMN_OBJECT || token->type == JSMN_ARRAY ? (size_t)token->start
                                                                    : value_end(token);
}

static const char *invalid_type(const document *doc, const jsmntok_t *token,
                                const orizuru_json_value *value, const char *expected) {
    return located(doc,
                   orizuru_format("invalid type: %s, expected %s", orizuru_json_describe(value),
                                  expected),
                   refused_at(token));
}

/* Reads one field's value; NULL when it fits. `object` is the enclosing
 * object's token, for where serde_json places a custom reader's refusal. */
static const char *read_field(const document *doc, orizuru_field *field, const jsmntok_t *token,
                              const jsmntok_t *object) {
    bool out_of_range;
    orizuru_json_value value = make_value(doc, token, &out_of_range);
    if (out_of_range) {
        return located(doc, "number out of range", value_end(token));
    }
    if (value.kind == ORIZURU_JSON_NULL && !field->required) {
        return NULL; /* an Option's None */
    }
    switch (field->type) {
    case ORIZURU_FIELD_STRING:
        if (value.kind != ORIZURU_JSON_STRING) {
            return invalid_type(doc, token, &value, "a string");
        }
        *(const char **)field->target = value.string;
        break;
    case ORIZURU_FIELD_U64:
        if (value.kind == ORIZURU_JSON_NUMBER && value.is_u64) {
            *(uint64_t *)field->target = value.u64;
        } else if (value.kind == ORIZURU_JSON_NUMBER && value.is_i64) {
            return located(doc,
                           orizuru_format("invalid value: %s, expected u64",
                                          orizuru_json_describe(&value)),
                           value_end(token));
        } else {
            return invalid_type(doc, token, &value, "u64");
        }
        break;
    case ORIZURU_FIELD_I64:
        if (value.kind == ORIZURU_JSON_NUMBER && value.is_i64) {
            *(int64_t *)field->target = value.i64;
        } else if (value.kind == ORIZURU_JSON_NUMBER && value.is_u64) {
            if (value.u64 > (uint64_t)INT64_MAX) {
                return located(doc,
                               orizuru_format("invalid value: %s, expected i64",
                                              orizuru_json_describe(&value)),
                               value_end(token));
            }
            *(int64_t *)field->target = (int64_t)value.u64;
        } else {
            return invalid_type(doc, token, &value, "i64");
        }
        break;
    case ORIZURU_FIELD_F64:
        if (value.kind != ORIZURU_JSON_NUMBER) {
            return invalid_type(doc, token, &value, "f64");
        }
        *(double *)field->target = value.is_u64   ? (double)value.u64
                                   : value.is_i64 ? (double)value.i64
                                                  : value.f64;
        break;
    case ORIZURU_FIELD_BOOL:
        if (value.kind != ORIZURU_JSON_BOOL) {
            return invalid_type(doc, token, &value, "a boolean");
        }
        *(bool *)field->target = value.boolean;
        break;
    case ORIZURU_FIELD_JSON:
        *(const char **)field->target = value.text;
        break;
    case ORIZURU_FIELD_CUSTOM: {
        const char *why = field->reader(&value, field->target);
        if (why) {
            /* serde_json places it where it stands when the object's reading
             * gives up: past the value, its white space and a closing brace. */
            size_t at = value_end(token);
            while (at < (size_t)object->end &&
                   (doc->json[at] == ' ' || doc->json[at] == '\n' || doc->json[at] == '\t' ||
                    doc->json[at] == '\r')) {
                at++;
            }
            if (at < doc->len && doc->json[at] == '}') {
                at++;
            }
            return located(doc, why, at);
        }
        break;
    }
    }
    if (value.kind != ORIZURU_JSON_NULL) {
        field->present = true;
    }
    return NULL;
}

/* serde's "expected one of `a`, `b`" list. */
static const char *one_of(const orizuru_field *fields, size_t count) {
    if (count == 0) {
        return NULL;
    }
    if (count == 1) {
        return orizuru_format("`%s`", fields[0].name);
    }
    if (count == 2) {
        return orizuru_format("`%s` or `%s`", fields[0].name, fields[1].name);
    }
    const char *list = orizuru_format("one of `%s`", fields[0].name);
    for (size_t i = 1; i < count; i++) {
        list = orizuru_format("%s, `%s`", list, fields[i].name);
    }
    return list;
}

orizuru_field orizuru_field_required(orizuru_field field) {
    field.required = true;
    return field;
}

const char *orizuru_json_decode(const char *json, orizuru_field *fields, size_t count, int flags) {
    for (size_t i = 0; i < count; i++) {
        fields[i].present = false;
    }
    document doc = {.json = json, .len = strlen(json)};
    jsmn_parser parser;
    jsmn_init(&parser);
    int needed = jsmn_parse(&parser, json, doc.len, NULL, 0);
    if (needed <= 0) {
        return needed == 0 ? "EOF while parsing a value at line 1 column 0"
                           : "the text is not valid JSON; expected a JSON object";
    }
    doc.tokens = orizuru__calloc((size_t)needed, sizeof(jsmntok_t));
    jsmn_init(&parser);
    doc.count = jsmn_parse(&parser, json, doc.len, doc.tokens, (unsigned)needed);
    const jsmntok_t *object = &doc.tokens[0];
    if (object->type != JSMN_OBJECT) {
        bool out_of_range;
        orizuru_json_value value = make_value(&doc, object, &out_of_range);
        return invalid_type(&doc, object, &value, "a JSON object");
    }
    if (skip(&doc, 0) != doc.count) {
        return located(&doc, "trailing characters", value_start(&doc.tokens[skip(&doc, 0)]) + 1);
    }
    bool *seen = orizuru__calloc(count ? count : 1, sizeof *seen);
    int at = 1;
    for (int entry = 0; entry < object->size; entry++) {
        const jsmntok_t *key = &doc.tokens[at];
        size_t key_len;
        char *name = unescape(json + key->start, (size_t)(key->end - key->start), &key_len);
        size_t after_key = value_end(key);
        size_t found = count;
        for (size_t i = 0; i < count; i++) {
            if (strlen(fields[i].name) == key_len && memcmp(fields[i].name, name, key_len) == 0) {
                found = i;
                break;
            }
        }
        if (found == count) {
            if (flags & ORIZURU_DENY_UNKNOWN_FIELDS) {
                const char *message =
                    count ? orizuru_format("unknown field `%s`, expected %s", name,
                                           one_of(fields, count))
                          : orizuru_format("unknown field `%s`, there are no fields", name);
                return located(&doc, message, after_key);
            }
            at = skip(&doc, at + 1);
            continue;
        }
        if (seen[found]) {
            return located(&doc, orizuru_format("duplicate field `%s`", fields[found].name),
                           after_key);
        }
        seen[found] = true;
        const char *why = read_field(&doc, &fields[found], &doc.tokens[at + 1], object);
        if (why) {
            return why;
        }
        at = skip(&doc, at + 1);
    }
    for (size_t i = 0; i < count; i++) {
        if (fields[i].required && !seen[i]) {
            return located(&doc, orizuru_format("missing field `%s`", fields[i].name),
                           (size_t)object->end);
        }
    }
    return NULL;
}

orizuru_error *orizuru_instance_parameters(const orizuru_instance *instance, orizuru_field *fields,
                                           size_t count, int flags) {
    const char *why = orizuru_json_decode(instance->parameters, fields, count, flags);
    if (why) {
        return orizuru_invalid("the parameters of instance \"%s\" are not valid: %s",
                               instance->name, why);
    }
    return NULL;
}

orizuru_error *orizuru_app_parameters(const orizuru_app_binding *app, orizuru_field *fields,
                                      size_t count, int flags) {
    const char *why = orizuru_json_decode(app->parameters, fields, count, flags);
    if (why) {
        return orizuru_invalid("the parameters of the binding of app \"%s\" are not valid: %s",
                               app->app_name, why);
    }
    return NULL;
}

orizuru_error *orizuru_instance_data(const orizuru_instance *instance, orizuru_field *fields,
                                     size_t count, int flags, bool *present) {
    *present = instance->data != NULL;
    if (!instance->data) {
        return NULL;
    }
    const char *why = orizuru_json_decode(instance->data, fields, count, flags);
    if (why) {
        return orizuru_failed("the data stored for instance \"%s\" could not be read: %s",
                              instance->name, why);
    }
    return NULL;
}

/* ---- Writing ------------------------------------------------------------------ */

struct orizuru_json {
    char *text;
    size_t len, size;
    bool *first;   /* per open level: nothing written in it yet */
    char *closers; /* per open level: its closing bracket */
    size_t depth, depth_size;
    bool after_key;
};

static void reserve(orizuru_json *json, size_t more) {
    if (json->len + more + 1 <= json->size) {
        return;
    }
    size_t size = json->size * 2;
    while (size < json->len + more + 1) {
        size *= 2;
    }
    char *text = orizuru__alloc(size);
    memcpy(text, json->text, json->len);
    json->text = text;
    json->size = size;
}

static void put(orizuru_json *json, const char *bytes, size_t len) {
    reserve(json, len);
    memcpy(json->text + json->len, bytes, len);
    json->len += len;
    json->text[json->len] = '\0';
}

/* Places the comma before a value or key, as needed. */
static void separate(orizuru_json *json) {
    if (json->after_key) {
        json->after_key = false;
        return;
    }
    if (json->depth > 0) {
        if (!json->first[json->depth - 1]) {
            put(json, ",", 1);
        }
        json->first[json->depth - 1] = false;
    }
}

orizuru_json *orizuru_json_new(void) {
    orizuru_json *json = orizuru__calloc(1, sizeof *json);
    json->size = 256;
    json->text = orizuru__alloc(json->size);
    json->text[0] = '\0';
    json->depth_size = 8;
    json->first = orizuru__calloc(json->depth_size, sizeof *json->first);
    json->closers = orizuru__calloc(json->depth_size, 1);
    return json;
}

static void open_level(orizuru_json *json, const char *bracket, char closer) {
    separate(json);
    put(json, bracket, 1);
    if (json->depth == json->depth_size) {
        bool *first = orizuru__calloc(json->depth_size * 2, sizeof *first);
        char *closers = orizuru__calloc(json->depth_size * 2, 1);
        memcpy(first, json->first, json->depth_size * sizeof *first);
        memcpy(closers, json->closers, json->depth_size);
        json->first = first;
        json->closers = closers;
        json->depth_size *= 2;
    }
    json->closers[json->depth] = closer;
    json->first[json->depth++] = true;
}

void orizuru_json_object(orizuru_json *json) {
    open_level(json, "{", '}');
}

void orizuru_json_array(orizuru_json *json) {
    open_level(json, "[", ']');
}

void orizuru_json_end(orizuru_json *json) {
    if (json->depth == 0) {
        fputs("orizuru: orizuru_json_end was called with no object or array open\n", stderr);
        abort();
    }
    json->depth--;
    put(json, &json->closers[json->depth], 1);
}

static void put_escaped(orizuru_json *json, const char *value, size_t len) {
    static const char hex[] = "0123456789abcdef";
    reserve(json, len * 6 + 2);
    char *o = json->text + json->len;
    *o++ = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)value[i];
        switch (c) {
        case '"': *o++ = '\\', *o++ = '"'; break;
        case '\\': *o++ = '\\', *o++ = '\\'; break;
        case '\b': *o++ = '\\', *o++ = 'b'; break;
        case '\f': *o++ = '\\', *o++ = 'f'; break;
        case '\n': *o++ = '\\', *o++ = 'n'; break;
        case '\r': *o++ = '\\', *o++ = 'r'; break;
        case '\t': *o++ = '\\', *o++ = 't'; break;
        default:
            if (c < 0x20) {
                *o++ = '\\', *o++ = 'u', *o++ = '0', *o++ = '0';
                *o++ = hex[c >> 4], *o++ = hex[c & 15];
            } else {
                *o++ = (char)c;
            }
        }
    }
    *o++ = '"';
    json->len = (size_t)(o - json->text);
    json->text[json->len] = '\0';
}

void orizuru_json_key(orizuru_json *json, const char *key) {
    separate(json);
    put_escaped(json, key, strlen(key));
    put(json, ":", 1);
    json->after_key = true;
}

void orizuru_json_string_n(orizuru_json *json, const char *value, size_t len) {
    separate(json);
    put_escaped(json, value, len);
}

void orizuru_json_string(orizuru_json *json, const char *value) {
    if (!value) {
        orizuru_json_null(json);
        return;
    }
    orizuru_json_string_n(json, value, strlen(value));
}

void orizuru_json_u64(orizuru_json *json, uint64_t value) {
    char number[24];
    separate(json);
    put(json, number, (size_t)snprintf(number, sizeof number, "%llu", (unsigned long long)value));
}

void orizuru_json_i64(orizuru_json *json, int64_t value) {
    char number[24];
    separate(json);
    put(json, number, (size_t)snprintf(number, sizeof number, "%lld", (long long)value));
}

void orizuru_json_f64(orizuru_json *json, double value) {
    if (!isfinite(value)) {
        orizuru_json_null(json);
        return;
    }
    char number[64];
    format_f64(value, number);
    separate(json);
    put(json, number, strlen(number));
}

void orizuru_json_bool(orizuru_json *json, bool value) {
    separate(json);
    put(json, value ? "true" : "false", value ? 4 : 5);
}

void orizuru_json_null(orizuru_json *json) {
    separate(json);
    put(json, "null", 4);
}

void orizuru_json_raw(orizuru_json *json, const char *json_text) {
    separate(json);
    put(json, json_text, strlen(json_text));
}

void orizuru_json_strings(orizuru_json *json, orizuru_strings strings) {
    orizuru_json_array(json);
    for (size_t i = 0; i < strings.len; i++) {
        orizuru_json_string(json, strings.items[i]);
    }
    orizuru_json_end(json);
}

const char *orizuru_json_text(const orizuru_json *json) {
    return json->text;
}
