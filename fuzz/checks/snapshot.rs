//! The snapshot decoder (file and Redis sources): any bytes give a snapshot or an
//! error; a decoded snapshot compiles into a router and re-encodes to itself.
//!
//! Shared by the cargo-fuzz target of the same name and by the corpus replay test
//! (`tests/fuzz_corpus.rs`), so the target always compiles with the product.
use gatehouse_proxy::router::Router;
use gatehouse_proxy::Snapshot;

pub fn check(data: &[u8]) {
    if let Ok(snapshot) = Snapshot::from_json(data) {
        let _ = Router::new(&snapshot.routes);
        let again = Snapshot::from_json(&snapshot.to_json()).expect("own encoding decodes");
        assert_eq!(again.to_json(), snapshot.to_json());
    }
}
