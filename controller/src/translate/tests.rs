//! Translate unit tests (filled in below).
