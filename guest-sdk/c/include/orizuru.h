/*
 * orizuru.h: write a tsuru service API as an Orizuru plugin, in C.
 *
 * Orizuru serves tsuru's service API over HTTP, keeps the instance ledger
 * (duplicate creates, unknown instances and retried events are answered
 * without your code) and calls your plugin once per tsuru action, each time
 * in a fresh sandbox. A plugin defines the actions it offers, as functions
 * named `service_<action>`; every action it leaves out gets the default of
 * the Rust SDK's `Service` trait:
 *
 *   action            default when you don't define it
 *   service_plans      no plans
 *   service_create     ready, nothing to remember
 *   service_update     unsupported (tsuru ignores it)
 *   service_remove     nothing to undo
 *   service_info       nothing to add
 *   service_status     up
 *   service_bind_app   unsupported ("this service does not support binding apps")
 *   service_unbind_app nothing to undo
 *   service_bind_job   unsupported
 *   service_unbind_job nothing to undo
 *   service_proxy      unsupported (404)
 *
 *   #include <orizuru.h>
 *
 *   orizuru_error *service_bind_app(const orizuru_instance *instance,
 *                                   const orizuru_app_binding *app,
 *                                   orizuru_env *env) {
 *       orizuru_env_set(env, "SOMEVAR", "somevalue");
 *       return NULL;
 *   }
 *
 * Build it with `guest-sdk/c/build DIR OUT.wasm` and point a `[[services]]`
 * entry of the host's config at OUT.wasm.
 *
 * Results: every action answers an `orizuru_error *`: NULL when it did what
 * it was asked, or an error made by `orizuru_invalid(...)` and its siblings.
 * What an action answers besides (plans, env vars, a status, ...) it writes
 * into the output object it is handed, through the functions below.
 *
 * Errors are sentences: tsuru shows yours to its user word for word, so
 * write one sentence that names the thing and says what to do.
 *
 * Memory: everything the SDK hands you or makes for you (the requests, the
 * errors, the strings of orizuru_format, decoded parameters, JSON text, ...)
 * lives until your action returns, and the SDK frees it then: never free it
 * yourself, and never keep a pointer to it past the action (nothing outlives
 * an action anyway: each call runs in a fresh sandbox). Every function that
 * takes a string copies it, so you may pass stack buffers and free your own
 * memory as you like. Strings are NUL-terminated UTF-8. When memory runs out
 * (the service's `memory_mb`), the SDK stops the call and the host answers
 * it with a sentence saying so.
 */
#ifndef ORIZURU_H
#define ORIZURU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define ORIZURU_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define ORIZURU_WARN_UNUSED __attribute__((warn_unused_result))
#else
#define ORIZURU_PRINTF(fmt, args)
#define ORIZURU_WARN_UNUSED
#endif

/* The number of elements of an array, for field tables. */
#define ORIZURU_COUNT(array) (sizeof(array) / sizeof((array)[0]))

/* ---- What tsuru sends ------------------------------------------------------ */

/* A list of strings. */
typedef struct orizuru_strings {
    const char *const *items;
    size_t len;
} orizuru_strings;

/* A name and a value (a query parameter, a header, an env var). */
typedef struct orizuru_pair {
    const char *name;
    const char *value;
} orizuru_pair;

typedef struct orizuru_pairs {
    const orizuru_pair *items;
    size_t len;
} orizuru_pairs;

/* Who asked, as tsuru said it in the request's headers; NULL when absent. */
typedef struct orizuru_context {
    const char *user;                /* X-Tsuru-User */
    const char *event_id;            /* X-Tsuru-Eventid */
    const char *request_id;          /* X-Request-Id */
    const char *pool_name;           /* X-Tsuru-Pool-Name, or the pool of a plans call */
    const char *pool_provisioner;    /* X-Tsuru-Pool-Provisioner */
    const char *cluster_name;        /* X-Tsuru-Cluster-Name */
    const char *cluster_provisioner; /* X-Tsuru-Cluster-Provisioner */
    orizuru_strings cluster_addresses; /* X-Tsuru-Cluster-Addresses, one per header */
    const char *cluster_kube_config; /* X-Tsuru-Cluster-Kube-Config, as sent */
} orizuru_context;

