//! Real HTTP upstreams on loopback for tests (echo, slow, large bodies). (to be written)
