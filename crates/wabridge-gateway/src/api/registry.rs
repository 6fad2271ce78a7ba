//! One table of the `/v1` routes: it builds the router and the OpenAPI document (`/v1/openapi.json`), so
//! the document cannot miss or invent a route. Each module lists its routes as [`Route`]s: method, path,
//! summary, who may call it, the body it takes, and the handler.

use std::sync::Arc;

use axum::Router;
use axum::handler::Handler;
use axum::routing::{MethodFilter, MethodRouter, on};
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::auth::Scope;

/// An HTTP method of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Verb {
    fn filter(self) -> MethodFilter {
        match self {
            Self::Get => MethodFilter::GET,
            Self::Post => MethodFilter::POST,
            Self::Put => MethodFilter::PUT,
            Self::Patch => MethodFilter::PATCH,
            Self::Delete => MethodFilter::DELETE,
        }
    }

    /// The lowercase name OpenAPI uses (`get`, `post`, …).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Post => "post",
            Self::Put => "put",
            Self::Patch => "patch",
            Self::Delete => "delete",
        }
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone.
    Public,
    /// `Authorization: Basic` (the login).
    Basic,
    /// A bearer credential holding this scope.
    Bearer(Scope),
}

/// What a route's request body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    None,
    /// A JSON object, described in `docs/api.md`.
    Json,
    /// Raw bytes with their own Content-Type.
    Binary,
}

/// What the document says of one route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    pub verb: Verb,
    /// The axum path, e.g. `/v1/messages/{id}` (OpenAPI's template syntax too).
    pub path: &'static str,
    pub summary: &'static str,
    pub access: Access,
    pub body: Body,
    /// The success status (200, 201, …).
    pub success: u16,
}

/// A route: its description and its handler.
pub struct Route {
    pub spec: RouteSpec,
    handler: MethodRouter<Arc<AppState>>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route").field("spec", &self.spec).finish_non_exhaustive()
    }
}

impl Route {
    /// A route answering `success` (200 unless [`Self::created`]) with a body of kind `body`.
    pub fn new<H, T>(
        verb: Verb,
        path: &'static str,
        summary: &'static str,
        access: Access,
        body: Body,
        handler: H,
    ) -> Self
    where
        H: Handler<T, Arc<AppState>>,
        T: 'static,
    {
        let spec = RouteSpec { verb, path, summary, access, body, success: 200 };
        let mut handler = on(verb.filter(), handler);
        if body == Body::Binary {
            // Media uploads; every other route takes the router's JSON limit.
            handler = handler.layer(axum::extract::DefaultBodyLimit::max(crate::MEDIA_BODY_LIMIT));
        }
        Self { spec, handler }
    }

    /// The route answers 201 on success.
    #[must_use]
    pub fn created(mut self) -> Self {
        self.spec.success = 201;
        self
    }
}

/// Every `/v1` route.
#[must_use]
pub fn all() -> Vec<Route> {
    let mut routes = super::routes();
    routes.extend(crate::events::routes());
    routes.extend(crate::callbacks::routes());
    routes
}

/// The descriptions of every `/v1` route.
#[must_use]
pub fn specs() -> Vec<RouteSpec> {
    all().into_iter().map(|r| r.spec).collect()
}

/// The router of every `/v1` route. Any other path under `/v1/` is a 404 in the On-Premises error shape
/// (without this, the Cloud-compatible `/{version}/{node}` routes would answer it in the Graph shape).
///
/// A route without a path parameter also answers with a trailing slash (`POST /v1/messages/`), as the
/// On-Premises API did and its clients (Meta's own example collection among them) call it.
pub fn router() -> Router<Arc<AppState>> {
    all()
        .into_iter()
        .fold(Router::new(), |router, r| {
            let router = if r.spec.path.contains('{') {
                router
            } else {
                router.route(&format!("{}/", r.spec.path), r.handler.clone())
            };
            router.route(r.spec.path, r.handler)
        })
        .route("/v1/{*rest}", axum::routing::any(no_such_route))
}

async fn no_such_route(uri: axum::http::Uri) -> crate::api_error::ApiError {
    crate::api_error::ApiError::not_found(format!("no route {} (see GET /v1/openapi.json)", uri.path()))
}

/// The OpenAPI 3.1 document of `routes`.
#[must_use]
pub fn openapi(routes: &[RouteSpec]) -> Value {
    let mut paths = Map::new();
    for r in routes {
        let params: Vec<Value> = r
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut op = json!({
            "summary": r.summary,
            "operationId": format!("{}{}", r.verb.as_str(), r.path.replace(['/', '{', '}', '.'], "_")),
            "parameters": params,
            "responses": {
                r.success.to_string(): {"description": "success",
                    "content": {"application/json": {"schema": {"type": "object"}}}},
                "default": {"description": "an error in the On-Premises shape",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Errors"}}}},
            },
        });
        match r.access {
            Access::Public => op["security"] = json!([]),
            Access::Basic => op["security"] = json!([{"basic": []}]),
            Access::Bearer(scope) => {
                op["security"] = json!([{"bearer": []}]);
                op["x-wabridge-scope"] = json!(format!("{scope:?}").to_lowercase());
            }
        }
        match r.body {
            Body::None => {}
            Body::Json => {
                op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"type": "object"}}}});
            }
            Body::Binary => {
                op["requestBody"] = json!({"required": true,
                    "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}});
            }
        }
        let entry = paths.entry(r.path.to_owned()).or_insert_with(|| json!({}));
        entry[r.verb.as_str()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "wabridge /v1 API (On-Premises compatible)", "version": env!("CARGO_PKG_VERSION"),
                 "description": "See docs/api.md for the bodies of each route."},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic"},
            },
            "schemas": {"Errors": {"type": "object", "required": ["errors"], "properties": {
                "errors": {"type": "array", "items": {"type": "object", "properties": {
                    "code": {"type": "integer"}, "title": {"type": "string"}, "details": {"type": "string"}}}},
                "meta": {"type": "object"}}}},
        },
    })
}

/// `GET /v1/openapi.json`.
pub async fn document() -> axum::Json<Value> {
    axum::Json(openapi(&specs()))
}
