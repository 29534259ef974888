/* The glue between the bindings wit-bindgen generates for the contract and
 * the plugin's service_* actions: requests in, answers out, and the
 * default of every action the plugin leaves out. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "plugin_with_capabilities.h"

typedef plugin_with_capabilities_string_t wit_string;
typedef plugin_with_capabilities_option_string_t wit_option_string;
typedef plugin_with_capabilities_list_string_t wit_strings;
typedef plugin_with_capabilities_list_tuple2_string_string_t wit_pairs;
typedef orizuru_service_types_error_t wit_error;

/* ---- The defaults every SDK gives (CONTRACT.md), for the actions left out ---- */

__attribute__((weak)) orizuru_error *service_plans(const orizuru_context *context,
                                                   orizuru_plans *plans) {
    return NULL;
}

__attribute__((weak)) orizuru_error *service_create(const orizuru_create_request *request,
                                                    orizuru_provisioned *out) {
    return NULL;
}

__attribute__((weak)) orizuru_error *service_update(const orizuru_update_request *request,
                                                    orizuru_provisioned *out) {
    return orizuru_unsupported();
}

__attribute__((weak)) orizuru_error *service_remove(const orizuru_instance *instance,
                                                    const orizuru_context *context) {
    return NULL;
}

__attribute__((weak)) orizuru_error *service_info(const orizuru_instance *instance,
                                                  const orizuru_context *context,
                                                  orizuru_info *info) {
    return NULL;
}

__attribute__((weak)) orizuru_error *service_status(const orizuru_instance *instance,
                                                    const orizuru_context *context,
                                                    orizuru_status *out) {
    return NULL;
}

__attribute__((weak)) orizuru_error *service_bind_app(const orizuru_instance *instance,
                                                      const orizuru_app_binding *app,
                                                      orizuru_env *env) {
    return orizuru_unsupported();
}

__attribute__((weak)) orizuru_error *service_unbind_app(const orizuru_instance *instance,
                                                        const orizuru_app_binding *app) {
    return NULL;
}

__attribute__((weak)) orizuru_error *service_bind_job(const orizuru_instance *instance,
                                                      const orizuru_job_binding *job,
                                                      orizuru_env *env) {
    return orizuru_unsupported();
}

__attribute__((weak)) orizuru_error *service_unbind_job(const orizuru_instance *instance,
                                                        const orizuru_job_binding *job) {
    return NULL;
}

__attribute__((weak)) orizuru_error *service_proxy(const orizuru_instance *instance,
                                                   const orizuru_proxy_request *request,
                                                   orizuru_proxy_response *response) {
    return orizuru_unsupported();
}

/* ---- Requests in: NUL-terminated copies in the call arena -------------------- */

static const char *text(const wit_string *string) {
    return orizuru__strndup((const char *)string->ptr, string->len);
}

static const char *optional(const wit_option_string *option) {
    return option->is_some ? text(&option->val) : NULL;
}

static orizuru_strings strings(const wit_strings *list) {
    const char **items = orizuru__calloc(list->len + 1, sizeof *items);
    for (size_t i = 0; i < list->len; i++) {
        items[i] = text(&list->ptr[i]);
    }
    return (orizuru_strings){items, list->len};
}

static orizuru_pairs pairs(const wit_pairs *list) {
    orizuru_pair *items = orizuru__calloc(list->len + 1, sizeof *items);
    for (size_t i = 0; i < list->len; i++) {
        items[i].name = text(&list->ptr[i].f0);
        items[i].value = text(&list->ptr[i].f1);
    }
    return (orizuru_pairs){items, list->len};
}

static orizuru_context context_of(const orizuru_service_types_context_t *c) {
    return (orizuru_context){
        .user = optional(&c->user),
        .event_id = optional(&c->event_id),
        .request_id = optional(&c->request_id),
        .pool_name = optional(&c->pool_name),
        .pool_provisioner = optional(&c->pool_provisioner),
        .cluster_name = optional(&c->cluster_name),
        .cluster_provisioner = optional(&c->cluster_provisioner),
        .cluster_addresses = strings(&c->cluster_addresses),
        .cluster_kube_config = optional(&c->cluster_kube_config),
    };
}

/* The generated bindings have no free function for a bare context. */
static void context_free(orizuru_service_types_context_t *c) {
    plugin_with_capabilities_option_string_free(&c->user);
    plugin_with_capabilities_option_string_free(&c->event_id);
    plugin_with_capabilities_option_string_free(&c->request_id);
    plugin_with_capabilities_option_string_free(&c->pool_name);
    plugin_with_capabilities_option_string_free(&c->pool_provisioner);
    plugin_with_capabilities_option_string_free(&c->cluster_name);
    plugin_with_capabilities_option_string_free(&c->cluster_provisioner);
    plugin_with_capabilities_list_string_free(&c->cluster_addresses);
    plugin_with_capabilities_option_string_free(&c->cluster_kube_config);
}

