/*
 * A message-queue service, the stateful example, in C: two plans, typed
 * parameters read from a field table (tsuru sends them as text; the SDK
 * reads them), the instance's own data kept by the host as cJSON text, a
 * large plan that provisions in the background (pending, then up), per-app
 * credentials, info lines and a proxied backup call.
 *
 * It provisions nothing real; a real service would call its broker where
 * this one only computes names and credentials.
 *
 * Build: guest-sdk/c/build plugins/queue-c queue-c.wasm
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <orizuru.h>

static const char *const PLANS[][2] = {
    {"small", "One queue, 100 messages a second"},
    {"large", "Ten queues, 10,000 messages a second; provisioning takes a while"},
};

/* What the plugin remembers about an instance, in the host's ledger. */
typedef struct queue {
    const char *vhost;
    uint64_t retention_hours;
    bool durable;
    double max_rate;      /* messages a second; NAN when unlimited */
    double ready_at;      /* seconds since the epoch */
    const char *simulate; /* "down" or "degraded" makes status say so; NULL when not */
} queue;

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

/* The shortest text that reads back as `value`, in plain notation:
 * 12.5, 100, 0.001. */
static const char *number_text(double value) {
    if (!isfinite(value)) {
        return orizuru_format("%g", value);
    }
    int digits = 1;
    while (digits < 17 && strtod(orizuru_format("%.*e", digits - 1, value), NULL) != value) {
        digits++;
    }
    const char *exponent = strchr(orizuru_format("%.*e", digits - 1, value), 'e');
    int decimals = digits - 1 - atoi(exponent + 1);
    return orizuru_format("%.*f", decimals > 0 ? decimals : 0, value);
}

static const char *queue_json(const queue *q) {
    cJSON *json = cJSON_CreateObject();
    cJSON_AddStringToObject(json, "vhost", q->vhost);
    cJSON_AddNumberToObject(json, "retention_hours", (double)q->retention_hours);
    cJSON_AddBoolToObject(json, "durable", q->durable);
    if (!isnan(q->max_rate)) {
        cJSON_AddNumberToObject(json, "max_rate", q->max_rate);
    }
    cJSON_AddNumberToObject(json, "ready_at", q->ready_at);
    if (q->simulate) {
        cJSON_AddStringToObject(json, "simulate", q->simulate);
    }
    return cJSON_PrintUnformatted(json);
}

static orizuru_error *read_queue(const orizuru_instance *instance, queue *q) {
    *q = (queue){.max_rate = NAN};
    orizuru_field fields[] = {
        ORIZURU_REQUIRED(ORIZURU_STRING("vhost", &q->vhost)),
        ORIZURU_REQUIRED(ORIZURU_U64("retention_hours", &q->retention_hours)),
        ORIZURU_REQUIRED(ORIZURU_BOOL("durable", &q->durable)),
        ORIZURU_F64("max_rate", &q->max_rate),
        ORIZURU_REQUIRED(ORIZURU_F64("ready_at", &q->ready_at)),
        ORIZURU_STRING("simulate", &q->simulate),
    };
    bool present;
    orizuru_error *err = orizuru_instance_data(instance, fields, ORIZURU_COUNT(fields), &present);
    if (err) {
        return err;
    }
    if (!present) {
        return orizuru_failed(
            "instance \"%s\" has no queue data; remove it and create it again", instance->name);
    }
    return NULL;
}

/* Provisions (on paper) and answers what to remember; `delay`, when not
 * NULL, is how many seconds provisioning has left. */
