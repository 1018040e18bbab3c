//! Reading a directory of multi-document YAML manifests (standalone and render mode):
//! Secrets, ConfigMaps, Services, EndpointSlices, Ingresses, Gateway API kinds (incl. BackendTLSPolicy) and the Gatehouse kinds
//! become a translate [`Input`]; other kinds are ignored with one warning per kind. Every problem names its file and document number.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::collections::HashSet;

use gatehouse_crds::gateway_api::{
    BackendTlsPolicy, Gateway, GatewayClass, HttpRoute, ReferenceGrant,
};
use gatehouse_crds::{Consumer, OAuth2Client, OAuth2Policy, ProtectedRoute, API_VERSION};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use serde::Deserialize;

use crate::translate::Input;

/// A problem with one manifest document (or file). Documents are numbered from 1.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{}: cannot read: {source}", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: cannot list directory: {source}", dir.display())]
    ListDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} document {index}: {source}", file.display())]
    Parse {
        file: PathBuf,
        index: usize,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("{} document {index}: {what}", file.display())]
    Invalid {
        file: PathBuf,
        index: usize,
        what: String,
    },
}

/// Where an object came from, for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub index: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} document {}", self.file.display(), self.index)
    }
}

/// The result of reading manifests: the objects found, warnings for documents that
/// were skipped, and errors. Callers decide what errors mean (standalone keeps its
/// last good config; render fails).
#[derive(Debug, Default)]
pub struct Manifests {
    pub input: Input,
    pub warnings: Vec<String>,
    pub errors: Vec<ManifestError>,
}

impl Manifests {
    /// Read every `*.yaml` / `*.yml` file directly in `dir`, in file-name order.
    pub fn read_dir(dir: &Path) -> Manifests {
        let mut loader = Loader::default();
        match manifest_files(dir) {
            Ok(files) => {
                for file in files {
                    match std::fs::read_to_string(&file) {
                        Ok(text) => loader.add_str(&file, &text),
                        Err(source) => loader.out.errors.push(ManifestError::Read { file, source }),
                    }
                }
            }
            Err(source) => loader.out.errors.push(ManifestError::ListDir {
                dir: dir.to_owned(),
                source,
            }),
        }
        loader.out
    }

    /// Read manifests from in-memory documents (the embedded quickstart), each named
    /// like a file for messages.
    pub fn read_strs<'a>(docs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Manifests {
        let mut loader = Loader::default();
        for (name, text) in docs {
            loader.add_str(Path::new(name), text);
        }
        loader.out
    }
}

/// The manifest files in `dir`, sorted by name (deterministic load order).
pub fn manifest_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let is_yaml = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e == "yaml" || e == "yml");
        // Editors leave hidden swap/backup files around; never read them.
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if is_yaml && !hidden && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypeMeta {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    metadata: Meta,
}

#[derive(Deserialize, Default)]
struct Meta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
}

const GATEWAY_V1: &str = "gateway.networking.k8s.io/v1";
const GATEWAY_V1BETA1: &str = "gateway.networking.k8s.io/v1beta1";

#[derive(Default)]
struct Loader {
    out: Manifests,
    /// Unknown kinds already warned about.
    warned: HashSet<String>,
    /// (kind, namespace, name) → where it was first seen.
    seen: HashMap<(String, String, String), Origin>,
}

