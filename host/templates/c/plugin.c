/*
 * The tsuru service "{{name}}", as an Orizuru plugin.
 *
 * A starting point: tsuru's fake API, made slightly useful. It offers one
 * plan, accepts every instance and tells each bound app which instance it
 * got. Every action not defined here answers what the SDK defaults to; the
 * SDK's guide, {{sdk}}/c/README.md, lists them all and the capabilities a
 * plugin may be granted (logging, config and secrets, key-value, SQL).
 */
#include <orizuru.h>

/* The plans `tsuru service info {{name}}` lists. */
orizuru_error *service_plans(const orizuru_context *context, orizuru_plans *plans) {
    (void)context;
    orizuru_plan_add(plans, "default", "The only plan, for now");
    return NULL;
}

/* A new instance: provision it here. Call orizuru_provisioned_pending(out)
 * when that finishes later, and orizuru_provisioned_data(out, json) for what
 * later calls need. */
orizuru_error *service_create(const orizuru_create_request *request, orizuru_provisioned *out) {
    (void)request;
    orizuru_provisioned_ready(out);
    return NULL;
}

/* The env vars an app bound to the instance gets. */
orizuru_error *service_bind_app(const orizuru_instance *instance, const orizuru_app_binding *app,
                                orizuru_env *env) {
    orizuru_env_set(env, "{{env}}_INSTANCE", instance->name);
    orizuru_env_set(env, "{{env}}_APP", app->app_name);
    return NULL;
}
