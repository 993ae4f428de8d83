//! `POST /v1/embeddings` and `GET /v1/models`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::HeaderMap;
use switchyard_api::{EmbeddingsRequest, ModelList, ModelObject, Usage};

use super::chat::route_headers;
use super::{admit, fail, ApiError, AppState};
use crate::requestlog::{estimate_tokens, RequestContext};

pub async fn embeddings(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let rt = app.runtime();
    let mut ctx = RequestContext::begin(app.log.clone(), "embeddings", &headers);
    let (principal, req): (_, EmbeddingsRequest) =
        match admit(&app, &rt, &mut ctx, &headers, body).await {
            Ok(admitted) => admitted,
            Err(e) => return fail(ctx, e),
        };
    ctx.set_request(&req.model, false, None);
    ctx.set_user(req.user.as_deref());
    if req.input.is_empty() {
        return fail(
            ctx,
            ApiError::invalid_request("invalid_request", "`input` must not be empty")
                .with_param("input"),
        );
    }
    let plan = match rt.models.plan(&req.model) {
        Ok(plan) => plan,
        Err(e) => return fail(ctx, e.into()),
    };
    let tags = ctx.tags().to_vec();
    let estimate = estimate_tokens(req.input.chars());
    if let Err(e) = rt
        .admission
        .admit_body(&principal, ctx.ticket_mut(), &req.model, estimate, &tags)
        .await
    {
        return fail(ctx, e.into());
    }
    let req = Arc::new(req);
    let result = rt
        .caller
        .call(&rt.models, plan, |m| {
            let req = req.clone();
            async move { m.provider.embeddings(&req, &m.upstream).await }
        })
        .await;
    let out = match result {
        Ok(out) => out,
        Err(e) => {
            ctx.set_failed_call(&e);
            return fail(ctx, e.into());
        }
    };
    ctx.set_route(&out.model, out.attempts);
    let prompt_tokens = match out.value.usage.prompt_tokens {
        0 => estimate_tokens(req.input.chars()),
        n => n,
    };
    ctx.set_usage(&out.model, Usage::new(prompt_tokens, 0));
    let mut response = Json(&out.value).into_response();
    route_headers(response.headers_mut(), &ctx, &out.model, out.attempts);
    ctx.finish_ok(200);
    response
}

pub async fn list_models(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let principal = match app.keys.authenticate(&headers, super::now_ms()) {
        Ok(p) => p,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let rt = app.runtime();
    let allowed = |name: &str| principal.key.as_ref().is_none_or(|k| k.allows_model(name));
    let mut data: Vec<ModelObject> = rt
        .models
        .names()
        .filter(|name| allowed(name))
        .filter_map(|name| rt.models.get(name))
        .map(|m| ModelObject {
            id: m.name.clone(),
            object: "model".to_owned(),
            created: 0,
            owned_by: m.provider_name().to_owned(),
        })
        .collect();
    // Names the gateway resolves itself: load-balanced groups, experiments and `auto`.
    let auto = &rt.config.router.model;
    let virtual_names = rt
        .config
        .model_groups
        .iter()
        .map(|g| &g.name)
        .chain(rt.config.router.experiments.iter().map(|e| &e.model))
        .chain(rt.router.has_tiers().then_some(auto));
    for name in virtual_names.filter(|n| allowed(n)) {
        data.push(ModelObject {
            id: name.clone(),
            object: "model".to_owned(),
            created: 0,
            owned_by: "switchyard".to_owned(),
        });
    }
    Json(ModelList::new(data)).into_response()
}