impl Loader {
    fn add_str(&mut self, file: &Path, text: &str) {
        for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let index = i + 1;
            let value = match serde_yaml::Value::deserialize(doc) {
                Ok(v) => v,
                Err(source) => {
                    self.out.errors.push(ManifestError::Parse {
                        file: file.to_owned(),
                        index,
                        source,
                    });
                    // A syntax error ends the stream: later documents cannot be trusted.
                    break;
                }
            };
            if value.is_null() {
                continue; // empty document, e.g. a trailing `---`
            }
            let origin = Origin {
                file: file.to_owned(),
                index,
            };
            if let Err(what) = self.add_value(value, &origin) {
                self.out.errors.push(ManifestError::Invalid {
                    file: file.to_owned(),
                    index,
                    what,
                });
            }
        }
    }

    fn add_value(&mut self, value: serde_yaml::Value, origin: &Origin) -> Result<(), String> {
        let meta: TypeMeta = serde_yaml::from_value(value.clone()).map_err(|e| e.to_string())?;
        if meta.api_version.is_empty() || meta.kind.is_empty() {
            return Err("apiVersion and kind are required".to_owned());
        }
        let known = matches!(
            (meta.api_version.as_str(), meta.kind.as_str()),
            ("v1", "Secret")
                | ("v1", "Service")
                | ("v1", "ConfigMap")
                | ("discovery.k8s.io/v1", "EndpointSlice")
                | ("networking.k8s.io/v1", "Ingress")
                | (API_VERSION, "Consumer")
                | (API_VERSION, "OAuth2Client")
                | (API_VERSION, "ProtectedRoute")
                | (API_VERSION, "OAuth2Policy")
                | (
                    GATEWAY_V1,
                    "GatewayClass"
                        | "Gateway"
                        | "HTTPRoute"
                        | "ReferenceGrant"
                        | "BackendTLSPolicy"
                )
                | (GATEWAY_V1BETA1, "ReferenceGrant")
        );
        if !known {
            // One warning per unknown kind, not one per document.
            let kind = format!("{} {}", meta.api_version, meta.kind);
            if self.warned.insert(kind.clone()) {
                self.out.warnings.push(format!(
                    "{origin}: ignoring {kind} (and any further {} documents): not a kind Gatehouse reads",
                    meta.kind
                ));
            }
            return Ok(());
        }
        let Some(name) = meta.metadata.name.clone().filter(|n| !n.is_empty()) else {
            return Err(format!("{} has no metadata.name", meta.kind));
        };
        let namespace = meta
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let key = (meta.kind.clone(), namespace.clone(), name.clone());
        if let Some(first) = self.seen.get(&key) {
            return Err(format!(
                "{} {namespace}/{name} is already defined at {first}",
                meta.kind
            ));
        }
        let input = &mut self.out.input;
        match meta.kind.as_str() {
            "Secret" => input
                .secrets
                .push(strict::<Secret>("Secret", &name, value)?),
            "Service" => input
                .services
                .push(strict::<Service>("Service", &name, value)?),
            "Consumer" => input
                .consumers
                .push(strict::<Consumer>("Consumer", &name, value)?),
            "OAuth2Client" => {
                input
                    .clients
                    .push(strict::<OAuth2Client>("OAuth2Client", &name, value)?)
            }
            "ProtectedRoute" => {
                input
                    .routes
                    .push(strict::<ProtectedRoute>("ProtectedRoute", &name, value)?)
            }
            "OAuth2Policy" => {
                input
                    .policies
                    .push(strict::<OAuth2Policy>("OAuth2Policy", &name, value)?)
            }
            "EndpointSlice" => {
                input
                    .endpoint_slices
                    .push(strict::<EndpointSlice>("EndpointSlice", &name, value)?)
            }
            "Ingress" => input
                .ingresses
                .push(strict::<Ingress>("Ingress", &name, value)?),
            "GatewayClass" => {
                input
                    .gateway_classes
                    .push(strict::<GatewayClass>("GatewayClass", &name, value)?)
            }
            "Gateway" => input
                .gateways
                .push(strict::<Gateway>("Gateway", &name, value)?),
            "HTTPRoute" => input
                .http_routes
                .push(strict::<HttpRoute>("HTTPRoute", &name, value)?),
            "ConfigMap" => input
                .config_maps
                .push(strict::<ConfigMap>("ConfigMap", &name, value)?),
            "BackendTLSPolicy" => input.backend_tls_policies.push(strict::<BackendTlsPolicy>(
                "BackendTLSPolicy",
                &name,
                value,
            )?),
            "ReferenceGrant" => input.reference_grants.push(strict::<ReferenceGrant>(
                "ReferenceGrant",
                &name,
                value,
            )?),
            _ => unreachable!("filtered by `known` above"),
        }
        self.seen.insert(key, origin.clone());
        Ok(())
    }
}