static orizuru_error *provision(const orizuru_instance *instance, const double *delay,
                                orizuru_provisioned *out) {
    const char *plan;
    orizuru_error *err = check_plan(instance->plan, &plan);
    if (err) {
        return err;
    }
    /* What `tsuru service instance add queue NAME -p KEY=VALUE` may set,
     * each with its default. */
    queue q = {.retention_hours = 24, .durable = true, .max_rate = NAN};
    uint64_t provision_seconds = strcmp(plan, "large") == 0 ? 5 : 0;
    orizuru_field fields[] = {
        ORIZURU_U64("retention_hours", &q.retention_hours),
        ORIZURU_U64("provision_seconds", &provision_seconds),
        ORIZURU_STRING("simulate", &q.simulate),
        ORIZURU_BOOL("durable", &q.durable),
        ORIZURU_F64("max_rate", &q.max_rate),
    };
    if ((err = orizuru_instance_parameters(instance, fields, ORIZURU_COUNT(fields)))) {
        return err;
    }
    if (q.retention_hours < 1 || q.retention_hours > 720) {
        return orizuru_invalid("retention_hours is %" PRIu64
                               "; give a number of hours from 1 to 720",
                               q.retention_hours);
    }
    if (!isnan(q.max_rate) && !(q.max_rate > 0 && isfinite(q.max_rate))) {
        return orizuru_invalid("max_rate is %s; give a number of messages a second above 0",
                               number_text(q.max_rate));
    }
    double seconds = delay ? *delay : (double)provision_seconds;
    q.vhost = orizuru_format("/%s", instance->name);
    q.ready_at = (double)time(NULL) + seconds;
    if (seconds > 0) {
        orizuru_provisioned_pending(out);
    } else {
        orizuru_provisioned_ready(out);
    }
    orizuru_provisioned_data(out, queue_json(&q));
    return NULL;
}

/* A new password, as a real broker would be given at bind: 16 random bytes
 * in hex. */
static orizuru_error *new_password(const char **password) {
    unsigned char bytes[16];
    if (getentropy(bytes, sizeof bytes) != 0) {
        return orizuru_failed("no random bytes for a password: %s", strerror(errno));
    }
    char hex[2 * sizeof bytes + 1];
    for (size_t i = 0; i < sizeof bytes; i++) {
        snprintf(hex + 2 * i, 3, "%02x", bytes[i]);
    }
    *password = orizuru_strdup(hex);
    return NULL;
}

static orizuru_error *credentials(const orizuru_instance *instance, const char *user,
                                  orizuru_env *env) {
    queue q;
    const char *password;
    orizuru_error *err = read_queue(instance, &q);
    if (err || (err = new_password(&password))) {
        return err;
    }
    orizuru_env_setf(env, "QUEUE_URL", "amqp://%s:%s@queue.example.com:5672%s", user, password,
                     q.vhost);
    orizuru_env_set(env, "QUEUE_HOST", "queue.example.com");
    orizuru_env_set(env, "QUEUE_PORT", "5672");
    orizuru_env_set(env, "QUEUE_VHOST", q.vhost);
    orizuru_env_set(env, "QUEUE_USER", user);
    orizuru_env_set(env, "QUEUE_PASSWORD", password);
    return NULL;
}

orizuru_error *service_plans(const orizuru_context *context, orizuru_plans *plans) {
    for (size_t i = 0; i < ORIZURU_COUNT(PLANS); i++) {
        orizuru_plan_add(plans, PLANS[i][0], PLANS[i][1]);
    }
    return NULL;
}

orizuru_error *service_create(const orizuru_create_request *request, orizuru_provisioned *out) {
    return provision(&request->instance, NULL, out);
}

orizuru_error *service_update(const orizuru_update_request *request, orizuru_provisioned *out) {
    queue current;
    orizuru_error *err = read_queue(&request->current, &current);
    if (err) {
        return err;
    }
    orizuru_instance next = request->next;
    if (strcmp(next.parameters, "{}") == 0) {
        next.parameters = request->current.parameters;
    }
    /* A change finishes what provisioning had left, and nothing more. */
    double left = fmax(current.ready_at - (double)time(NULL), 0);
    return provision(&next, &left, out);
}

