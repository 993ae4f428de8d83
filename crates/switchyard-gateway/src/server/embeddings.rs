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
    let mut ctx = RequestContext::begin(app.log.clone(), "embeddings", &headers);
    let req: EmbeddingsRequest = match admit(&app, &mut ctx, &headers, body).await {
        Ok((_, req)) => req,
        Err(e) => return fail(ctx, e),
    };
    ctx.set_request(&req.model, false, None);
    if req.input.is_empty() {
        return fail(
            ctx,
            ApiError::invalid_request("invalid_request", "`input` must not be empty")
                .with_param("input"),
        );
    }
    let plan = match app.models.plan(&req.model) {
        Ok(plan) => plan,
        Err(e) => return fail(ctx, e.into()),
    };
    let req = Arc::new(req);
    let result = app
        .caller
        .call(&app.models, plan, |m| {
            let req = req.clone();
            async move { m.provider.embeddings(&req, &m.upstream).await }
        })
        .await;
    let out = match result {
        Ok(out) => out,
        Err(e) => {
            if let Some(m) = &e.last_model {
                ctx.set_route(m, e.attempts);
            }
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
    if let Err(e) = app.keys.authenticate(&headers) {
        return ApiError::from(e).into_response();
    }
    let data = app
        .models
        .names()
        .filter_map(|name| app.models.get(name))
        .map(|m| ModelObject {
            id: m.name.clone(),
            object: "model".to_owned(),
            created: 0,
            owned_by: m.provider_name().to_owned(),
        })
        .collect();
    Json(ModelList::new(data)).into_response()
}
