//! One handler per tsuru route, current and legacy (the table in `routes`
//! names which serves what): read the request, ask the service, answer by
//! tsuru's reading rules.

use std::sync::Arc;

use axum::Json;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::answer::{self, ApiError};
use super::auth::{Authed, Claimed};
use super::decode::Fields;
use super::extract::{
    Named, NamesInstance, Payload, RawBody, Tsuru, check_instance_name, with_body,
};
use crate::model::{AppBinding, Context, Instance, JobBinding, ProxyRequest, Refusal};
use crate::service::{ActionError, Bindee, InstanceUpdate, Service};

#[derive(Deserialize)]
pub(super) struct InstancePath {
    name: String,
}

#[derive(Deserialize)]
pub(super) struct JobPath {
    name: String,
    job: String,
}

#[derive(Deserialize)]
pub(super) struct HostPath {
    name: String,
    host: String,
}

#[derive(Deserialize)]
pub(super) struct ProxyPath {
    name: String,
    path: String,
}

/// Every path with an instance in it names it `name`.
macro_rules! names_instance {
    ($($path:ty),*) => {
        $(impl NamesInstance for $path {
            fn instance(&self) -> &str {
                &self.name
            }
        })*
    };
}

names_instance!(InstancePath, JobPath, HostPath, ProxyPath);

type Answer = Result<Response, ApiError>;

pub(super) async fn plans(Authed(service): Authed, Tsuru(mut context): Tsuru, uri: Uri) -> Answer {
    if context.pool_name.is_none() {
        context.pool_name = uri.query().and_then(|query| {
            form_urlencoded::parse(query.as_bytes())
                .find(|(key, value)| key == "pool" && !value.is_empty())
                .map(|(_, pool)| pool.into_owned())
        });
    }
    match service.plans(context).await {
        Ok(plans) => Ok(Json(plans).into_response()),
        Err(ActionError::Refused {
            refusal: Refusal::MissingParams(names),
            ..
        }) => Ok(answer::missing_params(&names)),
        Err(error) => Err(error.into()),
    }
}

pub(super) async fn create(
    Authed(service): Authed,
    Tsuru(context): Tsuru,
    Payload(fields): Payload,
) -> Answer {
    let context = with_body(context, &fields);
    let name = fields.required("name", "the instance to create")?;
    check_instance_name(&name)?;
    let instance = Instance {
        name,
        plan: fields.one("plan"),
        team: fields.one("team"),
        description: fields.one("description"),
        tags: fields.many("tags"),
        parameters: fields.parameters().clone(),
        data: None,
    };
    Ok(answer::created(service.create(instance, context).await?))
}

pub(super) async fn info(
    Authed(service): Authed,
    Tsuru(context): Tsuru,
    Named(path): Named<InstancePath>,
) -> Answer {
    Ok(Json(service.info(&path.name, context).await?).into_response())
}

pub(super) async fn update(
    Authed(service): Authed,
    Tsuru(context): Tsuru,
    Named(path): Named<InstancePath>,
    Payload(fields): Payload,
) -> Answer {
    let context = with_body(context, &fields);
    let update = InstanceUpdate {
        plan: fields.one("plan"),
        team: fields.one("team"),
        description: fields.one("description"),
        tags: fields.many("tags"),
        parameters: fields.parameters().clone(),
    };
    service.update(&path.name, update, context).await?;
    Ok(StatusCode::OK.into_response())
}

pub(super) async fn remove(
    Authed(service): Authed,
    Tsuru(context): Tsuru,
    Named(path): Named<InstancePath>,
    Payload(fields): Payload,
) -> Answer {
    service
        .remove(&path.name, with_body(context, &fields))
        .await?;
    Ok(StatusCode::OK.into_response())
}

pub(super) async fn status(
    Authed(service): Authed,
    Tsuru(context): Tsuru,
    Named(path): Named<InstancePath>,
) -> Answer {
    Ok(answer::status(service.status(&path.name, context).await?))
}