/* What the host keeps for an instance and hands to every call on it. */
typedef struct orizuru_instance {
    const char *name;
    const char *plan;        /* NULL when none */
    const char *team;        /* NULL when none */
    const char *description; /* NULL when none */
    orizuru_strings tags;
    /* The parameters as a JSON object ("{}" when none); read them with
     * orizuru_instance_parameters. Form-encoded values arrive as text,
     * JSON ones typed; `parameters.db.size` arrives nested. */
    const char *parameters;
    /* What the plugin last returned with orizuru_provisioned_data, or NULL;
     * read it with orizuru_instance_data. */
    const char *data;
} orizuru_instance;

typedef struct orizuru_create_request {
    orizuru_instance instance;
    orizuru_context context;
} orizuru_create_request;

typedef struct orizuru_update_request {
    orizuru_instance current; /* as the host has it now */
    orizuru_instance next;    /* as tsuru wants it; its data is the current one */
    orizuru_context context;
} orizuru_update_request;

typedef struct orizuru_app_binding {
    const char *app_name;
    orizuru_strings app_hosts; /* the main public address first */
    orizuru_strings app_internal_hosts;
    const char *app_pool_name;
    const char *app_pool_provisioner;
    const char *app_cluster_name;
    const char *app_cluster_provisioner;
    orizuru_strings app_cluster_addresses;
    const char *parameters; /* JSON object, "{}" when none; see orizuru_app_parameters */
    orizuru_context context;
} orizuru_app_binding;

typedef struct orizuru_job_binding {
    const char *job_name;
    const char *job_pool_name;
    const char *job_cluster_name;
    orizuru_context context;
} orizuru_job_binding;

/* A call tsuru forwards as it came (`tsuru service instance proxy`). */
typedef struct orizuru_proxy_request {
    const char *method;
    const char *path; /* what follows the instance name, or the whole path */
    orizuru_pairs query;
    orizuru_pairs headers;
    const uint8_t *body;
    size_t body_len;
    orizuru_context context;
} orizuru_proxy_request;

/* The first value of a header, by case-insensitive name, or NULL. */
const char *orizuru_proxy_header(const orizuru_proxy_request *request, const char *name);

/* Every value of a query parameter, in order (none: len 0). */
orizuru_strings orizuru_proxy_query_values(const orizuru_proxy_request *request,
                                           const char *name);

/* ---- Errors ---------------------------------------------------------------- */

typedef struct orizuru_error orizuru_error;

/* The request is wrong: a bad parameter, an unknown plan (400). */
orizuru_error *orizuru_invalid(const char *format, ...) ORIZURU_PRINTF(1, 2);
/* Something the request names does not exist (404). */
orizuru_error *orizuru_not_found(const char *format, ...) ORIZURU_PRINTF(1, 2);
/* The request clashes with something that exists (409). */
orizuru_error *orizuru_conflict(const char *format, ...) ORIZURU_PRINTF(1, 2);
/* The instance is still being provisioned; try again later (412). */
orizuru_error *orizuru_not_ready(const char *format, ...) ORIZURU_PRINTF(1, 2);
/* The service could not do it (500). */
orizuru_error *orizuru_failed(const char *format, ...) ORIZURU_PRINTF(1, 2);
/* This service does not offer this action; the host answers as tsuru
 * expects for it (404, or success for an undo). */
orizuru_error *orizuru_unsupported(void);
/* Parameters the caller must give, by name, ending with NULL:
 * orizuru_missing_params("cluster", NULL). From plans, tsuru asks its user. */
orizuru_error *orizuru_missing_params(const char *name, ...);

/* The sentence of an error (NULL for unsupported), to add to it or log it. */
const char *orizuru_error_message(const orizuru_error *error);

/* ---- Strings --------------------------------------------------------------- */

/* printf into a string that lives until the action returns. */
const char *orizuru_format(const char *format, ...) ORIZURU_PRINTF(1, 2);
/* A copy of `text` that lives until the action returns. */
const char *orizuru_strdup(const char *text);
/* `len` bytes as UTF-8 text, each invalid sequence replaced by U+FFFD (as
 * Rust's String::from_utf8_lossy does); lives until the action returns.
 * *text_len (when not NULL) gets its length, which counts NUL bytes the
 * bytes held. */
const char *orizuru_utf8_lossy(const uint8_t *bytes, size_t len, size_t *text_len);
/* `text` without leading and trailing Unicode white space (Rust's
 * str::trim); lives until the action returns. */
const char *orizuru_trim(const char *text);
/* Reads a whole decimal number as Rust's u64::from_str does: digits with an
 * optional leading '+', nothing else, at most 18446744073709551615. */
bool orizuru_parse_u64(const char *text, uint64_t *out);

