//! The one table of tsuru's routes, current and legacy: each route's method,
//! path and [`Action`]. The router is built from it, each answer carries the
//! action of the route it took (for the metrics), and `orizuru call` sends an
//! action on the route today's tsuru uses.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::handler::Handler;
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{MethodFilter, MethodRouter, any, on};

use super::handlers;
use crate::Host;
use crate::model::Action;

/// One route of tsuru's service API, below a service's endpoint.
pub struct Route {
    /// `None`: any method (a proxied call).
    pub method: Option<Method>,
    /// The path, in the router's syntax (`/resources/{name}`).
    pub path: &'static str,
    pub action: Action,
    /// A route of old tsuru or of the 2013 "Building your service" guide,
    /// which today's tsuru no longer sends.
    pub legacy: bool,
    /// The handler, served for the methods it is given.
    serve: fn(Methods) -> MethodRouter<Arc<Host>>,
}

/// The methods a route is served for.
type Methods = Option<MethodFilter>;

/// The handler served for `methods`: those the filter names, or any.
fn serving<H, T>(methods: Methods, handler: H) -> MethodRouter<Arc<Host>>
where
    H: Handler<T, Arc<Host>>,
    T: 'static,
{
    match methods {
        Some(filter) => on(filter, handler),
        None => any(handler),
    }
}

/// Every route of tsuru's service API, the current ones first in the order
/// `orizuru call` lists the actions.
pub static ROUTES: [Route; 16] = [
    Route {
        method: Some(Method::GET),
        path: "/resources/plans",
        action: Action::Plans,
        legacy: false,
        serve: |methods| serving(methods, handlers::plans),
    },
    Route {
        method: Some(Method::POST),
        path: "/resources",
        action: Action::Create,
        legacy: false,
        serve: |methods| serving(methods, handlers::create),
    },
    Route {
        method: Some(Method::PUT),
        path: "/resources/{name}",
        action: Action::Update,
        legacy: false,
        serve: |methods| serving(methods, handlers::update),
    },
    Route {
        method: Some(Method::DELETE),
        path: "/resources/{name}",
        action: Action::Remove,
        legacy: false,
        serve: |methods| serving(methods, handlers::remove),
    },
    Route {
        method: Some(Method::GET),
        path: "/resources/{name}",
        action: Action::Info,
        legacy: false,
        serve: |methods| serving(methods, handlers::info),
    },
    Route {
        method: Some(Method::GET),
        path: "/resources/{name}/status",
        action: Action::Status,
        legacy: false,
        serve: |methods| serving(methods, handlers::status),
    },
    Route {
        method: Some(Method::POST),
        path: "/resources/{name}/bind-app",
        action: Action::BindApp,
        legacy: false,
        serve: |methods| serving(methods, handlers::bind_app),
    },
    Route {
        method: Some(Method::DELETE),
        path: "/resources/{name}/bind-app",
        action: Action::UnbindApp,
        legacy: false,
        serve: |methods| serving(methods, handlers::unbind_app),
    },
    Route {
        method: Some(Method::PUT),
        path: "/resources/{name}/binds/jobs/{job}",
        action: Action::BindJob,
        legacy: false,
        serve: |methods| serving(methods, handlers::bind_job),
    },
    Route {
        method: Some(Method::DELETE),
        path: "/resources/{name}/binds/jobs/{job}",
        action: Action::UnbindJob,
        legacy: false,
        serve: |methods| serving(methods, handlers::unbind_job),
    },
    Route {
        method: None,
        path: "/resources/{name}/{*path}",
        action: Action::Proxy,
        legacy: false,
        serve: |methods| serving(methods, handlers::proxy_instance),
    },
    Route {
        method: None,
        path: "/authenticated-resources/{*path}",
        action: Action::Proxy,
        legacy: false,
        serve: |methods| serving(methods, handlers::proxy_service),
    },
    Route {
        method: Some(Method::POST),
        path: "/resources/{name}",
        action: Action::BindApp,
        legacy: true,
        serve: |methods| serving(methods, handlers::legacy_bind),
    },
    Route {
        method: Some(Method::POST),
        path: "/resources/{name}/bind",
        action: Action::BindApp,
        legacy: true,
        serve: |methods| serving(methods, handlers::bind_fallback),
    },
    Route {
        method: Some(Method::DELETE),
        path: "/resources/{name}/bind",
        action: Action::UnbindApp,
        legacy: true,
        serve: |methods| serving(methods, handlers::unbind_legacy),
    },
    Route {
        method: Some(Method::DELETE),
        path: "/resources/{name}/hostname/{host}",
        action: Action::UnbindApp,
        legacy: true,
        serve: |methods| serving(methods, handlers::legacy_unbind_host),
    },
];