/// An app binding as tsuru's bind and unbind bodies describe it. `legacy`
/// names the fields old tsuru and the 2013 guide used for the app instead of
/// `app-name` (its host name), tried in order.
fn app_binding(fields: &Fields, legacy: &[&str]) -> Result<AppBinding, ApiError> {
    let app_name = fields
        .one("app-name")
        .or_else(|| legacy.iter().find_map(|name| fields.one(name)))
        .ok_or_else(|| {
            ApiError::bad_request(
                "the field \"app-name\" is missing; it names the app to bind or unbind",
            )
        })?;
    let mut app_hosts = fields.many("app-hosts");
    if app_hosts.is_empty() {
        app_hosts.extend(
            fields
                .one("app-host")
                .or_else(|| legacy.iter().find_map(|name| fields.one(name))),
        );
    }
    Ok(AppBinding {
        app_name,
        app_hosts,
        app_internal_hosts: fields.many("app-internal-hosts"),
        app_pool_name: fields.one("app-pool-name"),
        app_pool_provisioner: fields.one("app-pool-provisioner"),
        app_cluster_name: fields.one("app-cluster-name"),
        app_cluster_provisioner: fields.one("app-cluster-provisioner"),
        app_cluster_addresses: fields.many("app-cluster-addresses"),
        parameters: fields.parameters().clone(),
    })
}

/// Binds the app a bind body names; `legacy` as in [`app_binding`].
async fn bind_app_with(
    service: &Arc<Service>,
    name: &str,
    context: Context,
    fields: &Fields,
    legacy: &[&str],
) -> Answer {
    let app = app_binding(fields, legacy)?;
    let env = service
        .bind(name, Bindee::App(app), with_body(context, fields))
        .await?;
    Ok(answer::env(env))
}

/// Unbinds the app an unbind body names; `legacy` as in [`app_binding`].
async fn unbind_app_with(
    service: &Arc<Service>,
    name: &str,
    context: Context,
    fields: &Fields,
    legacy: &[&str],
) -> Answer {
    let app = app_binding(fields, legacy)?;
    service
        .unbind(name, Bindee::App(app), with_body(context, fields))
        .await?;
    Ok(StatusCode::OK.into_response())
}

pub(super) async fn bind_app(
    Authed(service): Authed,
    Tsuru(context): Tsuru,
    Named(path): Named<InstancePath>,
    Payload(fields): Payload,
) -> Answer {
    bind_app_with(&service, &path.name, context, &fields, &[]).await
}

/// `POST /resources/{name}/bind`: tsuru's fallback when bind-app answered
/// 404, and old tsuru's per-unit bind (`app-host`, `unit-host`).
pub(super) async fn bind_fallback(
    Authed(service): Authed,
    Tsuru(context): Tsuru,
    Named(path): Named<InstancePath>,
    Payload(fields): Payload,
) -> Answer {
    bind_app_with(&service, &path.name, context, &fields, &["app-host"]).await
}

/// `POST /resources/{name}` of the 2013 guide: bind the app `app-hostname`.
pub(super) async fn legacy_bind(
    Authed(service): Authed,
    Tsuru(context): Tsuru,
    Named(path): Named<InstancePath>,
    Payload(fields): Payload,
) -> Answer {
    bind_app_with(
        &service,
        &path.name,
        context,
        &fields,
        &["app-hostname", "hostname", "unit-hostname"],
    )
    .await
}

pub(super) async fn unbind_app(
    Authed(service): Authed,
    Tsuru(context): Tsuru,
    Named(path): Named<InstancePath>,
    Payload(fields): Payload,
) -> Answer {
    unbind_app_with(&service, &path.name, context, &fields, &[]).await
}

/// `DELETE /resources/{name}/bind`: old tsuru's unbind, per unit.
pub(super) async fn unbind_legacy(
    Authed(service): Authed,
    Tsuru(context): Tsuru,
    Named(path): Named<InstancePath>,
    Payload(fields): Payload,
) -> Answer {
    unbind_app_with(&service, &path.name, context, &fields, &["app-host"]).await
}

