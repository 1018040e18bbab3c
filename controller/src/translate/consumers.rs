//! Consumers: validate, assign ids (the Kubernetes UID, or `namespace/name` when there
//! is none), and index them for client `consumerRef`s and anonymous consumers.

use std::collections::HashMap;

use gatehouse_config::snapshot as config;
use gatehouse_crds::conditions::reason;
use gatehouse_crds::{Consumer, ConsumerStatus};

use super::object::{is_header_safe, namespace, object_ref, Context, Verdict};
use super::{Kind, ObjectStatus, Status};

/// Result of translating consumers.
pub struct Consumers {
    pub snapshot: Vec<config::Consumer>,
    pub statuses: Vec<ObjectStatus>,
    /// `(namespace, name)` → id when Ready, `None` when present but not Ready.
    index: HashMap<(String, String), Option<String>>,
}

/// What a reference to a consumer resolved to.
pub enum Lookup<'a> {
    Ready(&'a str),
    NotReady,
    NotFound,
}

impl Consumers {
    pub fn lookup(&self, namespace: &str, name: &str) -> Lookup<'_> {
        match self.index.get(&(namespace.to_owned(), name.to_owned())) {
            Some(Some(id)) => Lookup::Ready(id),
            Some(None) => Lookup::NotReady,
            None => Lookup::NotFound,
        }
    }
}

pub fn translate(ctx: &Context<'_>) -> Consumers {
    let mut out = Consumers {
        snapshot: Vec::new(),
        statuses: Vec::new(),
        index: HashMap::new(),
    };
    for c in ctx.oldest_first(&ctx.input.consumers) {
        let object = object_ref(Kind::Consumer, &c.metadata);
        let verdict = check(c);
        let id = c
            .metadata
            .uid
            .clone()
            .unwrap_or_else(|| format!("{}/{}", object.namespace, object.name));
        let ok = verdict.is_ok();
        if ok {
            out.snapshot.push(config::Consumer {
                id: id.clone(),
                username: non_empty(&c.spec.username),
                custom_id: non_empty(&c.spec.custom_id),
            });
        }
        out.index.insert(
            (namespace(&c.metadata).to_owned(), object.name.clone()),
            ok.then_some(id),
        );
        let previous = c.status.as_ref().map(|s| s.conditions.as_slice());
        out.statuses.push(verdict.into_status(
            "Consumer is in effect",
            object,
            previous,
            &ctx.options.now,
            |conditions, observed_generation| {
                Status::Consumer(ConsumerStatus {
                    conditions,
                    observed_generation,
                })
            },
        ));
    }
    out.snapshot.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

fn check(c: &Consumer) -> Verdict {
    let mut v = Verdict::default();
    let username = non_empty(&c.spec.username);
    let custom_id = non_empty(&c.spec.custom_id);
    if username.is_none() && custom_id.is_none() {
        v.reject(reason::INVALID_SPEC, "set username, customId or both");
    }
    // Both are sent upstream as header values.
    for (field, value) in [("username", &username), ("customId", &custom_id)] {
        if value.as_deref().is_some_and(|s| !is_header_safe(s)) {
            v.reject(
                reason::INVALID_SPEC,
                format!("{field} contains control characters"),
            );
        }
    }
    v
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_ref().filter(|s| !s.trim().is_empty()).cloned()
}
