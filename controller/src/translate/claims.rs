//! One routing table for every source: which object owns each host + path (+ match
//! conditions) pair. The oldest object wins; a newer one that asks for the same pair is
//! told so in its status, whatever its kind.

use std::collections::HashMap;

use gatehouse_config::path::normalize_prefix;
use gatehouse_config::snapshot::{self as config, PathMatch};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use super::object::namespace;
use super::Kind;

/// What one route asks for: a host ("" = any), a path and its match conditions.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MatchKey {
    host: String,
    exact: bool,
    path: String,
    conditions: String,
}

/// Who asks: ordered by age (creation time, then kind, namespace, name).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Owner {
    created: Option<Time>,
    kind: Kind,
    namespace: String,
    name: String,
}

impl Owner {
    pub fn new(kind: Kind, meta: &ObjectMeta) -> Self {
        Owner {
            created: meta.creation_timestamp.clone(),
            kind,
            namespace: namespace(meta).to_owned(),
            name: meta.name.clone().unwrap_or_default(),
        }
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// The match keys of a snapshot route.
pub fn keys(route: &config::Route) -> Vec<MatchKey> {
    keys_of(
        &route.hosts,
        &route.paths,
        route.path_match,
        &route.conditions,
    )
}

/// The match keys of hosts × paths with conditions.
pub fn keys_of(
    hosts: &[String],
    paths: &[String],
    path_match: PathMatch,
    c: &config::Conditions,
) -> Vec<MatchKey> {
    let hosts: Vec<String> = if hosts.is_empty() {
        vec![String::new()]
    } else {
        hosts.iter().map(|h| h.to_ascii_lowercase()).collect()
    };
    let exact = path_match == PathMatch::Exact;
    let paths: Vec<String> = if paths.is_empty() {
        vec!["/".to_owned()]
    } else if exact {
        paths.to_vec()
    } else {
        paths.iter().map(|p| normalize_prefix(p)).collect()
    };
    let mut headers = c.headers.clone();
    headers.sort();
    let mut query = c.query.clone();
    query.sort();
    let conditions = format!("{:?}|{headers:?}|{query:?}", c.method);
    let mut out = Vec::new();
    for host in &hosts {
        for path in &paths {
            out.push(MatchKey {
                host: host.clone(),
                exact,
                path: path.clone(),
                conditions: conditions.clone(),
            });
        }
    }
    out
}

/// The oldest owner of every key.
#[derive(Debug, Default)]
pub struct Claims {
    owners: HashMap<MatchKey, Owner>,
}

impl Claims {
    /// Ask for `keys` on behalf of `owner`; the oldest asker keeps each key.
    pub fn claim(&mut self, owner: &Owner, keys: impl IntoIterator<Item = MatchKey>) {
        for key in keys {
            match self.owners.get(&key) {
                Some(current) if current <= owner => {}
                _ => {
                    self.owners.insert(key, owner.clone());
                }
            }
        }
    }

    /// The older object that owns one of `keys`, if it is not `me`.
    pub fn taken_by<'a>(&'a self, me: &Owner, keys: &[MatchKey]) -> Option<&'a Owner> {
        keys.iter()
            .filter_map(|k| self.owners.get(k))
            .find(|owner| *owner != me)
    }
}