/// The route today's tsuru sends each action on, one per action but a
/// proxied call (which goes to any path), in the table's order.
pub fn current_routes() -> impl Iterator<Item = &'static Route> {
    ROUTES
        .iter()
        .filter(|route| !route.legacy && route.method.is_some())
}

impl Route {
    /// The route today's tsuru sends `action` on; `None` for a proxied call.
    pub fn current(action: Action) -> Option<&'static Route> {
        current_routes().find(|route| route.action == action)
    }

    /// The path with each `{param}` replaced by what `value` gives for it
    /// (percent-encoding it is the caller's business).
    pub fn path_with<E>(
        &self,
        mut value: impl FnMut(&str) -> Result<String, E>,
    ) -> Result<String, E> {
        let mut path = String::new();
        for segment in self.path.split('/').skip(1) {
            path.push('/');
            match segment
                .strip_prefix('{')
                .and_then(|rest| rest.strip_suffix('}'))
            {
                Some(param) => path.push_str(&value(param.trim_start_matches('*'))?),
                None => path.push_str(segment),
            }
        }
        Ok(path)
    }

    /// This route's handler, whose answers carry the route's action.
    fn method_router(&'static self) -> MethodRouter<Arc<Host>> {
        let tagged = middleware::from_fn_with_state(self, tag);
        match &self.method {
            // Any method is served through the fallback, which only `layer` reaches.
            None => (self.serve)(None).layer(tagged),
            Some(method) => match MethodFilter::try_from(method.clone()) {
                Ok(filter) => (self.serve)(Some(filter)).route_layer(tagged),
                // Every method of the table has a filter (the tests check
                // it); one without would serve nothing rather than anything.
                Err(_) => MethodRouter::new(),
            },
        }
    }
}

/// Every route of the table, with the handlers for what it leaves out: any
/// other path is a call to the service's own API, and a method a route does
/// not take is refused.
pub fn resources() -> Router<Arc<Host>> {
    ROUTES
        .iter()
        .fold(Router::new(), |router, route| {
            router.route(route.path, route.method_router())
        })
        .fallback(handlers::proxy_service)
        .method_not_allowed_fallback(handlers::method_not_allowed)
}

/// Puts the route's action in its answer, for the metrics to read. A HEAD
/// answered by a GET route is not that route's action (tsuru never sends
/// one) and stays a proxied call, as an answer without an action is.
async fn tag(State(route): State<&'static Route>, request: Request, next: Next) -> Response {
    let taken = route
        .method
        .as_ref()
        .is_none_or(|method| method == request.method());
    let mut response = next.run(request).await;
    if taken {
        response.extensions_mut().insert(route.action);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_of_the_table_can_be_routed() {
        for route in &ROUTES {
            if let Some(method) = &route.method {
                assert!(
                    MethodFilter::try_from(method.clone()).is_ok(),
                    "{method} {}",
                    route.path
                );
            }
        }
    }

    #[test]
    fn every_action_but_a_proxied_call_has_one_current_route() {
        let actions = [
            Action::Plans,
            Action::Info,
            Action::Status,
            Action::Create,
            Action::Update,
            Action::Remove,
            Action::BindApp,
            Action::UnbindApp,
            Action::BindJob,
            Action::UnbindJob,
        ];
        for action in actions {
            let current: Vec<_> = current_routes()
                .filter(|route| route.action == action)
                .collect();
            assert_eq!(current.len(), 1, "{}", action.as_str());
            assert!(Route::current(action).is_some(), "{}", action.as_str());
        }
        assert!(Route::current(Action::Proxy).is_none());
    }

    #[test]
    fn paths_are_filled_in_param_by_param() {
        let route = Route::current(Action::BindJob).expect("a route");
        let path = route.path_with(|param| Ok::<_, ()>(format!("<{param}>")));
        assert_eq!(path, Ok("/resources/<name>/binds/jobs/<job>".to_owned()));
    }
}
