//! Fast lookups over a [`Snapshot`]: clients by `client_id`, consumers by id.
//! Built once per snapshot, shared read-only by every request.

use foldhash::HashMap;

use http::HeaderValue;

use crate::config::{Consumer, OAuth2Client, Snapshot};
use crate::store::Digest;

/// Indexed view of the non-routing parts of a snapshot.
#[derive(Debug, Default)]
pub struct Catalog {
    clients: HashMap<String, ClientEntry>,
    consumers: HashMap<String, ConsumerEntry>,
}

/// A consumer with the values of its identity headers rendered once per snapshot
/// (each `None` when the field is absent or cannot be a header value, which then
/// leaves the header out).
#[derive(Clone, Debug)]
pub struct ConsumerEntry {
    pub consumer: Consumer,
    /// `X-Consumer-ID`.
    pub id_value: Option<HeaderValue>,
    /// `X-Consumer-Custom-ID`.
    pub custom_id_value: Option<HeaderValue>,
    /// `X-Consumer-Username`.
    pub username_value: Option<HeaderValue>,
}

impl ConsumerEntry {
    pub fn new(consumer: Consumer) -> Self {
        let value = |text: &str| HeaderValue::from_str(text).ok();
        ConsumerEntry {
            id_value: value(&consumer.id),
            custom_id_value: consumer.custom_id.as_deref().and_then(value),
            username_value: consumer.username.as_deref().and_then(value),
            consumer,
        }
    }
}

/// A client plus its pre-parsed secret digest.
#[derive(Clone, Debug)]
pub struct ClientEntry {
    pub client: OAuth2Client,
    /// `None` for public clients (or a malformed digest, which then never matches).
    pub secret: Option<Digest>,
    /// `X-Credential-Identifier` value, rendered once (`None` if it cannot be one).
    pub id_value: Option<HeaderValue>,
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
                        id_value: HeaderValue::from_str(&c.client_id).ok(),
                    },
                )
            })
            .collect();
        let consumers = snapshot
            .consumers
            .iter()
            .map(|c| (c.id.clone(), ConsumerEntry::new(c.clone())))
            .collect();
        Catalog { clients, consumers }
    }

    pub fn client(&self, client_id: &str) -> Option<&ClientEntry> {
        self.clients.get(client_id)
    }

    pub fn consumer(&self, id: &str) -> Option<&Consumer> {
        self.consumers.get(id).map(|e| &e.consumer)
    }

    /// A consumer with its pre-rendered identity header values.
    pub fn consumer_entry(&self, id: &str) -> Option<&ConsumerEntry> {
        self.consumers.get(id)
    }
}
