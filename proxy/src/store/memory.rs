//! In-memory token store (to be written).