/* ---- JSON ------------------------------------------------------------------ */

/* Reading: describe the keys of a JSON object you expect in a table of
 * fields, and orizuru_instance_parameters (or orizuru_app_parameters,
 * orizuru_instance_data, orizuru_json_decode) fills them in, refusing what
 * does not fit with the same sentence serde_json gives a Rust plugin
 * (`unknown field `x`, expected `prefix` at line 1 column 4`).
 *
 *   const char *simulate = NULL;
 *   uint64_t retention = 24;
 *   orizuru_field fields[] = {
 *       ORIZURU_U64("retention_hours", &retention),
 *       ORIZURU_STRING("simulate", &simulate),
 *   };
 *   orizuru_error *err = orizuru_instance_parameters(instance, fields,
 *       ORIZURU_COUNT(fields), ORIZURU_DENY_UNKNOWN_FIELDS);
 *   if (err) return err;
 *   if (fields[0].present) ...
 *
 * A field is optional unless made with ORIZURU_REQUIRED(...): absent or
 * null, it leaves its target untouched and `present` false. */
typedef enum orizuru_json_kind {
    ORIZURU_JSON_NULL,
    ORIZURU_JSON_BOOL,
    ORIZURU_JSON_NUMBER,
    ORIZURU_JSON_STRING,
    ORIZURU_JSON_ARRAY,
    ORIZURU_JSON_OBJECT,
} orizuru_json_kind;

/* A value as found, handed to a custom field reader. */
typedef struct orizuru_json_value {
    orizuru_json_kind kind;
    const char *text;   /* the value's JSON text */
    size_t text_len;
    const char *string; /* ORIZURU_JSON_STRING: the decoded string */
    size_t string_len;
    bool boolean;       /* ORIZURU_JSON_BOOL */
    /* ORIZURU_JSON_NUMBER, read as serde_json does: a whole number that
     * fits a u64 is is_u64, a negative one that fits an i64 is is_i64,
     * anything else (a fraction, an exponent, too large) only an f64. */
    bool is_u64, is_i64;
    uint64_t u64;
    int64_t i64;
    double f64;
} orizuru_json_value;

/* What a value is, as serde's messages say it: `integer `5``, `map`. */
const char *orizuru_json_describe(const orizuru_json_value *value);

/* A custom reader: NULL when it took the value, or why not (a string that
 * lives until the action returns, e.g. from orizuru_format); the SDK adds
 * where the value is. */
typedef const char *(*orizuru_field_reader)(const orizuru_json_value *value, void *target);

typedef enum orizuru_field_type {
    ORIZURU_FIELD_STRING, /* const char **    */
    ORIZURU_FIELD_U64,    /* uint64_t *       */
    ORIZURU_FIELD_I64,    /* int64_t *        */
    ORIZURU_FIELD_F64,    /* double *         */
    ORIZURU_FIELD_BOOL,   /* bool *           */
    ORIZURU_FIELD_JSON,   /* const char **: the value's JSON text, any kind */
    ORIZURU_FIELD_CUSTOM, /* whatever the reader writes */
} orizuru_field_type;

typedef struct orizuru_field {
    const char *name;
    orizuru_field_type type;
    void *target;
    orizuru_field_reader reader; /* ORIZURU_FIELD_CUSTOM only */
    bool required;
    bool present; /* set by the decoder: found and not null */
} orizuru_field;

#define ORIZURU_STRING(name, target) \
    ((orizuru_field){(name), ORIZURU_FIELD_STRING, (const char **)(target), NULL, false, false})
#define ORIZURU_U64(name, target) \
    ((orizuru_field){(name), ORIZURU_FIELD_U64, (uint64_t *)(target), NULL, false, false})
#define ORIZURU_I64(name, target) \
    ((orizuru_field){(name), ORIZURU_FIELD_I64, (int64_t *)(target), NULL, false, false})
#define ORIZURU_F64(name, target) \
    ((orizuru_field){(name), ORIZURU_FIELD_F64, (double *)(target), NULL, false, false})
#define ORIZURU_BOOL(name, target) \
    ((orizuru_field){(name), ORIZURU_FIELD_BOOL, (bool *)(target), NULL, false, false})
#define ORIZURU_JSON(name, target) \
    ((orizuru_field){(name), ORIZURU_FIELD_JSON, (const char **)(target), NULL, false, false})
#define ORIZURU_CUSTOM(name, reader, target) \
    ((orizuru_field){(name), ORIZURU_FIELD_CUSTOM, (target), (reader), false, false})
