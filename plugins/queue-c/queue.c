/*
 * A message-queue service, the stateful example, in C: two plans,
 * parameters read from JSON, the instance's own data kept by the host, a
 * large plan that provisions in the background (pending, then up), per-app
 * credentials, info lines and a proxied backup call.
 *
 * It answers every call exactly as the Rust example (plugins/queue) does,
 * byte for byte. It provisions nothing real; a real service would call its
 * broker where this one only computes names and credentials.
 *
 * Build: guest-sdk/c/build plugins/queue-c queue-c.wasm
 */
#include <inttypes.h>
#include <string.h>
#include <time.h>

#include <orizuru.h>

static const char *const PLANS[][2] = {
    {"small", "One queue, 100 messages a second"},
    {"large", "Ten queues, 10,000 messages a second; provisioning takes a while"},
};

/* What `tsuru service instance add queue NAME -p KEY=VALUE` may set. */
typedef struct parameters {
    uint64_t retention_hours;   /* 1 to 720; 24 by default */
    bool has_retention_hours;
    uint64_t provision_seconds; /* the large plan's default is 5 */
    bool has_provision_seconds;
    const char *simulate;       /* "down" or "degraded" makes status say so */
} parameters;

/* What the plugin remembers about an instance, in the host's ledger. */
typedef struct queue_data {
    const char *vhost;
    uint64_t retention_hours;
    uint64_t ready_at;
    const char *simulate; /* NULL when none */
} queue_data;

/* Form-encoded parameters arrive as text, JSON ones as numbers: take both.
 * (The sentences are those of the Rust example's serde reader.) */
static const char *number_or_text(const orizuru_json_value *value, void *target) {
    uint64_t *number = target;
    if (value->kind == ORIZURU_JSON_NUMBER && value->is_u64) {
        *number = value->u64;
        return NULL;
    }
    if (value->kind != ORIZURU_JSON_STRING) {
        return "data did not match any variant of untagged enum NumberOrText";
    }
    if (!orizuru_parse_u64(orizuru_trim(value->string), number)) {
        return orizuru_format("\"%s\" is not a whole number", value->string);
    }
    return NULL;
}

/* Seconds since the Unix epoch (0 if the clock is before it). */
static uint64_t now(void) {
    time_t seconds = time(NULL);
    return seconds > 0 ? (uint64_t)seconds : 0;
}

static orizuru_error *check_plan(const char *plan, const char **checked) {
    if (!plan) {
        plan = "small";
    }
    for (size_t i = 0; i < ORIZURU_COUNT(PLANS); i++) {
        if (strcmp(PLANS[i][0], plan) == 0) {
            *checked = PLANS[i][0];
            return NULL;
        }
    }
    return orizuru_invalid("plan \"%s\" does not exist; choose small or large", plan);
}

static orizuru_error *read_parameters(const orizuru_instance *instance, parameters *out) {
    orizuru_field fields[] = {
        ORIZURU_CUSTOM("retention_hours", number_or_text, &out->retention_hours),
        ORIZURU_CUSTOM("provision_seconds", number_or_text, &out->provision_seconds),
        ORIZURU_STRING("simulate", &out->simulate),
    };
    orizuru_error *err = orizuru_instance_parameters(instance, fields, ORIZURU_COUNT(fields),
                                                     ORIZURU_DENY_UNKNOWN_FIELDS);
    out->has_retention_hours = fields[0].present;
    out->has_provision_seconds = fields[1].present;
    return err;
}

static const char *write_data(const queue_data *data) {
    orizuru_json *json = orizuru_json_new();
    orizuru_json_object(json);
    orizuru_json_key(json, "vhost");
    orizuru_json_string(json, data->vhost);
    orizuru_json_key(json, "retention_hours");
    orizuru_json_u64(json, data->retention_hours);
    orizuru_json_key(json, "ready_at");
    orizuru_json_u64(json, data->ready_at);
    orizuru_json_key(json, "simulate");
    orizuru_json_string(json, data->simulate); /* NULL writes null */
    orizuru_json_end(json);
    return orizuru_json_text(json);
}

/* Provisions (on paper) and answers what to remember; `delay` (when
 * has_delay) overrides how long provisioning takes. */
