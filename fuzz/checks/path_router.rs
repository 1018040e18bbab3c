//! Path and host normalisation and route lookup: never a panic, and a matched
//! route's prefix always covers the normalised path it matched.
//!
//! Shared by the cargo-fuzz target of the same name and by the corpus replay test
//! (`tests/fuzz_corpus.rs`), so the target always compiles with the product.
use gatehouse_proxy::path::{normalize_path, normalize_prefix, prefix_covers};
use gatehouse_proxy::router::{normalize_host, Router};
use gatehouse_proxy::Snapshot;

const SNAPSHOT: &[u8] = br#"{"format":1,"revision":"f","routes":[
 {"id":"a","paths":["/api"],"upstream":{"endpoints":["http://127.0.0.1:1"]}},
 {"id":"b","paths":["/api/admin"],"hosts":["*.example.com"],"upstream":{"endpoints":["http://127.0.0.1:1"]}},
 {"id":"c","paths":["/"],"hosts":["exact.test"],"upstream":{"endpoints":["http://127.0.0.1:1"]}}]}"#;

pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (host, path) = text.split_once(' ').unwrap_or(("", text));
    let snapshot = Snapshot::from_json(SNAPSHOT).expect("literal snapshot");
    let router = Router::new(&snapshot.routes);
    let host = normalize_host(host);
    let Ok(path) = normalize_path(path) else {
        return;
    };
    let path = path.matched();
    if let Some(m) = router.lookup(Some(&host), path) {
        let route = &snapshot.routes[m.index];
        assert!(route
            .paths
            .iter()
            .any(|p| prefix_covers(&normalize_prefix(p), path)));
        let _ = m.suffix(path);
    }
}
