//! Redis token store (to be written).
