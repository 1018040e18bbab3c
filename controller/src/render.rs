//! `gatehouse render`: translate a manifests directory exactly as standalone would and
//! print the snapshot (stdout) and a status table (stderr). The exit code makes it a CI
//! check for a GitOps repository: 1 when a manifest is broken or any object is not
//! Ready.

use std::io::Write;
use std::path::Path;

use gatehouse_crds::conditions::reason;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::manifests::Manifests;
use crate::translate::{self, ObjectStatus, Options, Output};

/// Render a manifests directory. Returns the process exit code.
pub fn run(dir: &Path, out: &mut dyn Write, err: &mut dyn Write) -> std::io::Result<i32> {
    let manifests = Manifests::read_dir(dir);
    for w in &manifests.warnings {
        writeln!(err, "warning: {w}")?;
    }
    for e in &manifests.errors {
        writeln!(err, "error: {e}")?;
    }
    let output = translate_for_render(&manifests);
    let mut json =
        serde_json::to_vec_pretty(&output.snapshot).expect("a Snapshot serializes to JSON");
    json.push(b'\n');
    out.write_all(&json)?;
    err.write_all(status_table(&output.statuses).as_bytes())?;

    let failing = output
        .statuses
        .iter()
        .filter(|s| counts_as_failure(s))
        .count();
    let code = if manifests.errors.is_empty() && failing == 0 {
        0
    } else {
        writeln!(
            err,
            "{} manifest error(s), {failing} object(s) not Ready",
            manifests.errors.len()
        )?;
        1
    };
    Ok(code)
}

fn translate_for_render(manifests: &Manifests) -> Output {
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    // Generated credentials only matter for clients without a Secret, which render
    // reports as CredentialsPending and leaves out of the snapshot.
    translate::translate(
        &manifests.input,
        &Options::standalone(now),
        &mut rand::rng(),
    )
}

/// A client waiting for its generated Secret is healthy: the controller (or
/// standalone) creates it.
fn counts_as_failure(s: &ObjectStatus) -> bool {
    !s.is_ready() && s.ready().reason != reason::CREDENTIALS_PENDING
}

/// A `kubectl get`-style table of every object's Ready condition.
pub fn status_table(statuses: &[ObjectStatus]) -> String {
    let rows: Vec<[String; 5]> = statuses
        .iter()
        .map(|s| {
            let ready = s.ready();
            [
                s.object.kind.to_string(),
                format!("{}/{}", s.object.namespace, s.object.name),
                ready.status.clone(),
                ready.reason.clone(),
                ready.message.clone(),
            ]
        })
        .collect();
    let header = ["KIND", "NAME", "READY", "REASON", "MESSAGE"].map(str::to_owned);
    let mut widths = [0usize; 4];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row.iter()) {
            *w = (*w).max(cell.len());
        }
    }
    let mut table = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter().zip(row.iter()) {
            table.push_str(&format!("{cell:<w$}  "));
        }
        table.push_str(&row[4]);
        table.push('\n');
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One object of every Gatehouse kind, each with a misspelt field.
    const TYPOS: &str = "apiVersion: gatehouse.dev/v1alpha1
kind: Consumer
metadata: {name: c}
spec: {username: c, customID: x}
---
apiVersion: gatehouse.dev/v1alpha1
kind: OAuth2Client
metadata: {name: app}
spec:
  consumerRef: {name: c}
  name: App
  redirectUris: [https://app.example/cb]
  redirectUri: [https://app.example/cb]
---
apiVersion: gatehouse.dev/v1alpha1
kind: ProtectedRoute
metadata: {name: r}
spec:
  paths: [/api]
  backend: {url: 'http://127.0.0.1:9'}
  oauth2: {scopes: [a], rules: [{path: /, requiredScopes: [a], mehtods: [GET]}]}
---
apiVersion: gatehouse.dev/v1alpha1
kind: OAuth2Policy
metadata: {name: p}
spec:
  targetRefs: [{group: networking.k8s.io, kind: Ingress, name: i}]
  oauth2: {mandatoryScopes: true}
";

    #[test]
    fn an_unknown_field_in_any_gatehouse_kind_fails_render_naming_file_document_and_field() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("typos.yaml"), TYPOS).unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(dir.path(), &mut out, &mut err).unwrap();
        let err = String::from_utf8(err).unwrap();
        assert_eq!(code, 1, "{err}");
        let file = dir.path().join("typos.yaml");
        for (doc, kind, name, field) in [
            (1, "Consumer", "c", "spec.customID"),
            (2, "OAuth2Client", "app", "spec.redirectUri"),
            (3, "ProtectedRoute", "r", "spec.oauth2.rules.0.mehtods"),
            (4, "OAuth2Policy", "p", "spec.oauth2.mandatoryScopes"),
        ] {
            let line = format!(
                "error: {} document {doc}: {kind} \"{name}\": unknown field {field}",
                file.display()
            );
            assert!(
                err.lines().any(|l| l == line),
                "no line {line:?} in:\n{err}"
            );
        }
        // Nothing misspelt reaches the snapshot.
        let snapshot: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(snapshot["routes"], serde_json::json!([]), "{snapshot}");
    }
}
