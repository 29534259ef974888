/*
 * The tsuru service "{{name}}", as an Orizuru plugin.
 *
 * A starting point: tsuru's fake API, made slightly useful. It offers one
 * plan, takes one parameter, accepts every instance and tells each bound app
 * which instance it got. Every action not defined here answers what the SDK
 * defaults to; <orizuru.h> and the SDK's guide (installed with it, in
 * share/doc/orizuru/README.md) list them all and the capabilities a plugin
 * may be granted (logging, config and secrets, key-value, SQL).
 */
#include <inttypes.h>

#include <orizuru.h>

/* The plans `tsuru service info {{name}}` lists. */
orizuru_error *service_plans(const orizuru_context *context, orizuru_plans *plans) {
    orizuru_plan_add(plans, "default", "The only plan, for now");
    return NULL;
}

/* A new instance: provision it here. Call orizuru_provisioned_pending(out)
 * when that finishes later; what orizuru_provisioned_data keeps, later calls
 * get back in instance->data. */
orizuru_error *service_create(const orizuru_create_request *request, orizuru_provisioned *out) {
    /* What `tsuru service instance add {{name}} NAME -p KEY=VALUE` may set.
     * tsuru sends every value as text; the SDK reads `-p size_mb=256` as a
     * number, and refuses `-p size_mb=lots` or an unknown key with a
     * sentence naming the parameter. */
    uint64_t size_mb = 64; /* the size of the instance, in megabytes */
    orizuru_field fields[] = {ORIZURU_U64("size_mb", &size_mb)};
    orizuru_error *err =
        orizuru_instance_parameters(&request->instance, fields, ORIZURU_COUNT(fields));
    if (err) {
        return err;
    }
    if (size_mb < 1 || size_mb > 4096) {
        return orizuru_invalid("size_mb is %" PRIu64 "; give a size from 1 to 4096 megabytes",
                               size_mb);
    }
    cJSON *data = cJSON_CreateObject();
    cJSON_AddNumberToObject(data, "size_mb", (double)size_mb);
    orizuru_provisioned_data(out, cJSON_PrintUnformatted(data));
    return NULL;
}

/* The env vars an app bound to the instance gets. */
orizuru_error *service_bind_app(const orizuru_instance *instance, const orizuru_app_binding *app,
                                orizuru_env *env) {
    orizuru_env_set(env, "{{env}}_INSTANCE", instance->name);
    orizuru_env_set(env, "{{env}}_APP", app->app_name);
    return NULL;
}