/* The same field, which must be there and not null. */
#define ORIZURU_REQUIRED(field) orizuru_field_required(field)
orizuru_field orizuru_field_required(orizuru_field field);

/* Flags of the decoders. */
enum {
    /* Refuse keys that no field names (serde's deny_unknown_fields);
     * without it they are skipped. */
    ORIZURU_DENY_UNKNOWN_FIELDS = 1,
};

/* The instance's parameters into `fields`; a mismatch is the caller's
 * mistake, answered as invalid (400): `the parameters of instance "x" are
 * not valid: ...`. */
orizuru_error *orizuru_instance_parameters(const orizuru_instance *instance, orizuru_field *fields,
                                           size_t count, int flags) ORIZURU_WARN_UNUSED;
/* The binding's parameters into `fields`, the same way. */
orizuru_error *orizuru_app_parameters(const orizuru_app_binding *app, orizuru_field *fields,
                                      size_t count, int flags) ORIZURU_WARN_UNUSED;
/* The instance's data into `fields`; *present tells whether it had any
 * (nothing is filled in when not). Unreadable data fails (500). */
orizuru_error *orizuru_instance_data(const orizuru_instance *instance, orizuru_field *fields,
                                     size_t count, int flags, bool *present) ORIZURU_WARN_UNUSED;
/* Any JSON object text into `fields`: NULL when it fits, else the sentence
 * serde_json would give (`missing field `x` at line 1 column 9`). */
const char *orizuru_json_decode(const char *json, orizuru_field *fields, size_t count, int flags);

/* Writing: JSON text with serde_json's escaping, commas placed for you.
 *
 *   orizuru_json *json = orizuru_json_new();
 *   orizuru_json_object(json);
 *   orizuru_json_key(json, "vhost");  orizuru_json_string(json, "/orders");
 *   orizuru_json_key(json, "ready");  orizuru_json_bool(json, true);
 *   orizuru_json_end(json);
 *   const char *text = orizuru_json_text(json);   // {"vhost":"/orders","ready":true}
 *
 * Keys come out in the order you write them. */
typedef struct orizuru_json orizuru_json;
orizuru_json *orizuru_json_new(void);
void orizuru_json_object(orizuru_json *json); /* opens {, closed by orizuru_json_end */
void orizuru_json_array(orizuru_json *json);  /* opens [, closed by orizuru_json_end */
void orizuru_json_end(orizuru_json *json);
void orizuru_json_key(orizuru_json *json, const char *key);
void orizuru_json_string(orizuru_json *json, const char *value); /* NULL writes null */
void orizuru_json_string_n(orizuru_json *json, const char *value, size_t len);
void orizuru_json_u64(orizuru_json *json, uint64_t value);
void orizuru_json_i64(orizuru_json *json, int64_t value);
void orizuru_json_f64(orizuru_json *json, double value); /* as serde_json writes it */
void orizuru_json_bool(orizuru_json *json, bool value);
void orizuru_json_null(orizuru_json *json);
void orizuru_json_raw(orizuru_json *json, const char *json_text); /* already JSON */
void orizuru_json_strings(orizuru_json *json, orizuru_strings strings); /* an array */
/* The text written so far; lives until the action returns. */
const char *orizuru_json_text(const orizuru_json *json);

/* ---- What an action answers ------------------------------------------------- */

/* plans: the plans offered, for `tsuru service info` and `-p`. */
typedef struct orizuru_plans orizuru_plans;
void orizuru_plan_add(orizuru_plans *plans, const char *name, const char *description);

/* create and update: how far provisioning got. Ready unless you say pending. */
typedef struct orizuru_provisioned orizuru_provisioned;
/* Done (the default). */
void orizuru_provisioned_ready(orizuru_provisioned *out);
/* Still provisioning: binds answer 412 until status says up. */
void orizuru_provisioned_pending(orizuru_provisioned *out);
/* Remember `data` (usually JSON from orizuru_json_text) with the instance;
 * every later call gets it in instance->data. Without it, update keeps the
 * data the instance had and create stores none. */
void orizuru_provisioned_data(orizuru_provisioned *out, const char *data);

/* info: extra lines of `tsuru service instance info`. */
typedef struct orizuru_info orizuru_info;
void orizuru_info_add(orizuru_info *info, const char *label, const char *value);
void orizuru_info_addf(orizuru_info *info, const char *label, const char *format, ...)
    ORIZURU_PRINTF(3, 4);