/// `DELETE /resources/{name}/hostname/{host}` of the 2013 guide.
pub(super) async fn legacy_unbind_host(
    Authed(service): Authed,
    Tsuru(context): Tsuru,
    Named(path): Named<HostPath>,
    Payload(fields): Payload,
) -> Answer {
    let app = AppBinding {
        app_name: path.host.clone(),
        app_hosts: vec![path.host],
        ..AppBinding::default()
    };
    service
        .unbind(&path.name, Bindee::App(app), with_body(context, &fields))
        .await?;
    Ok(StatusCode::OK.into_response())
}

fn job_binding(path: JobPath, fields: &Fields) -> JobBinding {
    JobBinding {
        job_name: path.job,
        job_pool_name: fields.one("job-pool-name"),
        job_cluster_name: fields.one("job-cluster-name"),
    }
}

pub(super) async fn bind_job(
    Authed(service): Authed,
    Tsuru(context): Tsuru,
    Named(path): Named<JobPath>,
    Payload(fields): Payload,
) -> Answer {
    let name = path.name.clone();
    let job = job_binding(path, &fields);
    let env = service
        .bind(&name, Bindee::Job(job), with_body(context, &fields))
        .await?;
    Ok(answer::env(env))
}

pub(super) async fn unbind_job(
    Authed(service): Authed,
    Tsuru(context): Tsuru,
    Named(path): Named<JobPath>,
    Payload(fields): Payload,
) -> Answer {
    let name = path.name.clone();
    let job = job_binding(path, &fields);
    service
        .unbind(&name, Bindee::Job(job), with_body(context, &fields))
        .await?;
    Ok(StatusCode::OK.into_response())
}

/// The parts of a request a proxied call carries, as they came.
fn proxy_request(
    method: &Method,
    path: String,
    uri: &Uri,
    headers: &HeaderMap,
    body: RawBody,
) -> ProxyRequest {
    ProxyRequest {
        method: method.as_str().to_owned(),
        path,
        query: uri
            .query()
            .map(|query| {
                form_urlencoded::parse(query.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default(),
        headers: headers
            .iter()
            .filter(|(name, _)| {
                *name != axum::http::header::AUTHORIZATION && !answer::is_hop_by_hop(name.as_str())
            })
            .filter_map(|(name, value)| {
                Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
            })
            .collect(),
        body: body.0.to_vec(),
    }
}

pub(super) async fn proxy_instance(
    Authed(service): Authed,
    Tsuru(context): Tsuru,
    Named(path): Named<ProxyPath>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: RawBody,
) -> Answer {
    let request = proxy_request(&method, format!("/{}", path.path), &uri, &headers, body);
    let response = service.proxy(Some(&path.name), request, context).await?;
    Ok(answer::proxied(service.id(), response))
}

/// A service-level call (`tsuru service proxy`), at any path the route
/// table does not name; the plugin sees the path below the service's endpoint.
pub(super) async fn proxy_service(
    Authed(service): Authed,
    Tsuru(context): Tsuru,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: RawBody,
) -> Answer {
    let path = uri.path().to_owned();
    to_service(&service, context, &method, path, &uri, &headers, body).await
}

/// `/services/{id}/`, which the nested routes do not match: the service the
/// path names, at its root.
pub(super) async fn proxy_service_root(
    Authed(service): Authed,
    Tsuru(context): Tsuru,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: RawBody,
) -> Answer {
    to_service(
        &service,
        context,
        &method,
        "/".to_owned(),
        &uri,
        &headers,
        body,
    )
    .await
}

/// Forwards a service-level request to the service's plugin as `path`.
async fn to_service(
    service: &Service,
    context: Context,
    method: &Method,
    path: String,
    uri: &Uri,
    headers: &HeaderMap,
    body: RawBody,
) -> Answer {
    let request = proxy_request(method, path, uri, headers, body);
    let response = service.proxy(None, request, context).await?;
    Ok(answer::proxied(service.id(), response))
}

/// A method the route does not take. The request is still counted under
/// the service it claims to be for, as every other request is.
pub(super) async fn method_not_allowed(_: Claimed, method: Method, uri: Uri) -> ApiError {
    answer::method_not_allowed(method.as_str(), uri.path(), "tsuru")
}
