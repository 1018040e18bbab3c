//! The checked-in CRD manifests in `crds/yaml/` must be exactly what the Rust types
//! generate. Regenerate with `GATEHOUSE_UPDATE_CRDS=1 cargo test -p gatehouse-crds`.

use std::path::PathBuf;

fn yaml_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("yaml")
}

#[test]
fn checked_in_crd_yaml_matches_the_rust_types() {
    let update = std::env::var_os("GATEHOUSE_UPDATE_CRDS").is_some();
    let mut stale = Vec::new();
    for (file, crd) in gatehouse_crds::crds() {
        let path = yaml_dir().join(file);
        let want = gatehouse_crds::crd_yaml(&crd);
        if update {
            std::fs::write(&path, &want).expect("crds/yaml is writable");
            continue;
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        if have != want {
            stale.push(file);
        }
    }
    assert!(
        stale.is_empty(),
        "stale CRD YAML {stale:?}: run `GATEHOUSE_UPDATE_CRDS=1 cargo test -p gatehouse-crds`"
    );
}

#[test]
fn crds_are_namespaced_in_the_gatehouse_category_with_status() {
    for (_, crd) in gatehouse_crds::crds() {
        assert_eq!(crd.spec.group, "gatehouse.dev");
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(
            crd.spec.names.categories.as_deref(),
            Some(&["gatehouse".to_owned()][..])
        );
        assert!(!crd
            .spec
            .names
            .short_names
            .clone()
            .unwrap_or_default()
            .is_empty());
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(version
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some());
        let columns: Vec<_> = version
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        for want in ["Ready", "Reason", "Age"] {
            assert!(
                columns.contains(&want),
                "{} lacks column {want}",
                crd.spec.names.kind
            );
        }
    }
}

/// The `status.conditions` list is a map keyed by `type`, so server-side apply merges
/// conditions per type instead of replacing the list.
#[test]
fn conditions_are_a_list_map_keyed_by_type() {
    for (_, crd) in gatehouse_crds::crds() {
        let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
        let conditions =
            &schema["openAPIV3Schema"]["properties"]["status"]["properties"]["conditions"];
        assert_eq!(
            conditions["x-kubernetes-list-type"], "map",
            "{}",
            crd.spec.names.kind
        );
        assert_eq!(
            conditions["x-kubernetes-list-map-keys"],
            serde_json::json!(["type"])
        );
    }
}

#[test]
fn cross_field_rules_are_cel_validations() {
    let yaml = gatehouse_crds::all_crds_yaml();
    for rule in [
        "public clients cannot use the client_credentials grant",
        "set exactly one of service or url",
        "every rules[].requiredScopes entry must be listed in scopes",
        "set username, customId or both",
    ] {
        assert!(yaml.contains(rule), "missing CEL rule: {rule}");
    }
}

#[test]
fn schema_defaults_match_kong() {
    let crd = gatehouse_crds::crds().remove(2).1;
    let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
    let oauth2 =
        &schema["openAPIV3Schema"]["properties"]["spec"]["properties"]["oauth2"]["properties"];
    assert_eq!(oauth2["tokenExpiration"]["default"], 7200);
    assert_eq!(oauth2["refreshTokenTtl"]["default"], 1_209_600);
    assert_eq!(oauth2["authorizationCode"]["default"], true);
    assert_eq!(oauth2["pkce"]["default"], "lax");
}