static orizuru_error *provision(const orizuru_instance *instance, bool has_delay, uint64_t delay,
                                orizuru_provisioned *out) {
    const char *plan;
    orizuru_error *err = check_plan(instance->plan, &plan);
    if (err) {
        return err;
    }
    parameters params = {0};
    if ((err = read_parameters(instance, &params))) {
        return err;
    }
    uint64_t retention_hours = params.has_retention_hours ? params.retention_hours : 24;
    if (retention_hours < 1 || retention_hours > 720) {
        return orizuru_invalid("retention_hours is %" PRIu64
                               "; give a number of hours from 1 to 720",
                               retention_hours);
    }
    if (!has_delay) {
        delay = params.has_provision_seconds ? params.provision_seconds
                : strcmp(plan, "large") == 0 ? 5
                                             : 0;
    }
    queue_data data = {
        .vhost = orizuru_format("/%s", instance->name),
        .retention_hours = retention_hours,
        .ready_at = now() + delay, /* wraps like the Rust example's release build */
        .simulate = params.simulate,
    };
    if (delay > 0) {
        orizuru_provisioned_pending(out);
    } else {
        orizuru_provisioned_ready(out);
    }
    orizuru_provisioned_data(out, write_data(&data));
    return NULL;
}

static orizuru_error *read_data(const orizuru_instance *instance, queue_data *data) {
    orizuru_field fields[] = {
        ORIZURU_REQUIRED(ORIZURU_STRING("vhost", &data->vhost)),
        ORIZURU_REQUIRED(ORIZURU_U64("retention_hours", &data->retention_hours)),
        ORIZURU_REQUIRED(ORIZURU_U64("ready_at", &data->ready_at)),
        ORIZURU_STRING("simulate", &data->simulate),
    };
    data->simulate = NULL;
    bool present;
    orizuru_error *err =
        orizuru_instance_data(instance, fields, ORIZURU_COUNT(fields), 0, &present);
    if (err) {
        return err;
    }
    if (!present) {
        return orizuru_failed(
            "instance \"%s\" has no queue data; remove it and create it again", instance->name);
    }
    return NULL;
}

/* A password only this instance and client share (a real service would
 * generate one at bind and store it in the broker): FNV-1a of
 * "instance/client", in 16 hex digits. */
static const char *password(const char *instance, const char *client) {
    uint64_t hash = 0xcbf29ce484222325u;
    const char *parts[] = {instance, "/", client};
    for (size_t p = 0; p < 3; p++) {
        for (const unsigned char *byte = (const unsigned char *)parts[p]; *byte; byte++) {
            hash ^= *byte;
            hash *= 0x100000001b3u;
        }
    }
    return orizuru_format("%016" PRIx64, hash);
}

static orizuru_error *credentials(const orizuru_instance *instance, const char *user,
                                  orizuru_env *env) {
    queue_data data;
    orizuru_error *err = read_data(instance, &data);
    if (err) {
        return err;
    }
    const char *secret = password(instance->name, user);
    orizuru_env_setf(env, "QUEUE_URL", "amqp://%s:%s@queue.example.com:5672%s", user, secret,
                     data.vhost);
    orizuru_env_set(env, "QUEUE_HOST", "queue.example.com");
    orizuru_env_set(env, "QUEUE_PORT", "5672");
    orizuru_env_set(env, "QUEUE_VHOST", data.vhost);
    orizuru_env_set(env, "QUEUE_USER", user);
    orizuru_env_set(env, "QUEUE_PASSWORD", secret);
    return NULL;
}

orizuru_error *service_plans(const orizuru_context *context, orizuru_plans *plans) {
    (void)context;
    for (size_t i = 0; i < ORIZURU_COUNT(PLANS); i++) {
        orizuru_plan_add(plans, PLANS[i][0], PLANS[i][1]);
    }
    return NULL;
}

orizuru_error *service_create(const orizuru_create_request *request, orizuru_provisioned *out) {
    return provision(&request->instance, false, 0, out);
}

orizuru_error *service_update(const orizuru_update_request *request, orizuru_provisioned *out) {
    queue_data current;
    orizuru_error *err = read_data(&request->current, &current);
    if (err) {
        return err;
    }
    orizuru_instance next = request->next;
    if (strcmp(next.parameters, "{}") == 0) {
        next.parameters = request->current.parameters;
    }
    /* A change finishes what provisioning had left, and nothing more. */
    uint64_t at = now();
    return provision(&next, true, current.ready_at > at ? current.ready_at - at : 0, out);
}

