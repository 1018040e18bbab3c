//! Fast lookups over a [`Snapshot`]: clients by `client_id`, consumers by id.
//! Built once per snapshot, shared read-only by every request.

use std::collections::HashMap;

use crate::config::{Consumer, OAuth2Client, Snapshot};
use crate::store::Digest;

/// Indexed view of the non-routing parts of a snapshot.
#[derive(Debug, Default)]
pub struct Catalog {
    clients: HashMap<String, ClientEntry>,
    consumers: HashMap<String, Consumer>,
}

/// A client plus its pre-parsed secret digest.
#[derive(Clone, Debug)]
pub struct ClientEntry {
    pub client: OAuth2Client,
    /// `None` for public clients (or a malformed digest, which then never matches).
    pub secret: Option<Digest>,
}

impl Catalog {
    pub fn new(snapshot: &Snapshot) -> Self {
        let clients = snapshot
            .clients
            .iter()
            .map(|c| {
                let secret = c.secret_sha256.as_deref().and_then(Digest::from_hex);
                (
                    c.client_id.clone(),
                    ClientEntry {
                        client: c.clone(),
                        secret,
                    },
                )
            })
            .collect();
        let consumers = snapshot
            .consumers
            .iter()
            .map(|c| (c.id.clone(), c.clone()))
            .collect();
        Catalog { clients, consumers }
    }

    pub fn client(&self, client_id: &str) -> Option<&ClientEntry> {
        self.clients.get(client_id)
    }

    pub fn consumer(&self, id: &str) -> Option<&Consumer> {
        self.consumers.get(id)
    }
}