orizuru_error *service_status(const orizuru_instance *instance, const orizuru_context *context,
                              orizuru_status *out) {
    queue q;
    orizuru_error *err = read_queue(instance, &q);
    if (err) {
        return err;
    }
    double left = q.ready_at - (double)time(NULL);
    if (q.simulate && strcmp(q.simulate, "down") == 0) {
        orizuru_status_down(out, "the broker does not answer");
    } else if (q.simulate && strcmp(q.simulate, "degraded") == 0) {
        orizuru_status_custom(out, "degraded: 1 of 2 nodes up");
    } else if (left > 0) {
        orizuru_status_pending(out, "provisioning, about %.0fs left", left);
    } else {
        orizuru_status_up(out);
    }
    return NULL;
}

orizuru_error *service_info(const orizuru_instance *instance, const orizuru_context *context,
                            orizuru_info *info) {
    queue q;
    orizuru_error *err = read_queue(instance, &q);
    if (err) {
        return err;
    }
    orizuru_info_add(info, "Plan", instance->plan ? instance->plan : "small");
    orizuru_info_add(info, "Virtual host", q.vhost);
    orizuru_info_addf(info, "Retention", "%" PRIu64 " hours", q.retention_hours);
    orizuru_info_add(info, "Durable", q.durable ? "yes" : "no");
    if (isnan(q.max_rate)) {
        orizuru_info_add(info, "Max rate", "unlimited");
    } else {
        orizuru_info_addf(info, "Max rate", "%s messages a second", number_text(q.max_rate));
    }
    return NULL;
}

orizuru_error *service_bind_app(const orizuru_instance *instance, const orizuru_app_binding *app,
                                orizuru_env *env) {
    /* What `tsuru service instance bind queue NAME -p KEY=VALUE` may set. */
    const char *prefix = NULL;
    orizuru_field fields[] = {ORIZURU_STRING("prefix", &prefix)};
    orizuru_error *err = orizuru_app_parameters(app, fields, ORIZURU_COUNT(fields));
    if (err || (err = credentials(instance, app->app_name, env))) {
        return err;
    }
    if (prefix) {
        orizuru_env_set(env, "QUEUE_PREFIX", prefix);
    }
    return NULL;
}

orizuru_error *service_unbind_app(const orizuru_instance *instance,
                                  const orizuru_app_binding *app) {
    return NULL;
}

orizuru_error *service_bind_job(const orizuru_instance *instance, const orizuru_job_binding *job,
                                orizuru_env *env) {
    return credentials(instance, orizuru_format("job-%s", job->job_name), env);
}

/* A string, or null when there is none. */
static cJSON *text_or_null(const char *text) {
    return text ? cJSON_CreateString(text) : cJSON_CreateNull();
}

static cJSON *texts(orizuru_strings strings) {
    return cJSON_CreateStringArray(strings.items, (int)strings.len);
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
    cJSON *echo = cJSON_CreateObject();
    cJSON_AddStringToObject(echo, "instance", instance->name);
    cJSON_AddStringToObject(echo, "method", request->method);
    cJSON_AddStringToObject(echo, "path", request->path);
    cJSON_AddItemToObject(echo, "names", texts(orizuru_proxy_query_values(request, "names")));
    const char *note = orizuru_proxy_header(request, "x-backup-note");
    cJSON_AddItemToObject(echo, "header", text_or_null(note));
    /* The SDK ends the body with a NUL, so it reads as text. */
    cJSON_AddStringToObject(echo, "body", (const char *)request->body);
    cJSON_AddItemToObject(echo, "user", text_or_null(context->user));
    cJSON_AddItemToObject(echo, "event_id", text_or_null(context->event_id));
    cJSON_AddItemToObject(echo, "request_id", text_or_null(context->request_id));
    cJSON_AddItemToObject(echo, "pool", text_or_null(context->pool_name));
    cJSON_AddItemToObject(echo, "cluster", text_or_null(context->cluster_name));
    cJSON_AddItemToObject(echo, "cluster_addresses", texts(context->cluster_addresses));
    orizuru_proxy_respond_text(response, 202, cJSON_PrintUnformatted(echo));
    orizuru_proxy_header_add(response, "content-type", "application/json");
    orizuru_proxy_header_add(response, "x-queue-backup", "started");
    return NULL;
}