/// Decode a document, refusing any field serde would skip: a misspelt
/// `requiredScopes` must not silently become "no scope required", and an HTTPRoute
/// filter Gatehouse does not model must not silently become "no filter". (The types
/// keep accepting unknown fields for the in-cluster watcher, where the API server prunes
/// them and a newer CRD must not make an object undecodable.)
fn strict<T: serde::de::DeserializeOwned>(
    kind: &str,
    name: &str,
    v: serde_yaml::Value,
) -> Result<Arc<T>, String> {
    let mut unknown = Vec::new();
    let decoded: T = serde_ignored::deserialize(v, |path| {
        // `?` marks an `Option` the k8s-openapi types wrap their specs in: not a field.
        let path = path
            .to_string()
            .split('.')
            .filter(|segment| *segment != "?")
            .collect::<Vec<_>>()
            .join(".");
        // The derived kinds skip these two; the loader has already checked them.
        if path != "apiVersion" && path != "kind" {
            unknown.push(path);
        }
    })
    .map_err(|e| format!("{kind} {name:?}: {e}"))?;
    if !unknown.is_empty() {
        let ours = matches!(
            kind,
            "Consumer" | "OAuth2Client" | "ProtectedRoute" | "OAuth2Policy"
        );
        return Err(format!(
            "{kind} {name:?}: unknown field{} {}{}",
            if unknown.len() == 1 { "" } else { "s" },
            unknown.join(", "),
            if ours {
                ""
            } else {
                " (a typo, or a field of this kind that Gatehouse does not implement)"
            }
        ));
    }
    Ok(Arc::new(decoded))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
apiVersion: gatehouse.dev/v1alpha1
kind: Consumer
metadata:
  name: shoeflyshoe
spec:
  username: shoeflyshoe
---
apiVersion: v1
kind: Secret
metadata:
  name: creds
data:
  client_id: c2hvZS1mbHktc2hvZQ==
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ignored
---
"#;

    #[test]
    fn reads_our_kinds_and_secrets_and_warns_about_others() {
        let m = Manifests::read_strs([("a.yaml", GOOD)]);
        assert!(m.errors.is_empty(), "{:?}", m.errors);
        assert_eq!(m.input.consumers.len(), 1);
        assert_eq!(m.input.secrets.len(), 1);
        let data = m.input.secrets[0].data.as_ref().unwrap();
        assert_eq!(data["client_id"].0, b"shoe-fly-shoe");
        assert_eq!(m.warnings.len(), 1);
        assert!(
            m.warnings[0].contains("a.yaml document 3"),
            "{}",
            m.warnings[0]
        );
        assert!(m.warnings[0].contains("Deployment"));
    }

    #[test]
    fn errors_name_the_file_and_document() {
        let bad = "apiVersion: gatehouse.dev/v1alpha1\nkind: Consumer\nmetadata: {name: a}\nspec: {}\n---\napiVersion: gatehouse.dev/v1alpha1\nkind: ProtectedRoute\nmetadata: {name: r}\nspec: {paths: 5}\n";
        let m = Manifests::read_strs([("routes.yaml", bad)]);
        assert_eq!(m.errors.len(), 1);
        let msg = m.errors[0].to_string();
        assert!(
            msg.starts_with("routes.yaml document 2: ProtectedRoute \"r\""),
            "{msg}"
        );
        assert_eq!(m.input.consumers.len(), 1);
    }

    #[test]
    fn unknown_fields_in_our_kinds_are_errors_naming_file_document_and_path() {
        let text = "apiVersion: gatehouse.dev/v1alpha1\nkind: Consumer\nmetadata: {name: a}\nspec: {username: a}\n---\napiVersion: gatehouse.dev/v1alpha1\nkind: ProtectedRoute\nmetadata: {name: r}\nspec:\n  paths: [/api]\n  backend: {url: 'http://127.0.0.1:1'}\n  oauth2:\n    rules:\n      - path: /admin\n        requiredScopes: [admin]\n        method: [DELETE]\n";
        let m = Manifests::read_strs([("routes.yaml", text)]);
        let msgs: Vec<String> = m.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(msgs.len(), 1, "{msgs:?}");
        assert!(
            msgs[0].starts_with("routes.yaml document 2: ProtectedRoute \"r\": unknown field"),
            "{}",
            msgs[0]
        );
        assert!(
            msgs[0].contains("spec.oauth2.rules.0.method"),
            "{}",
            msgs[0]
        );
        assert!(m.input.routes.is_empty());
        assert_eq!(m.input.consumers.len(), 1);
    }

    #[test]
    fn unknown_fields_in_kubernetes_and_gateway_api_kinds_are_errors_too() {
        // `matchs` and `rule` are typos that would otherwise drop a match or every rule.
        let text = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: web}\nspec:\n  rules:\n    - matchs: [{path: {value: /admin}}]\n---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web}\nspec:\n  rule: []\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  ports: [{port: 80}]\n";
        let m = Manifests::read_strs([("web.yaml", text)]);
        let msgs: Vec<String> = m.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        assert!(
            msgs[0].starts_with("web.yaml document 1: HTTPRoute \"web\": unknown field spec.rules.0.matchs (a typo, or a field of this kind that Gatehouse does not implement)"),
            "{}",
            msgs[0]
        );
        assert!(
            msgs[1].starts_with("web.yaml document 2: Ingress \"web\": unknown field spec.rule"),
            "{}",
            msgs[1]
        );
        assert!(m.input.http_routes.is_empty() && m.input.ingresses.is_empty());
        assert_eq!(m.input.services.len(), 1);
    }

    #[test]
    fn yaml_syntax_errors_and_duplicates_are_reported() {
        let m = Manifests::read_strs([
            ("a.yaml", GOOD),
            ("b.yaml", "apiVersion: gatehouse.dev/v1alpha1\nkind: Consumer\nmetadata:\n  name: shoeflyshoe\nspec: {username: x}\n"),
            ("c.yaml", "kind: [unclosed\n"),
            ("d.yaml", "metadata: {name: x}\n"),
        ]);
        let msgs: Vec<String> = m.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(msgs.len(), 3, "{msgs:?}");
        assert!(
            msgs[0].contains("b.yaml document 1")
                && msgs[0].contains("already defined at a.yaml document 1")
        );
        assert!(msgs[1].starts_with("c.yaml document 1"));
        assert!(msgs[2].contains("apiVersion and kind are required"));
    }

    #[test]
    fn reads_only_yaml_files_of_a_directory_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        let second = "apiVersion: gatehouse.dev/v1alpha1\nkind: Consumer\nmetadata: {name: second}\nspec: {username: s}\n";
        std::fs::write(dir.path().join("b.yml"), second).unwrap();
        std::fs::write(dir.path().join("a.yaml"), GOOD).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not yaml: [").unwrap();
        std::fs::write(dir.path().join(".a.yaml.swp"), "garbage: [").unwrap();
        let m = Manifests::read_dir(dir.path());
        assert!(m.errors.is_empty(), "{:?}", m.errors);
        let names: Vec<_> = m
            .input
            .consumers
            .iter()
            .map(|c| c.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, vec!["shoeflyshoe", "second"]);
    }
}
