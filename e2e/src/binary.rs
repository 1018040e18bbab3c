//! Helpers for spawning the built `gatehouse` binary in tests. (to be written)
