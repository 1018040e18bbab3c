//! gRPC specifics at the edge: recognising a gRPC call, and answering the proxy's own
//! refusals the way gRPC clients understand them — a trailers-only response (HTTP 200,
//! `grpc-status`, `grpc-message`) instead of a JSON body they would report as an
//! opaque protocol error.

use http::header::CONTENT_TYPE;
use http::HeaderMap;

use crate::error::Rejection;
use crate::respond::Reply;

/// gRPC status codes the proxy itself answers with (grpc/doc/statuscodes.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Code {
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    Unimplemented = 12,
    Unavailable = 14,
    Unauthenticated = 16,
}

/// Whether the request is a gRPC call (`content-type: application/grpc[+proto|...]`).
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            let ct = ct.trim_start();
            ct.len() >= 16
                && ct[..16].eq_ignore_ascii_case("application/grpc")
                && matches!(ct.as_bytes().get(16), None | Some(b'+') | Some(b';'))
        })
}

/// The gRPC status for a refusal (the mapping gRPC gateways use for HTTP statuses).
pub fn code(rejection: &Rejection) -> Code {
    match rejection {
        Rejection::TokenMissing { .. } | Rejection::TokenInvalid { .. } => Code::Unauthenticated,
        Rejection::InsufficientScope { .. } => Code::PermissionDenied,
        Rejection::NoRoute => Code::Unimplemented,
        Rejection::BodyTooLarge => Code::ResourceExhausted,
        Rejection::BadRequest | Rejection::BadPath(_) => Code::InvalidArgument,
        Rejection::UpstreamTimeout | Rejection::BodyTimeout => Code::DeadlineExceeded,
        Rejection::NotReady
        | Rejection::StoreUnavailable
        | Rejection::NoEndpoints
        | Rejection::UpstreamOverloaded
        | Rejection::UpstreamUnavailable => Code::Unavailable,
    }
}

/// The trailers-only gRPC answer to `rejection` (built by [`Reply::grpc`]).
pub fn reply(rejection: &Rejection) -> Reply {
    Reply::grpc(code(rejection) as u16, &rejection.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ct(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, value.parse().unwrap());
        h
    }

    #[test]
    fn grpc_calls_are_recognised_by_content_type() {
        assert!(is_grpc(&ct("application/grpc")));
        assert!(is_grpc(&ct("application/grpc+proto")));
        assert!(is_grpc(&ct("Application/GRPC; charset=x")));
        assert!(!is_grpc(&ct("application/grpc-web")));
        assert!(!is_grpc(&ct("application/json")));
        assert!(!is_grpc(&HeaderMap::new()));
    }

    #[test]
    fn refusals_map_to_the_grpc_codes_clients_expect() {
        let realm = || "r".to_owned();
        assert_eq!(code(&Rejection::token_missing(&realm())) as u8, 16);
        assert_eq!(code(&Rejection::token_invalid(&realm())) as u8, 16);
        assert_eq!(
            code(&Rejection::insufficient_scope(&realm(), "s".into())) as u8,
            7
        );
        assert_eq!(code(&Rejection::NoEndpoints) as u8, 14);
        assert_eq!(code(&Rejection::UpstreamUnavailable) as u8, 14);
        assert_eq!(code(&Rejection::StoreUnavailable) as u8, 14);
    }

    #[test]
    fn the_response_is_trailers_only_with_status_and_message() {
        let resp = reply(&Rejection::token_missing("r")).into_response();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "application/grpc");
        assert_eq!(resp.headers()["grpc-status"], "16");
        assert_eq!(resp.headers()["grpc-message"], "access token missing");
        assert!(http_body::Body::is_end_stream(resp.body()));
    }

    #[test]
    fn the_message_is_percent_encoded_and_a_percent_sign_too() {
        let resp = Reply::grpc(14, "50% down\nnow").into_response();
        assert_eq!(resp.headers()["grpc-status"], "14");
        assert_eq!(resp.headers()["grpc-message"], "50%25 down%0Anow");
    }
}
