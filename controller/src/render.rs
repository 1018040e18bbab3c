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