/* status: up unless you say otherwise. */
typedef struct orizuru_status orizuru_status;
/* Ready (204). */
void orizuru_status_up(orizuru_status *out);
/* Still provisioning, with a note (202). */
void orizuru_status_pending(orizuru_status *out, const char *format, ...) ORIZURU_PRINTF(2, 3);
/* Broken, with the reason (500). */
void orizuru_status_down(orizuru_status *out, const char *format, ...) ORIZURU_PRINTF(2, 3);
/* Any other state, shown as written (200). */
void orizuru_status_custom(orizuru_status *out, const char *format, ...) ORIZURU_PRINTF(2, 3);

/* bind_app and bind_job: the env vars the app or job gets, by name; setting
 * a name again replaces its value. They reach tsuru sorted by name. */
typedef struct orizuru_env orizuru_env;
void orizuru_env_set(orizuru_env *env, const char *name, const char *value);
void orizuru_env_setf(orizuru_env *env, const char *name, const char *format, ...)
    ORIZURU_PRINTF(3, 4);
/* The value set for `name`, or NULL. */
const char *orizuru_env_get(const orizuru_env *env, const char *name);

/* proxy: the answer to a forwarded call; 200 with no body unless you say. */
typedef struct orizuru_proxy_response orizuru_proxy_response;
void orizuru_proxy_respond(orizuru_proxy_response *response, uint16_t status, const void *body,
                           size_t body_len);
/* orizuru_proxy_respond with a NUL-terminated body. */
void orizuru_proxy_respond_text(orizuru_proxy_response *response, uint16_t status,
                                const char *body);
void orizuru_proxy_header_add(orizuru_proxy_response *response, const char *name,
                              const char *value);

/* ---- The actions: define those your service offers ---------------------------- */

/* The plans offered. */
orizuru_error *service_plans(const orizuru_context *context, orizuru_plans *plans);
/* Provision a new instance; the host already checked the name is free.
 * Answer pending (orizuru_provisioned_pending) when it finishes later. */
orizuru_error *service_create(const orizuru_create_request *request, orizuru_provisioned *out);
/* Change an instance's plan, description, tags or parameters. */
orizuru_error *service_update(const orizuru_update_request *request, orizuru_provisioned *out);
/* Tear an instance down; also called for one whose creation did not finish. */
orizuru_error *service_remove(const orizuru_instance *instance, const orizuru_context *context);
/* Extra lines for `tsuru service instance info`. */
orizuru_error *service_info(const orizuru_instance *instance, const orizuru_context *context,
                            orizuru_info *info);
/* The instance's health, for `tsuru service instance status`. */
orizuru_error *service_status(const orizuru_instance *instance, const orizuru_context *context,
                              orizuru_status *out);
/* Bind an app: set the env vars it gets. */
orizuru_error *service_bind_app(const orizuru_instance *instance, const orizuru_app_binding *app,
                                orizuru_env *env);
/* Undo service_bind_app; also called after a bind that failed half-way. */
orizuru_error *service_unbind_app(const orizuru_instance *instance,
                                  const orizuru_app_binding *app);
/* Bind a job: set the env vars it gets. */
orizuru_error *service_bind_job(const orizuru_instance *instance, const orizuru_job_binding *job,
                                orizuru_env *env);
/* Undo service_bind_job. */
orizuru_error *service_unbind_job(const orizuru_instance *instance,
                                  const orizuru_job_binding *job);
/* A request tsuru forwards as it came; `instance` is NULL for a
 * service-level call. */
orizuru_error *service_proxy(const orizuru_instance *instance,
                             const orizuru_proxy_request *request,
                             orizuru_proxy_response *response);

/* ---- Capabilities --------------------------------------------------------------
 * Each needs a grant in the service's [[services]] entry; a plugin that
 * calls one without its grant is refused at load, with the key to add. A
 * plugin imports only what it calls: one that never logs needs no grant. */

/* Logging (`logging = true`): lines into the host's log at a level, tagged
 * with the service, the instance, the request id and tsuru's event id.
 * (What a plugin prints to stdout or stderr reaches the log too, without a
 * level.) */
void orizuru_log_trace(const char *format, ...) ORIZURU_PRINTF(1, 2);
void orizuru_log_debug(const char *format, ...) ORIZURU_PRINTF(1, 2);
void orizuru_log_info(const char *format, ...) ORIZURU_PRINTF(1, 2);
void orizuru_log_warn(const char *format, ...) ORIZURU_PRINTF(1, 2);
void orizuru_log_error(const char *format, ...) ORIZURU_PRINTF(1, 2);

