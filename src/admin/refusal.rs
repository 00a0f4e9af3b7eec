//! Why an admin operation was not carried out, as the admin listener answers it: the API
//! as JSON, the console as a page, with one status and one message for both.

use axum::http::StatusCode;

use super::ops::ObjectError;
use crate::registry::ReloadError;
use crate::store::StoreError;

pub(super) struct Refusal {
    pub status: StatusCode,
    /// The API's error code.
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            code,
            message: message.into(),
        }
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Refusal {
        match e {
            StoreError::NotFound => Refusal::new(StatusCode::NOT_FOUND, "not_found", "not found"),
            StoreError::Conflict(m) => Refusal::new(StatusCode::CONFLICT, "conflict", m),
            StoreError::Invalid(m) => Refusal::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m),
            StoreError::Limit(m) => Refusal::new(StatusCode::FORBIDDEN, "plan_limit", m),
            other => {
                tracing::error!(code = "PG0404", error = %other, "admin store failure");
                Refusal::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the store failed; see the gateway's log",
                )
            }
        }
    }
}

impl From<ReloadError> for Refusal {
    fn from(e: ReloadError) -> Refusal {
        match e {
            ReloadError::Store(s) => s.into(),
            other => Refusal::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", other.to_string()),
        }
    }
}

impl From<ObjectError> for Refusal {
    fn from(e: ObjectError) -> Refusal {
        match e {
            ObjectError::Input(m) => Refusal::new(StatusCode::BAD_REQUEST, "bad_request", m),
            ObjectError::ConfigManaged(_) => Refusal::new(StatusCode::CONFLICT, "config_managed", e.to_string()),
            ObjectError::Store(s) => s.into(),
            ObjectError::Refused(r) => r.into(),
        }
    }
}