static orizuru_instance instance_of(const orizuru_service_types_instance_t *i) {
    return (orizuru_instance){
        .name = text(&i->name),
        .plan = optional(&i->plan),
        .team = optional(&i->team),
        .description = optional(&i->description),
        .tags = strings(&i->tags),
        .parameters = text(&i->parameters),
        .data = optional(&i->data),
    };
}

static orizuru_app_binding app_of(const orizuru_service_types_app_binding_t *a) {
    return (orizuru_app_binding){
        .app_name = text(&a->app_name),
        .app_hosts = strings(&a->app_hosts),
        .app_internal_hosts = strings(&a->app_internal_hosts),
        .app_pool_name = optional(&a->app_pool_name),
        .app_pool_provisioner = optional(&a->app_pool_provisioner),
        .app_cluster_name = optional(&a->app_cluster_name),
        .app_cluster_provisioner = optional(&a->app_cluster_provisioner),
        .app_cluster_addresses = strings(&a->app_cluster_addresses),
        .parameters = text(&a->parameters),
        .context = context_of(&a->context),
    };
}

static orizuru_job_binding job_of(const orizuru_service_types_job_binding_t *j) {
    return (orizuru_job_binding){
        .job_name = text(&j->job_name),
        .job_pool_name = optional(&j->job_pool_name),
        .job_cluster_name = optional(&j->job_cluster_name),
        .context = context_of(&j->context),
    };
}

/* ---- Answers out --------------------------------------------------------------
 * The answers point into the call arena; the post-return functions below,
 * which the component model calls once the host has read an answer, free
 * the arena (they replace the generated ones, which would free each
 * string on its own). */

static wit_string wit_text(const char *value) {
    return (wit_string){(uint8_t *)value, value ? strlen(value) : 0};
}

static wit_option_string wit_optional(const char *value) {
    wit_option_string option = {.is_some = value != NULL};
    if (value) {
        option.val = wit_text(value);
    }
    return option;
}

static wit_pairs wit_pairs_of(const orizuru_pair *items, size_t len) {
    plugin_with_capabilities_tuple2_string_string_t *list =
        orizuru__calloc(len ? len : 1, sizeof *list);
    for (size_t i = 0; i < len; i++) {
        list[i].f0 = wit_text(items[i].name);
        list[i].f1 = wit_text(items[i].value);
    }
    return (wit_pairs){list, len};
}

/* Closes what the action opened, then fills `err` and answers false when
 * the action failed. */
static bool answer(orizuru_error *error, wit_error *err) {
    orizuru__action_end();
    if (!error) {
        return true;
    }
    switch (error->kind) {
    case ORIZURU__INVALID:
        err->tag = ORIZURU_SERVICE_TYPES_ERROR_INVALID;
        err->val.invalid = wit_text(error->message);
        break;
    case ORIZURU__NOT_FOUND:
        err->tag = ORIZURU_SERVICE_TYPES_ERROR_NOT_FOUND;
        err->val.not_found = wit_text(error->message);
        break;
    case ORIZURU__CONFLICT:
        err->tag = ORIZURU_SERVICE_TYPES_ERROR_CONFLICT;
        err->val.conflict = wit_text(error->message);
        break;
    case ORIZURU__NOT_READY:
        err->tag = ORIZURU_SERVICE_TYPES_ERROR_NOT_READY;
        err->val.not_ready = wit_text(error->message);
        break;
    case ORIZURU__FAILED:
        err->tag = ORIZURU_SERVICE_TYPES_ERROR_FAILED;
        err->val.failed = wit_text(error->message);
        break;
    case ORIZURU__UNSUPPORTED:
        err->tag = ORIZURU_SERVICE_TYPES_ERROR_UNSUPPORTED;
        break;
    case ORIZURU__MISSING_PARAMS: {
        wit_string *names = orizuru__calloc(error->names.len + 1, sizeof *names);
        for (size_t i = 0; i < error->names.len; i++) {
            names[i] = wit_text(error->names.items[i]);
        }
        err->tag = ORIZURU_SERVICE_TYPES_ERROR_MISSING_PARAMS;
        err->val.missing_params = (wit_strings){names, error->names.len};
        break;
    }
    }
    return false;
}

static wit_option_string provisioned_data(const orizuru_provisioned *out) {
    return wit_optional(out->data);
}

static void provisioned(const orizuru_provisioned *out,
                        orizuru_service_types_provisioned_t *ret) {
    if (out->pending) {
        ret->tag = ORIZURU_SERVICE_TYPES_PROVISIONED_PENDING;
        ret->val.pending = provisioned_data(out);
    } else {
        ret->tag = ORIZURU_SERVICE_TYPES_PROVISIONED_READY;
        ret->val.ready = provisioned_data(out);
    }
}

