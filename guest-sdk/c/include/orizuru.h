/*
 * orizuru.h: write a tsuru service API as an Orizuru plugin, in C.
 *
 * Orizuru serves tsuru's service API over HTTP, keeps the instance ledger
 * (duplicate creates, unknown instances and retried events are answered
 * without your code) and calls your plugin once per tsuru action, each time
 * in a fresh sandbox. A plugin defines the actions it offers, as functions
 * named `service_<action>`; every action it leaves out gets the default
 * every Orizuru SDK gives it:
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
 * Build it with `orizuru-c-build DIR OUT.wasm` (installed with the SDK;
 * `pkg-config --variable=orizuru_c_build orizuru` finds it) and point a
 * `[[services]]` entry of the host's config at OUT.wasm.
 *
 * JSON is cJSON's (<cjson/cJSON.h>, included here): use its API for the
 * instance data you keep and the bodies you answer.
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
 * errors, the strings of orizuru_format, parameters, every cJSON value and
 * text, ...) lives until your action returns, and the SDK frees it then:
 * never free it yourself (cJSON_Delete and cJSON_free do nothing; do not
 * call cJSON_InitHooks, which the SDK set), and never keep a pointer to it
 * past the action (nothing outlives an action anyway: each call runs in a
 * fresh sandbox). Every function that takes a string copies it, so you may
 * pass stack buffers and free your own memory as you like. Strings are
 * NUL-terminated UTF-8. When memory runs out (the service's `memory_mb`),
 * the SDK stops the call and the host answers it with a sentence saying so.
 */
#ifndef ORIZURU_H
#define ORIZURU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define ORIZURU_VERSION "0.1.0"

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

/* ---- Parameters ------------------------------------------------------------ */

/* tsuru's CLI sends every parameter as text (`-p size_mb=128` arrives as
 * "128"); other clients of its JSON encoding may send typed values. Declare
 * the parameters your service takes in a table of fields, and
 * orizuru_instance_parameters (or orizuru_app_parameters) reads them into
 * your variables, taking the typed value or the text of one:
 *
 *   uint64_t size_mb = 128;       // the default, kept when absent or null
 *   const char *engine = NULL;
 *   orizuru_field fields[] = {
 *       ORIZURU_U64("size_mb", &size_mb),
 *       ORIZURU_STRING("engine", &engine),
 *   };
 *   orizuru_error *err =
 *       orizuru_instance_parameters(instance, fields, ORIZURU_COUNT(fields));
 *   if (err) return err;
 *
 *   field                     accepts                         refuses
 *   ORIZURU_U64, ORIZURU_I64  5, "5", " +5 ", "-3" (I64)      "lots", "1.5", "", 1.5
 *   ORIZURU_F64               1.5, "1.5", "1e3", ".5"          "fast", "nan", "inf", ""
 *   ORIZURU_BOOL              true, "true", "FALSE"            "yes", "1", 1
 *   ORIZURU_STRING            "text"                           5, true
 *   ORIZURU_GROUP             {...}: `-p db.size=1` arrives nested; its own fields
 *   ORIZURU_JSON              anything, as the cJSON value
 *
 * A field is optional: absent or null, it leaves its variable as it was
 * (your default) and `present` false. ORIZURU_REQUIRED(field) makes it
 * required. What does not fit is the user's mistake, answered 400 with a
 * sentence naming the parameter:
 *
 *   parameter "size_mb" of instance "c1" must be a whole number, not "lots"
 *   instance "c1" has no parameter "colour"; the parameters are: size_mb, engine
 *   parameter "size_mb" of instance "c1" is missing
 *
 * A parameter the table does not declare is refused, so a mistyped -p never
 * passes silently (to take any, read instance->parameters with cJSON_Parse). */
