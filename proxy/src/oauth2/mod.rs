//! The OAuth2 authorization server endpoints under each protected route:
//! `/oauth2/authorize`, `/oauth2/token`, `/oauth2/introspect`, `/oauth2/revoke` and
//! `/.well-known/oauth-authorization-server`. (to be written)