static void env_answer(const orizuru_env *env, orizuru_service_types_env_t *ret) {
    wit_pairs list = wit_pairs_of(env->items, env->len);
    ret->ptr = list.ptr;
    ret->len = list.len;
}

/* ---- The exports ----------------------------------------------------------------- */

bool exports_orizuru_service_handler_plans(orizuru_service_types_context_t *ctx,
                                           exports_orizuru_service_handler_list_plan_t *ret,
                                           wit_error *err) {
    orizuru__call_start();
    orizuru_context context = context_of(ctx);
    context_free(ctx);
    orizuru_plans plans = {0};
    if (!answer(service_plans(&context, &plans), err)) {
        return false;
    }
    orizuru_service_types_plan_t *list = orizuru__calloc(plans.len + 1, sizeof *list);
    for (size_t i = 0; i < plans.len; i++) {
        list[i].name = wit_text(plans.items[i].name);
        list[i].description = wit_text(plans.items[i].value);
    }
    ret->ptr = list;
    ret->len = plans.len;
    return true;
}

bool exports_orizuru_service_handler_create(orizuru_service_types_create_request_t *req,
                                            orizuru_service_types_provisioned_t *ret,
                                            wit_error *err) {
    orizuru__call_start();
    orizuru_create_request request = {
        .instance = instance_of(&req->instance),
        .context = context_of(&req->context),
    };
    orizuru_service_types_create_request_free(req);
    orizuru_provisioned out = {0};
    if (!answer(service_create(&request, &out), err)) {
        return false;
    }
    provisioned(&out, ret);
    return true;
}

bool exports_orizuru_service_handler_update(orizuru_service_types_update_request_t *req,
                                            orizuru_service_types_provisioned_t *ret,
                                            wit_error *err) {
    orizuru__call_start();
    orizuru_update_request request = {
        .current = instance_of(&req->current),
        .next = instance_of(&req->next),
        .context = context_of(&req->context),
    };
    orizuru_service_types_update_request_free(req);
    orizuru_provisioned out = {0};
    if (!answer(service_update(&request, &out), err)) {
        return false;
    }
    provisioned(&out, ret);
    return true;
}

bool exports_orizuru_service_handler_remove(orizuru_service_types_instance_t *inst,
                                            orizuru_service_types_context_t *ctx,
                                            wit_error *err) {
    orizuru__call_start();
    orizuru_instance instance = instance_of(inst);
    orizuru_context context = context_of(ctx);
    orizuru_service_types_instance_free(inst);
    context_free(ctx);
    return answer(service_remove(&instance, &context), err);
}

bool exports_orizuru_service_handler_info(orizuru_service_types_instance_t *inst,
                                          orizuru_service_types_context_t *ctx,
                                          exports_orizuru_service_handler_list_info_item_t *ret,
                                          wit_error *err) {
    orizuru__call_start();
    orizuru_instance instance = instance_of(inst);
    orizuru_context context = context_of(ctx);
    orizuru_service_types_instance_free(inst);
    context_free(ctx);
    orizuru_info info = {0};
    if (!answer(service_info(&instance, &context, &info), err)) {
        return false;
    }
    orizuru_service_types_info_item_t *list = orizuru__calloc(info.len + 1, sizeof *list);
    for (size_t i = 0; i < info.len; i++) {
        list[i].label = wit_text(info.items[i].name);
        list[i].value = wit_text(info.items[i].value);
    }
    ret->ptr = list;
    ret->len = info.len;
    return true;
}

bool exports_orizuru_service_handler_status(orizuru_service_types_instance_t *inst,
                                            orizuru_service_types_context_t *ctx,
                                            orizuru_service_types_instance_status_t *ret,
                                            wit_error *err) {
    orizuru__call_start();
    orizuru_instance instance = instance_of(inst);
    orizuru_context context = context_of(ctx);
    orizuru_service_types_instance_free(inst);
    context_free(ctx);
    orizuru_status out = {.kind = ORIZURU__UP};
    if (!answer(service_status(&instance, &context, &out), err)) {
        return false;
    }
    switch (out.kind) {
    case ORIZURU__UP:
        ret->tag = ORIZURU_SERVICE_TYPES_INSTANCE_STATUS_UP;
        break;
    case ORIZURU__PENDING:
        ret->tag = ORIZURU_SERVICE_TYPES_INSTANCE_STATUS_PENDING;
        ret->val.pending = wit_text(out.text);
        break;
    case ORIZURU__DOWN:
        ret->tag = ORIZURU_SERVICE_TYPES_INSTANCE_STATUS_DOWN;
        ret->val.down = wit_text(out.text);
        break;
    case ORIZURU__CUSTOM:
        ret->tag = ORIZURU_SERVICE_TYPES_INSTANCE_STATUS_CUSTOM;
        ret->val.custom = wit_text(out.text);
        break;
    }
    return true;
}

