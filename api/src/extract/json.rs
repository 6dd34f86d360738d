//! A JSON body extractor whose rejections are problems: a body that does not parse, has the
//! wrong content type or an unknown field gets a 400 / 415 / 422 naming what is wrong, in the
//! API's one error shape.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::problem::{FieldError, Problem};

/// `axum::Json` with problem rejections.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rejection) => Err(problem(rejection)),
        }
    }
}

fn problem(rejection: JsonRejection) -> Problem {
    match rejection {
        JsonRejection::JsonDataError(e) => {
            // serde's message names the field: "unknown field `colour`, expected …" or
            // "settings.brandColor: invalid type …".
            let text = e.body_text();
            let detail = text
                .split_once(": ")
                .map(|(_, d)| d.to_owned())
                .unwrap_or(text);
            let (path, message) = match detail.split_once(": ") {
                Some((f, m)) if !f.contains(' ') => (Some(f.to_owned()), m.to_owned()),
                _ => (None, detail),
            };
            // "unknown field `colour`, expected …" names the field itself.
            let unknown = message
                .strip_prefix("unknown field `")
                .and_then(|rest| rest.split_once('`'))
                .map(|(name, _)| name.to_owned());
            let field = match (path, unknown) {
                (Some(p), Some(u)) if p != u && !p.ends_with(&format!(".{u}")) => {
                    format!("{p}.{u}")
                }
                (Some(p), _) => p,
                (None, Some(u)) => u,
                (None, None) => "body".to_owned(),
            };
            Problem::validation(vec![FieldError::new(field, message)])
        }
        JsonRejection::JsonSyntaxError(e) => Problem::bad_request("invalid_json", e.body_text()),
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Payload too large",
                "the body is larger than the API accepts (2 MiB)",
            )
        }
        JsonRejection::MissingJsonContentType(_) => Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Unsupported media type",
            "send the body as `Content-Type: application/json`",
        ),
        other => Problem::bad_request("invalid_body", other.body_text()),
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}