typedef enum orizuru_field_type {
    ORIZURU_FIELD_STRING, /* const char **  */
    ORIZURU_FIELD_U64,    /* uint64_t *     */
    ORIZURU_FIELD_I64,    /* int64_t *      */
    ORIZURU_FIELD_F64,    /* double *       */
    ORIZURU_FIELD_BOOL,   /* bool *         */
    ORIZURU_FIELD_GROUP,  /* orizuru_field[]: a nested group's own fields */
    ORIZURU_FIELD_JSON,   /* const cJSON ** */
} orizuru_field_type;

typedef struct orizuru_field {
    const char *name;
    orizuru_field_type type;
    void *target;
    size_t count;  /* ORIZURU_FIELD_GROUP: how many fields it has */
    bool required;
    bool present;  /* set by the reader: given and not null */
} orizuru_field;

/* A field whose target has type `ctype *`: any other pointer is a compiler
 * warning (the conditional's two pointer types must match). */
#define ORIZURU__FIELD(name, type, ctype, target) \
    ((orizuru_field){(name), (type), (1 ? (target) : (ctype *)0), 0, false, false})

#define ORIZURU_STRING(name, target) \
    ORIZURU__FIELD(name, ORIZURU_FIELD_STRING, const char *, target)
#define ORIZURU_U64(name, target) ORIZURU__FIELD(name, ORIZURU_FIELD_U64, uint64_t, target)
#define ORIZURU_I64(name, target) ORIZURU__FIELD(name, ORIZURU_FIELD_I64, int64_t, target)
#define ORIZURU_F64(name, target) ORIZURU__FIELD(name, ORIZURU_FIELD_F64, double, target)
#define ORIZURU_BOOL(name, target) ORIZURU__FIELD(name, ORIZURU_FIELD_BOOL, bool, target)
#define ORIZURU_JSON(name, target) \
    ORIZURU__FIELD(name, ORIZURU_FIELD_JSON, const cJSON *, target)
/* `fields` is an array of orizuru_field (not a pointer: it is counted). */
#define ORIZURU_GROUP(name, fields)                                                   \
    ((orizuru_field){(name), ORIZURU_FIELD_GROUP, (1 ? (fields) : (orizuru_field *)0), \
                     ORIZURU_COUNT(fields), false, false})
/* The same field, which must be given and not null. */
#define ORIZURU_REQUIRED(field) orizuru_field_required(field)
orizuru_field orizuru_field_required(orizuru_field field);

/* The instance's parameters (create, update) into `fields`. */
orizuru_error *orizuru_instance_parameters(const orizuru_instance *instance, orizuru_field *fields,
                                           size_t count) ORIZURU_WARN_UNUSED;
/* The binding's parameters (bind-app) into `fields`, the same way. */
orizuru_error *orizuru_app_parameters(const orizuru_app_binding *app, orizuru_field *fields,
                                      size_t count) ORIZURU_WARN_UNUSED;

/* ---- Instance data ------------------------------------------------------------ */

/* What create or update hands to orizuru_provisioned_data is JSON text you
 * write with cJSON, whose allocations go to the call's memory like
 * everything else here (so cJSON_Delete is never needed):
 *
 *   cJSON *data = cJSON_CreateObject();
 *   cJSON_AddStringToObject(data, "vhost", vhost);
 *   cJSON_AddNumberToObject(data, "retention_hours", (double)retention_hours);
 *   orizuru_provisioned_data(out, cJSON_PrintUnformatted(data));
 *
 * Every later call gets it back in instance->data. orizuru_instance_data
 * reads it into a field table as parameters are read (keys the table does
 * not name are skipped); *present tells whether the instance has any data
 * (nothing is filled in when not). Data that does not fit fails (500):
 * `the data stored for instance "q" could not be read: "vhost" is missing`.
 * Or parse instance->data with cJSON_Parse yourself. */
orizuru_error *orizuru_instance_data(const orizuru_instance *instance, orizuru_field *fields,
                                     size_t count, bool *present) ORIZURU_WARN_UNUSED;

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
/* Remember `data` (JSON text, from cJSON_PrintUnformatted) with the instance;
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