bool exports_orizuru_service_handler_bind_app(orizuru_service_types_instance_t *inst,
                                              orizuru_service_types_app_binding_t *app,
                                              orizuru_service_types_env_t *ret, wit_error *err) {
    orizuru__call_start();
    orizuru_instance instance = instance_of(inst);
    orizuru_app_binding binding = app_of(app);
    orizuru_service_types_instance_free(inst);
    orizuru_service_types_app_binding_free(app);
    orizuru_env env = {0};
    if (!answer(service_bind_app(&instance, &binding, &env), err)) {
        return false;
    }
    env_answer(&env, ret);
    return true;
}

bool exports_orizuru_service_handler_unbind_app(orizuru_service_types_instance_t *inst,
                                                orizuru_service_types_app_binding_t *app,
                                                wit_error *err) {
    orizuru__call_start();
    orizuru_instance instance = instance_of(inst);
    orizuru_app_binding binding = app_of(app);
    orizuru_service_types_instance_free(inst);
    orizuru_service_types_app_binding_free(app);
    return answer(service_unbind_app(&instance, &binding), err);
}

bool exports_orizuru_service_handler_bind_job(orizuru_service_types_instance_t *inst,
                                              orizuru_service_types_job_binding_t *job,
                                              orizuru_service_types_env_t *ret, wit_error *err) {
    orizuru__call_start();
    orizuru_instance instance = instance_of(inst);
    orizuru_job_binding binding = job_of(job);
    orizuru_service_types_instance_free(inst);
    orizuru_service_types_job_binding_free(job);
    orizuru_env env = {0};
    if (!answer(service_bind_job(&instance, &binding, &env), err)) {
        return false;
    }
    env_answer(&env, ret);
    return true;
}

bool exports_orizuru_service_handler_unbind_job(orizuru_service_types_instance_t *inst,
                                                orizuru_service_types_job_binding_t *job,
                                                wit_error *err) {
    orizuru__call_start();
    orizuru_instance instance = instance_of(inst);
    orizuru_job_binding binding = job_of(job);
    orizuru_service_types_instance_free(inst);
    orizuru_service_types_job_binding_free(job);
    return answer(service_unbind_job(&instance, &binding), err);
}

bool exports_orizuru_service_handler_proxy(exports_orizuru_service_handler_instance_t *maybe_inst,
                                           orizuru_service_types_proxy_request_t *req,
                                           orizuru_service_types_proxy_response_t *ret,
                                           wit_error *err) {
    orizuru__call_start();
    orizuru_instance instance;
    const orizuru_instance *which = NULL;
    if (maybe_inst) {
        instance = instance_of(maybe_inst);
        which = &instance;
        orizuru_service_types_instance_free(maybe_inst);
    }
    uint8_t *body = orizuru__alloc(req->body.len + 1);
    if (req->body.len) {
        memcpy(body, req->body.ptr, req->body.len);
    }
    body[req->body.len] = '\0';
    orizuru_proxy_request request = {
        .method = text(&req->method),
        .path = text(&req->path),
        .query = pairs(&req->query),
        .headers = pairs(&req->headers),
        .body = body,
        .body_len = req->body.len,
        .context = context_of(&req->context),
    };
    orizuru_service_types_proxy_request_free(req);
    orizuru_proxy_response response = {.status = 200, .body = (const uint8_t *)""};
    if (!answer(service_proxy(which, &request, &response), err)) {
        return false;
    }
    ret->status = response.status;
    ret->headers = wit_pairs_of(response.headers, response.len);
    ret->body.ptr = (uint8_t *)response.body;
    ret->body.len = response.body_len;
    return true;
}

/* ---- Post-return: the host has read the answer; free the call's memory ---------- */

#define POST_RETURN(action, wit_name)                                                       \
    __attribute__((__export_name__("cabi_post_orizuru:service/handler@0.1.0#" wit_name))) \
    void __wasm_export_exports_orizuru_service_handler_##action##_post_return(uint8_t *ret) { \
        (void)ret;                                                                          \
        orizuru__arena_reset();                                                             \
    }

POST_RETURN(plans, "plans")
POST_RETURN(create, "create")
POST_RETURN(update, "update")
POST_RETURN(remove, "remove")
POST_RETURN(info, "info")
POST_RETURN(status, "status")
POST_RETURN(bind_app, "bind-app")
POST_RETURN(unbind_app, "unbind-app")
POST_RETURN(bind_job, "bind-job")
POST_RETURN(unbind_job, "unbind-job")
POST_RETURN(proxy, "proxy")