/* Config and secrets (`[services.config]`, `[services.secrets]`). */
/* The value of `key` into *value, or NULL when the operator did not set it. */
orizuru_error *orizuru_config_get(const char *key, const char **value) ORIZURU_WARN_UNUSED;
/* The value of `key`, or a failure saying which key the operator must set. */
orizuru_error *orizuru_config_require(const char *key, const char **value) ORIZURU_WARN_UNUSED;
/* Every value and secret, sorted by key. */
orizuru_error *orizuru_config_all(orizuru_pairs *all) ORIZURU_WARN_UNUSED;

/* Key-value (`keyvalue = true`): durable buckets kept by the host for this
 * service alone, surviving restarts and hot swaps. A bucket is closed when
 * the action returns. */
typedef struct orizuru_bucket orizuru_bucket;
/* Opens the bucket `name` (the empty name is the service's default bucket). */
orizuru_error *orizuru_kv_open(const char *name, orizuru_bucket **bucket) ORIZURU_WARN_UNUSED;
/* The value of `key` into *value and *len, or *value = NULL when missing.
 * The value is followed by a NUL byte (not counted), so text reads as is. */
orizuru_error *orizuru_kv_get(orizuru_bucket *bucket, const char *key, const uint8_t **value,
                              size_t *len) ORIZURU_WARN_UNUSED;
orizuru_error *orizuru_kv_set(orizuru_bucket *bucket, const char *key, const void *value,
                              size_t len) ORIZURU_WARN_UNUSED;
/* orizuru_kv_set of a NUL-terminated text (without the NUL). */
orizuru_error *orizuru_kv_set_text(orizuru_bucket *bucket, const char *key,
                                   const char *value) ORIZURU_WARN_UNUSED;
/* Removes `key` (removing a missing key is no error). */
orizuru_error *orizuru_kv_delete(orizuru_bucket *bucket, const char *key) ORIZURU_WARN_UNUSED;
orizuru_error *orizuru_kv_exists(orizuru_bucket *bucket, const char *key,
                                 bool *exists) ORIZURU_WARN_UNUSED;
/* Every key of the bucket, in order. */
orizuru_error *orizuru_kv_keys(orizuru_bucket *bucket, orizuru_strings *keys) ORIZURU_WARN_UNUSED;
/* Adds `delta` to the number at `key` (0 when missing) in one step no other
 * call can split, and answers the new number. */
orizuru_error *orizuru_kv_increment(orizuru_bucket *bucket, const char *key, uint64_t delta,
                                    uint64_t *value) ORIZURU_WARN_UNUSED;

/* SQL (`[services.sql.NAME]`): one statement per call on the PostgreSQL
 * connection the operator declared as NAME, in a transaction of its own.
 * `$1..$n` are bound to `params` as text (NULL binds NULL); values come
 * back as `::text` writes them, NULL as NULL. A failed statement answers a
 * failure (500) whose sentence names the connection; orizuru_sql_code then
 * gives the SQLSTATE PostgreSQL reported (`42P04`), if it was a refusal. */
typedef struct orizuru_rows {
    orizuru_strings columns;
    size_t len;                   /* rows */
    const char *const *const *rows; /* rows[i][j]: row i, column j; NULL is NULL */
} orizuru_rows;
orizuru_error *orizuru_sql_query(const char *connection, const char *statement,
                                 const char *const *params, size_t params_len,
                                 orizuru_rows *rows) ORIZURU_WARN_UNUSED;
orizuru_error *orizuru_sql_execute(const char *connection, const char *statement,
                                   const char *const *params, size_t params_len,
                                   uint64_t *changed) ORIZURU_WARN_UNUSED;
/* The SQLSTATE of a statement's refusal, or NULL for any other error. */
const char *orizuru_sql_code(const orizuru_error *error);
/* The value of `column` in row `row`: NULL when it is NULL. A column the
 * query did not select fails, naming the columns it has. */
orizuru_error *orizuru_rows_get(const orizuru_rows *rows, size_t row, const char *column,
                                const char **value) ORIZURU_WARN_UNUSED;
/* `name` quoted as an identifier: we"ird -> "we""ird". */
const char *orizuru_sql_quote_identifier(const char *name);
/* `value` quoted as a string literal: it's -> 'it''s'. */
const char *orizuru_sql_quote_literal(const char *value);

#ifdef __cplusplus
}
#endif

#endif /* ORIZURU_H */
