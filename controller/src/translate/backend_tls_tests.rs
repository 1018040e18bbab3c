//! BackendTLSPolicy and `backend.tls` translation tests.
