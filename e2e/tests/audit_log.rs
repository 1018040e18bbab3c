//! The audit log (`--audit-log <path>`): one JSON line per security event, written by
//! a real proxy on a loopback port while a client goes through issued, refused,
//! replayed, reused and revoked tokens; the file never holds a secret.

mod proxy_support;

use std::sync::Arc;
use std::time::Duration;

use gatehouse_proxy::audit::AuditTarget;
use gatehouse_proxy::store::memory::MemoryStore;
use gatehouse_proxy::store::Digest;
use proxy_support::*;

const PROVISION_KEY: &str = "provision-key-never-logged";
const FWD: [(&str, &str); 1] = [("x-forwarded-proto", "https")];

fn snapshot() -> gatehouse_proxy::config::Snapshot {
    let mut route = mk_route(
        "default/stepon",
        &["/stepon"],
        &["http://127.0.0.1:9".into()],
    );
    route.strip_path = true;
    let mut oauth = mk_oauth();
    oauth.enable_authorization_code = true;
    oauth.enable_password_grant = true;
    oauth.enable_client_credentials = true;
    oauth.accept_http_if_already_terminated = true;
    oauth.provision_key_sha256 = Some(Digest::of(PROVISION_KEY.as_bytes()).to_hex());
    oauth.scopes = vec!["steps".into()];
    route.oauth2 = Some(oauth);
    mk_snapshot(vec![route])
}

/// The audit lines written so far, parsed (waits for the writer thread).
/// The audit file's lines once it holds at least `at_least` of them and every event
/// named in `events` (the writer is asynchronous; a deadline, not a measurement).
async fn lines(path: &std::path::Path, at_least: usize, events: &[&str]) -> Vec<serde_json::Value> {
    for _ in 0..500 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        // Only complete lines: the writer may be in the middle of one.
        let parsed: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let has = |e: &&str| parsed.iter().any(|p| p["event"] == **e);
        if parsed.len() >= at_least && events.iter().all(has) {
            // Every line that is there is JSON.
            for l in text.lines().take(parsed.len()) {
                serde_json::from_str::<serde_json::Value>(l).expect("every audit line is JSON");
            }
            return parsed;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "fewer than {at_least} audit lines or not all of {events:?} in {}",
        path.display()
    );
}

#[tokio::test]
async fn security_events_are_audited_one_json_line_each_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let target = AuditTarget::File(path.clone());
    let proxy = Proxy::start_with(snapshot(), Arc::new(MemoryStore::new(1000)), |a| {
        a.audit_log = target;
    })
    .await;
    let token_url = proxy.url("/stepon/oauth2/token");
    // The client secret is the word "secret": look for it as a JSON value.
    let mut secrets: Vec<String> = vec!["\"secret\"".into(), PROVISION_KEY.into()];

    // 1. Client authentication fails (wrong secret).
    let r = post_form(
        &token_url,
        "grant_type=client_credentials&client_id=shoe-fly-shoe&client_secret=wrong-secret-xyz",
        &FWD,
    )
    .await;
    assert_eq!(r.json()["error"], "invalid_client", "{r:?}");
    secrets.push("wrong-secret-xyz".into());

    // 2. Password grant: tokens issued.
    let r = post_form(
        &token_url,
        &format!("grant_type=password&client_id=shoe-fly-shoe&client_secret=secret&provision_key={PROVISION_KEY}&authenticated_userid=clark&scope=steps"),
        &FWD,
    )
    .await;
    let pair = r.json();
    assert_eq!(r.status, 200, "{pair}");
    let access = pair["access_token"].as_str().unwrap().to_owned();
    let refresh = pair["refresh_token"].as_str().unwrap().to_owned();
    secrets.extend([access.clone(), refresh.clone()]);

    // 3. Refresh once (issued), then present the rotated-away token again (reuse).
    let refresh_form = format!(
        "grant_type=refresh_token&client_id=shoe-fly-shoe&client_secret=secret&refresh_token={refresh}"
    );
    let r = post_form(&token_url, &refresh_form, &FWD).await;
    assert_eq!(r.status, 200, "{r:?}");
    let rotated = r.json();
    secrets.push(rotated["access_token"].as_str().unwrap().into());
    secrets.push(rotated["refresh_token"].as_str().unwrap().into());
    let r = post_form(&token_url, &refresh_form, &FWD).await;
    assert_eq!(r.status, 400, "{r:?}");

    // 4. A code issued, redeemed, replayed.
    let r = post_form(
        &proxy.url("/stepon/oauth2/authorize"),
        &format!("response_type=code&client_id=shoe-fly-shoe&provision_key={PROVISION_KEY}&authenticated_userid=lois&scope=steps"),
        &FWD,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let redirect = r.json()["redirect_uri"].as_str().unwrap().to_owned();
    let code = url::Url::parse(&redirect)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    secrets.push(code.clone());
    let code_form = format!(
        "grant_type=authorization_code&client_id=shoe-fly-shoe&client_secret=secret&code={code}"
    );
    let r = post_form(&token_url, &code_form, &FWD).await;
    assert_eq!(r.status, 200, "{r:?}");
    let from_code = r.json();
    secrets.push(from_code["access_token"].as_str().unwrap().into());
    let r = post_form(&token_url, &code_form, &FWD).await;
    assert_eq!(r.status, 400, "{r:?}");

    // 4b. An authorization refused inside the redirect URI (an unknown scope).
    let r = post_form(
        &proxy.url("/stepon/oauth2/authorize"),
        &format!("response_type=code&client_id=shoe-fly-shoe&provision_key={PROVISION_KEY}&authenticated_userid=lois&scope=nope"),
        &FWD,
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.json()["redirect_uri"]
        .as_str()
        .unwrap()
        .contains("error=invalid_scope"));

    // 5. A client-credentials token, revoked.
    let r = post_form(
        &token_url,
        "grant_type=client_credentials&client_id=shoe-fly-shoe&client_secret=secret",
        &FWD,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let cc = r.json()["access_token"].as_str().unwrap().to_owned();
    secrets.push(cc.clone());
    let r = post_form(
        &proxy.url("/stepon/oauth2/revoke"),
        &format!("token={cc}&client_id=shoe-fly-shoe&client_secret=secret"),
        &FWD,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");

    let wanted = [
        "client_auth_failed",
        "token_issued",
        "refresh_reuse",
        "token_refused",
        "code_replay",
        "token_revoked",
    ];
    let events = lines(&path, 10, &wanted).await;
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    for want in wanted {
        assert!(names.contains(&want), "no {want} in {names:?}");
    }
    for e in &events {
        assert_eq!(e["route"], "default/stepon", "{e}");
        assert_eq!(e["peer"], "127.0.0.1", "{e}");
        assert!(e["ts"].as_str().is_some_and(|t| t.ends_with('Z')), "{e}");
    }
    let issued: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "token_issued")
        .map(|e| e["grant"].as_str().unwrap())
        .collect();
    assert!(
        events.iter().any(|e| e["event"] == "token_refused"
            && e["grant"] == "code"
            && e["error"] == "invalid_scope"),
        "the refusal sent inside the redirect is audited: {events:?}"
    );
    for grant in [
        "password",
        "refresh_token",
        "code",
        "authorization_code",
        "client_credentials",
    ] {
        assert!(issued.contains(&grant), "no {grant} issue in {issued:?}");
    }

    // Never a secret: not the client secret, the provision key, a token or a code.
    let text = std::fs::read_to_string(&path).unwrap();
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "the audit log holds a secret ({} chars)",
            secret.len()
        );
    }
    proxy.handle.shutdown().await;
}