orizuru_error *service_status(const orizuru_instance *instance, const orizuru_context *context,
                              orizuru_status *out) {
    (void)context;
    queue_data data;
    orizuru_error *err = read_data(instance, &data);
    if (err) {
        return err;
    }
    if (data.simulate && strcmp(data.simulate, "down") == 0) {
        orizuru_status_down(out, "the broker does not answer");
    } else if (data.simulate && strcmp(data.simulate, "degraded") == 0) {
        orizuru_status_custom(out, "degraded: 1 of 2 nodes up");
    } else if (data.ready_at > now()) {
        orizuru_status_pending(out, "provisioning, about %" PRIu64 "s left",
                               data.ready_at - now());
    } else {
        orizuru_status_up(out);
    }
    return NULL;
}

orizuru_error *service_info(const orizuru_instance *instance, const orizuru_context *context,
                            orizuru_info *info) {
    (void)context;
    queue_data data;
    orizuru_error *err = read_data(instance, &data);
    if (err) {
        return err;
    }
    orizuru_info_add(info, "Plan", instance->plan ? instance->plan : "small");
    orizuru_info_add(info, "Virtual host", data.vhost);
    orizuru_info_addf(info, "Retention", "%" PRIu64 " hours", data.retention_hours);
    return NULL;
}

orizuru_error *service_bind_app(const orizuru_instance *instance, const orizuru_app_binding *app,
                                orizuru_env *env) {
    const char *prefix = NULL;
    orizuru_field fields[] = {ORIZURU_STRING("prefix", &prefix)};
    orizuru_error *err = orizuru_app_parameters(app, fields, ORIZURU_COUNT(fields),
                                                ORIZURU_DENY_UNKNOWN_FIELDS);
    if (err) {
        return err;
    }
    if ((err = credentials(instance, app->app_name, env))) {
        return err;
    }
    if (prefix) {
        orizuru_env_set(env, "QUEUE_PREFIX", prefix);
    }
    return NULL;
}

orizuru_error *service_unbind_app(const orizuru_instance *instance,
                                  const orizuru_app_binding *app) {
    (void)instance;
    (void)app;
    return NULL;
}

orizuru_error *service_bind_job(const orizuru_instance *instance, const orizuru_job_binding *job,
                                orizuru_env *env) {
    return credentials(instance, orizuru_format("job-%s", job->job_name), env);
}

orizuru_error *service_proxy(const orizuru_instance *instance,
                             const orizuru_proxy_request *request,
                             orizuru_proxy_response *response) {
    if (!instance) {
        return orizuru_not_found("the queue service has no service-level route %s",
                                 request->path);
    }
    if (strcmp(request->method, "POST") != 0 || strcmp(request->path, "/backup") != 0) {
        return orizuru_not_found("instance \"%s\" has no route %s %s; try POST /backup",
                                 instance->name, request->method, request->path);
    }
    const orizuru_context *context = &request->context;
    /* The keys in the order the Rust example's serde_json map writes them: sorted. */
    orizuru_json *echo = orizuru_json_new();
    orizuru_json_object(echo);
    orizuru_json_key(echo, "body");
    size_t body_len;
    const char *body = orizuru_utf8_lossy(request->body, request->body_len, &body_len);
    orizuru_json_string_n(echo, body, body_len);
    orizuru_json_key(echo, "cluster");
    orizuru_json_string(echo, context->cluster_name);
    orizuru_json_key(echo, "cluster_addresses");
    orizuru_json_strings(echo, context->cluster_addresses);
    orizuru_json_key(echo, "event_id");
    orizuru_json_string(echo, context->event_id);
    orizuru_json_key(echo, "header");
    orizuru_json_string(echo, orizuru_proxy_header(request, "x-backup-note"));
    orizuru_json_key(echo, "instance");
    orizuru_json_string(echo, instance->name);
    orizuru_json_key(echo, "method");
    orizuru_json_string(echo, request->method);
    orizuru_json_key(echo, "names");
    orizuru_json_strings(echo, orizuru_proxy_query_values(request, "names"));
    orizuru_json_key(echo, "path");
    orizuru_json_string(echo, request->path);
    orizuru_json_key(echo, "pool");
    orizuru_json_string(echo, context->pool_name);
    orizuru_json_key(echo, "request_id");
    orizuru_json_string(echo, context->request_id);
    orizuru_json_key(echo, "user");
    orizuru_json_string(echo, context->user);
    orizuru_json_end(echo);
    orizuru_proxy_respond_text(response, 202, orizuru_json_text(echo));
    orizuru_proxy_header_add(response, "content-type", "application/json");
    orizuru_proxy_header_add(response, "x-queue-backup", "started");
    return NULL;
}
