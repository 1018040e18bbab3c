//! In-memory token store: the standalone default, and the reference behaviour the
//! Redis store must match.
//!
//! Everything lives in one map set behind a `std::sync::Mutex`. Every operation is a
//! short, non-async critical section (hash lookups and a B-tree index update), so the
//! lock is never held across an `.await`, and each trait method is atomic with
//! respect to the others — a code is taken exactly once, a rotation either happens
//! completely or not at all.
//!
//! Expiry: records are dropped lazily when looked up and eagerly (from the front of
//! an expiry-ordered index) whenever the store is about to grow.
//!
//! Size bound: at most `capacity` entries (codes, access tokens, refresh tokens and
//! the tombstones used for replay/reuse detection). When full, expired entries are
//! purged first; if that is not enough the entry closest to its expiry is evicted
//! (counted in [`MemoryStore::evictions`]). Entries that never expire cannot be
//! evicted: if only those remain the store refuses new entries with a clear error.
//!
//! Families (see the parent module): the store tracks the members of each lineage so
//! that code replay and refresh-token reuse revoke them all. A family stays known —
//! and, once revoked, keeps refusing new members — while it has live tokens or its
//! authorization code's lifetime has not yet ended.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use super::*;
use crate::ratelimit::MemoryLimiter;

/// How many rotated-away refresh tokens a family remembers for reuse detection.
/// A family whose refresh token never expires can rotate forever; older tombstones
/// are forgotten so one long-lived grant cannot grow without bound.
const MAX_ROTATED_PER_FAMILY: usize = 32;

/// Source of "now" for expiry decisions.
///
/// Production uses the system clock; tests use a manual clock they move explicitly,
/// so no test ever sleeps to make a token expire.
#[derive(Clone, Debug, Default)]
pub struct Clock(Option<Arc<AtomicU64>>);

impl Clock {
    /// Wall-clock Unix time.
    pub fn system() -> Self {
        Clock(None)
    }

    /// A clock that stands still at `start` until [`Clock::set`] or
    /// [`Clock::advance`] moves it.
    pub fn manual(start: UnixTime) -> Self {
        Clock(Some(Arc::new(AtomicU64::new(start))))
    }

    /// Current Unix time in seconds.
    pub fn now(&self) -> UnixTime {
        match &self.0 {
            Some(t) => t.load(Ordering::SeqCst),
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        }
    }

    /// Current Unix time in milliseconds (a manual clock ticks in whole seconds).
    pub fn now_millis(&self) -> u64 {
        match &self.0 {
            Some(t) => t.load(Ordering::SeqCst) * 1000,
            None => crate::ratelimit::unix_millis(),
        }
    }

    /// Move a manual clock to `t` (no effect on the system clock).
    pub fn set(&self, t: UnixTime) {
        if let Some(c) = &self.0 {
            c.store(t, Ordering::SeqCst);
        }
    }

    /// Move a manual clock forward by `secs` (no effect on the system clock).
    pub fn advance(&self, secs: u64) {
        if let Some(c) = &self.0 {
            c.fetch_add(secs, Ordering::SeqCst);
        }
    }
}

/// Process-local token store with expiry and a size bound.
pub struct MemoryStore {
    capacity: usize,
    clock: Clock,
    inner: Mutex<Inner>,
    evictions: AtomicU64,
    /// Browser sign-in records, bounded by the same capacity.
    login: Mutex<super::login_records::LoginMap>,
    /// Rate-limit budgets (bounded separately from tokens: a flood of addresses must
    /// not evict tokens).
    limiter: MemoryLimiter,
}

/// One slot in the expiry index.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Slot {
    Code(Digest),
    Access(Digest),
    Refresh(Digest),
    /// The end of a used code's lifetime: from then on its tombstone lives only as
    /// long as its family has live tokens.
    UsedCode(Digest),
}

/// Members of one token lineage.
#[derive(Debug, Default)]
struct Family {
    access: HashSet<Digest>,
    refresh: HashSet<Digest>,
    /// Digest of the authorization code the family was born from, if any.
    code: Option<Digest>,
    /// The code's lifetime has not ended yet (its `UsedCode` index slot exists).
    code_pending: bool,
    /// Refresh tokens rotated away, oldest first.
    rotated: VecDeque<Digest>,
    /// Replay or reuse was detected: nothing may join this family any more.
    revoked: bool,
}

impl Family {
    fn is_dead(&self) -> bool {
        self.access.is_empty() && self.refresh.is_empty() && !self.code_pending
    }
}

#[derive(Debug)]
struct UsedCode {
    family: String,
    expires_at: UnixTime,
}

#[derive(Debug, Default)]
struct Inner {
    codes: HashMap<Digest, AuthorizationCode>,
    used_codes: HashMap<Digest, UsedCode>,
    /// Looked up on every proxied request: a fast seeded hasher, not SipHash.
    access: foldhash::HashMap<Digest, AccessToken>,
    refresh: HashMap<Digest, RefreshToken>,
    /// Rotated-away refresh token → family.
    rotated: HashMap<Digest, String>,
    families: HashMap<String, Family>,
    /// Every entry that expires, ordered by expiry.
    expiry: BTreeSet<(UnixTime, Slot)>,
}

fn live(expires_at: Option<UnixTime>, now: UnixTime) -> bool {
    expires_at.is_none_or(|t| now < t)
}

impl Inner {
    fn len(&self) -> usize {
        self.codes.len()
            + self.used_codes.len()
            + self.access.len()
            + self.refresh.len()
            + self.rotated.len()
    }

    fn family_mut(&mut self, id: &str) -> &mut Family {
        self.families.entry(id.to_owned()).or_default()
    }

    /// Forget a family once nothing keeps it alive, together with its tombstones.
    fn gc_family(&mut self, id: &str) {
        let dead = self.families.get(id).is_some_and(Family::is_dead);
        if !dead {
            return;
        }
        let fam = self.families.remove(id).expect("checked present above");
        if let Some(code) = fam.code {
            self.used_codes.remove(&code);
        }
        for r in fam.rotated {
            self.rotated.remove(&r);
        }
    }

    fn remove_code(&mut self, code: &Digest) -> Option<AuthorizationCode> {
        let rec = self.codes.remove(code)?;
        self.expiry.remove(&(rec.expires_at, Slot::Code(*code)));
        Some(rec)
    }

    fn remove_access(&mut self, d: &Digest) -> Option<AccessToken> {
        let rec = self.access.remove(d)?;
        if let Some(t) = rec.expires_at {
            self.expiry.remove(&(t, Slot::Access(*d)));
        }
        if let Some(fam) = self.families.get_mut(&rec.family) {
            fam.access.remove(d);
        }
        self.gc_family(&rec.family);
        Some(rec)
    }

    fn remove_refresh(&mut self, d: &Digest) -> Option<RefreshToken> {
        let rec = self.refresh.remove(d)?;
        if let Some(t) = rec.expires_at {
            self.expiry.remove(&(t, Slot::Refresh(*d)));
        }
        if let Some(fam) = self.families.get_mut(&rec.family) {
            fam.refresh.remove(d);
        }
        self.gc_family(&rec.family);
        Some(rec)
    }

    /// The used code's own lifetime ended: keep its tombstone only while the family
    /// still has live tokens (so a late replay still revokes them).
    fn end_used_code(&mut self, code: &Digest) {
        let Some(used) = self.used_codes.get(code) else {
            return;
        };
        let family = used.family.clone();
        self.expiry
            .remove(&(used.expires_at, Slot::UsedCode(*code)));
        match self.families.get_mut(&family) {
            Some(fam) => {
                fam.code_pending = false;
                self.gc_family(&family);
            }
            None => {
                self.used_codes.remove(code);
            }
        }
    }

    /// Remove the entry behind one index slot.
    fn drop_slot(&mut self, slot: &Slot) {
        match slot {
            Slot::Code(d) => {
                self.remove_code(d);
            }
            Slot::Access(d) => {
                self.remove_access(d);
            }
            Slot::Refresh(d) => {
                self.remove_refresh(d);
            }
            Slot::UsedCode(d) => self.end_used_code(d),
        }
    }

    /// Drop everything whose expiry is at or before `now`.
    fn purge_expired(&mut self, now: UnixTime) {
        while let Some((t, slot)) = self.expiry.first().cloned() {
            if t > now {
                break;
            }
            self.drop_slot(&slot);
            // drop_slot removes the index entry; guard against a stale one anyway so
            // this loop always makes progress.
            self.expiry.remove(&(t, slot));
        }
    }

    fn revoke_family(&mut self, id: &str) {
        let Some(fam) = self.families.get_mut(id) else {
            return;
        };
        fam.revoked = true;
        let access: Vec<Digest> = fam.access.iter().copied().collect();
        let refresh: Vec<Digest> = fam.refresh.iter().copied().collect();
        for d in access {
            self.remove_access(&d);
        }
        for d in refresh {
            self.remove_refresh(&d);
        }
        self.gc_family(id);
    }

    fn insert_pair(&mut self, pair: IssuedPair) {
        let IssuedPair {
            access_digest,
            access,
            refresh,
        } = pair;
        let family = access.family.clone();
        if self.families.get(&family).is_some_and(|f| f.revoked) {
            // A replay revoked this lineage while the grant was being processed:
            // the tokens are dead on arrival.
            return;
        }
        // Replacing an existing record (only possible for a reused refresh token)
        // must not leave its old index entry behind.
        if let Some((rd, _)) = &refresh {
            if let Some(old) = self.refresh.get(rd) {
                if let Some(t) = old.expires_at {
                    self.expiry.remove(&(t, Slot::Refresh(*rd)));
                }
            }
        }
        if let Some(t) = access.expires_at {
            self.expiry.insert((t, Slot::Access(access_digest)));
        }
        self.family_mut(&family).access.insert(access_digest);
        self.access.insert(access_digest, access);
        if let Some((rd, rec)) = refresh {
            if let Some(t) = rec.expires_at {
                self.expiry.insert((t, Slot::Refresh(rd)));
            }
            self.family_mut(&rec.family).refresh.insert(rd);
            self.refresh.insert(rd, rec);
        }
    }
}

impl MemoryStore {
    /// A store holding at most `capacity` live tokens and codes, on the system clock.
    pub fn new(capacity: usize) -> Self {
        Self::with_clock(capacity, Clock::system())
    }

    /// A store on an explicit clock (tests use [`Clock::manual`]).
    pub fn with_clock(capacity: usize, clock: Clock) -> Self {
        MemoryStore {
            capacity: capacity.max(1),
            clock,
            inner: Mutex::new(Inner::default()),
            evictions: AtomicU64::new(0),
            login: Mutex::new(Default::default()),
            limiter: MemoryLimiter::default(),
        }
    }

    /// Number of entries held (live records and tombstones).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the store holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries evicted before their expiry because the store was full.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    fn login(&self) -> MutexGuard<'_, super::login_records::LoginMap> {
        self.login.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps in a state that breaks
        // memory safety; keep serving rather than poisoning every later request.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Make room for `needed` more entries.
    fn make_room(&self, inner: &mut Inner, needed: usize, now: UnixTime) -> Result<()> {
        if inner.len() + needed <= self.capacity {
            return Ok(());
        }
        inner.purge_expired(now);
        while inner.len() + needed > self.capacity {
            let Some((t, slot)) = inner.expiry.first().cloned() else {
                return Err(StoreError::Unavailable(format!(
                    "in-memory token store is full ({} entries that never expire); \
                     raise --memory-capacity or use Redis",
                    self.capacity
                )));
            };
            let before = inner.len();
            inner.drop_slot(&slot);
            inner.expiry.remove(&(t, slot));
            if inner.len() < before {
                self.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl TokenStore for MemoryStore {
    async fn put_code(&self, code: Digest, record: AuthorizationCode) -> Result<()> {
        let now = self.clock.now();
        let mut inner = self.lock();
        self.make_room(&mut inner, 1, now)?;
        inner.remove_code(&code);
        inner.expiry.insert((record.expires_at, Slot::Code(code)));
        inner.codes.insert(code, record);
        Ok(())
    }

    async fn take_code(&self, code: Digest) -> Result<CodeRedemption> {
        let now = self.clock.now();
        let mut inner = self.lock();
        if let Some(rec) = inner.remove_code(&code) {
            if rec.expires_at <= now {
                return Ok(CodeRedemption::Unknown);
            }
            // The tombstone replaces the code, so the size does not grow.
            inner.used_codes.insert(
                code,
                UsedCode {
                    family: rec.family.clone(),
                    expires_at: rec.expires_at,
                },
            );
            inner.expiry.insert((rec.expires_at, Slot::UsedCode(code)));
            let fam = inner.family_mut(&rec.family);
            fam.code = Some(code);
            fam.code_pending = true;
            return Ok(CodeRedemption::Redeemed(Box::new(rec)));
        }
        if let Some(used) = inner.used_codes.get(&code) {
            let family = used.family.clone();
            inner.revoke_family(&family);
            return Ok(CodeRedemption::Replayed { family });
        }
        Ok(CodeRedemption::Unknown)
    }

    async fn issue(&self, pair: IssuedPair) -> Result<()> {
        let now = self.clock.now();
        let mut inner = self.lock();
        let needed = 1 + usize::from(pair.refresh.is_some());
        self.make_room(&mut inner, needed, now)?;
        inner.insert_pair(pair);
        Ok(())
    }

    async fn access_token(&self, token: Digest) -> Result<Option<AccessToken>> {
        let now = self.clock.now();
        let mut inner = self.lock();
        match inner.access.get(&token) {
            Some(rec) if live(rec.expires_at, now) => Ok(Some(rec.clone())),
            Some(_) => {
                inner.remove_access(&token);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    async fn refresh_token(&self, token: Digest) -> Result<Option<RefreshToken>> {
        let now = self.clock.now();
        let mut inner = self.lock();
        match inner.refresh.get(&token) {
            Some(rec) if live(rec.expires_at, now) => Ok(Some(rec.clone())),
            Some(_) => {
                inner.remove_refresh(&token);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    async fn rotate(&self, old: Digest, new: IssuedPair) -> Result<Rotation> {
        let now = self.clock.now();
        let mut inner = self.lock();
        let current = inner.refresh.get(&old).cloned();
        match current {
            Some(rec) if live(rec.expires_at, now) => {
                let keeps_refresh = new.refresh.as_ref().is_some_and(|(d, _)| *d == old);
                // Net growth: the retired refresh token becomes a tombstone.
                self.make_room(&mut inner, usize::from(!keeps_refresh), now)?;
                let new_access = new.access_digest;
                // Insert first so the family never looks empty (and is never
                // collected) halfway through the swap.
                inner.insert_pair(new);
                if rec.access != new_access {
                    inner.remove_access(&rec.access);
                }
                if !keeps_refresh {
                    inner.remove_refresh(&old);
                    // Remember the retired token so that presenting it again is
                    // recognised as reuse (RFC 9700 §4.14.2).
                    if let Some(fam) = inner.families.get_mut(&rec.family) {
                        fam.rotated.push_back(old);
                        let forgotten = if fam.rotated.len() > MAX_ROTATED_PER_FAMILY {
                            fam.rotated.pop_front()
                        } else {
                            None
                        };
                        inner.rotated.insert(old, rec.family.clone());
                        if let Some(f) = forgotten {
                            inner.rotated.remove(&f);
                        }
                    }
                }
                Ok(Rotation::Rotated)
            }
            Some(_) => {
                inner.remove_refresh(&old);
                Ok(Rotation::Unknown)
            }
            None => match inner.rotated.get(&old).cloned() {
                Some(family) => {
                    inner.revoke_family(&family);
                    Ok(Rotation::Reused { family })
                }
                None => Ok(Rotation::Unknown),
            },
        }
    }

    async fn revoke(&self, token: Digest) -> Result<bool> {
        let mut inner = self.lock();
        if let Some(rec) = inner.remove_access(&token) {
            if let Some(r) = rec.refresh {
                inner.remove_refresh(&r);
            }
            return Ok(true);
        }
        if let Some(rec) = inner.remove_refresh(&token) {
            inner.remove_access(&rec.access);
            return Ok(true);
        }
        Ok(false)
    }

    async fn revoke_family(&self, family: &str) -> Result<()> {
        self.lock().revoke_family(family);
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    async fn put_login(
        &self,
        kind: LoginKind,
        key: Digest,
        value: String,
        expires_at: UnixTime,
    ) -> Result<()> {
        let now = self.clock.now();
        self.login()
            .put(self.capacity, kind, key, value, expires_at, now)
    }

    async fn get_login(&self, kind: LoginKind, key: Digest) -> Result<Option<String>> {
        Ok(self.login().get(kind, &key, self.clock.now()))
    }

    async fn take_login(&self, kind: LoginKind, key: Digest) -> Result<Option<String>> {
        Ok(self.login().take(kind, &key, self.clock.now()))
    }

    async fn delete_login(&self, kind: LoginKind, key: Digest) -> Result<bool> {
        Ok(self.login().delete(kind, &key, self.clock.now()))
    }

    async fn rate_hit(&self, key: &str, quota: &Quota) -> Result<Decision> {
        Ok(self.limiter.hit(key, quota, self.clock.now_millis()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Grant;

    const T0: UnixTime = 1_700_000_000;

    fn mk_store(capacity: usize) -> (MemoryStore, Clock) {
        let clock = Clock::manual(T0);
        (MemoryStore::with_clock(capacity, clock.clone()), clock)
    }

    fn d(s: &str) -> Digest {
        Digest::of(s.as_bytes())
    }

    fn mk_code(family: &str, expires_at: UnixTime) -> AuthorizationCode {
        AuthorizationCode {
            route_id: "default/stepon".into(),
            global: false,
            client_id: "shoeflyshoe".into(),
            consumer_id: "default/shoeflyshoe".into(),
            authenticated_userid: "clark".into(),
            scopes: vec!["step_counts".into()],
            redirect_uri: "https://shoeflyshoe.store/callback".into(),
            redirect_uri_sent: false,
            code_challenge: None,
            expires_at,
            family: family.into(),
            resources: Vec::new(),
        }
    }

    /// Access token `a` (+ refresh token `r` when given) in `family`.
    fn mk_pair(a: &str, r: Option<&str>, family: &str, ttl: Option<u64>) -> IssuedPair {
        let access_digest = d(a);
        let grant = Grant {
            route_id: "default/stepon".into(),
            global: false,
            client_id: "shoeflyshoe".into(),
            consumer_id: "default/shoeflyshoe".into(),
            authenticated_userid: Some("clark".into()),
            scopes: vec!["step_counts".into()],
            issued_at: T0,
            expires_at: ttl.map(|t| T0 + t),
            family: family.into(),
            audience: Vec::new(),
        };
        let refresh = r.map(|r| {
            let grant = Grant {
                expires_at: ttl.map(|t| T0 + 10 * t),
                ..grant.clone()
            };
            (
                d(r),
                RefreshToken {
                    grant,
                    access: access_digest,
                },
            )
        });
        IssuedPair {
            access_digest,
            access: AccessToken {
                grant,
                refresh: r.map(d),
            },
            refresh,
        }
    }

    /// Issue [`mk_pair`]`(a, r, family, ttl)` into `store`.
    async fn issue(store: &MemoryStore, a: &str, r: Option<&str>, family: &str, ttl: Option<u64>) {
        store.issue(mk_pair(a, r, family, ttl)).await.unwrap();
    }

    /// Store code `c` ([`mk_code`]`(family, expires_at)`).
    async fn put_code(store: &MemoryStore, c: &str, family: &str, expires_at: UnixTime) {
        store
            .put_code(d(c), mk_code(family, expires_at))
            .await
            .unwrap();
    }

    /// Whether `store` finds access token `a`.
    async fn has_access(store: &MemoryStore, a: &str) -> bool {
        store.access_token(d(a)).await.unwrap().is_some()
    }

    /// Whether `store` finds refresh token `r`.
    async fn has_refresh(store: &MemoryStore, r: &str) -> bool {
        store.refresh_token(d(r)).await.unwrap().is_some()
    }

    #[tokio::test]
    async fn issued_tokens_are_found_until_they_expire() {
        let (store, clock) = mk_store(100);
        issue(&store, "a1", Some("r1"), "f1", Some(60)).await;
        let a = store.access_token(d("a1")).await.unwrap().unwrap();
        assert_eq!(a.client_id, "shoeflyshoe");
        assert_eq!(a.refresh, Some(d("r1")));
        assert!(has_refresh(&store, "r1").await);

        clock.advance(59);
        assert!(has_access(&store, "a1").await);
        clock.advance(1);
        assert!(!has_access(&store, "a1").await);
        // The refresh token lives ten times longer in mk_pair.
        assert!(has_refresh(&store, "r1").await);
    }

    #[tokio::test]
    async fn tokens_without_expiry_never_expire() {
        let (store, clock) = mk_store(100);
        issue(&store, "a1", None, "f1", None).await;
        clock.advance(100 * 365 * 24 * 3600);
        assert!(has_access(&store, "a1").await);
    }

    #[tokio::test]
    async fn unknown_tokens_are_not_found() {
        let (store, _) = mk_store(100);
        assert!(!has_access(&store, "nope").await);
        assert!(!has_refresh(&store, "nope").await);
        assert!(!store.revoke(d("nope")).await.unwrap());
        store.ping().await.unwrap();
    }

    #[tokio::test]
    async fn a_code_can_be_taken_exactly_once() {
        let (store, _) = mk_store(100);
        put_code(&store, "c1", "f1", T0 + 60).await;
        match store.take_code(d("c1")).await.unwrap() {
            CodeRedemption::Redeemed(rec) => assert_eq!(rec.authenticated_userid, "clark"),
            other => panic!("expected Redeemed, got {other:?}"),
        }
        assert_eq!(
            store.take_code(d("c1")).await.unwrap(),
            CodeRedemption::Replayed {
                family: "f1".into()
            }
        );
    }

    #[tokio::test]
    async fn an_expired_code_is_unknown() {
        let (store, clock) = mk_store(100);
        put_code(&store, "c1", "f1", T0 + 60).await;
        clock.advance(60);
        assert_eq!(
            store.take_code(d("c1")).await.unwrap(),
            CodeRedemption::Unknown
        );
        assert_eq!(
            store.take_code(d("never")).await.unwrap(),
            CodeRedemption::Unknown
        );
    }

    #[tokio::test]
    async fn replayed_code_revokes_tokens_issued_from_it() {
        let (store, _) = mk_store(100);
        put_code(&store, "c1", "f1", T0 + 60).await;
        assert!(matches!(
            store.take_code(d("c1")).await.unwrap(),
            CodeRedemption::Redeemed(_)
        ));
        issue(&store, "a1", Some("r1"), "f1", Some(3600)).await;
        // An unrelated family must survive.
        issue(&store, "a2", Some("r2"), "f2", Some(3600)).await;

        assert!(matches!(
            store.take_code(d("c1")).await.unwrap(),
            CodeRedemption::Replayed { .. }
        ));
        assert!(!has_access(&store, "a1").await);
        assert!(!has_refresh(&store, "r1").await);
        assert!(has_access(&store, "a2").await);
    }

    #[tokio::test]
    async fn replay_is_detected_after_the_code_lifetime_while_its_tokens_live() {
        let (store, clock) = mk_store(100);
        put_code(&store, "c1", "f1", T0 + 60).await;
        store.take_code(d("c1")).await.unwrap();
        issue(&store, "a1", Some("r1"), "f1", Some(3600)).await;
        clock.advance(600);
        // Force a purge pass as a growing store would.
        issue(&store, "a9", None, "f9", Some(3600)).await;
        assert!(matches!(
            store.take_code(d("c1")).await.unwrap(),
            CodeRedemption::Replayed { .. }
        ));
        assert!(!has_access(&store, "a1").await);
    }

    #[tokio::test]
    async fn tokens_issued_after_a_replay_revoked_their_family_are_dead() {
        // Replay lands between the first redemption and the issue of its tokens.
        let (store, _) = mk_store(100);
        put_code(&store, "c1", "f1", T0 + 60).await;
        store.take_code(d("c1")).await.unwrap();
        store.take_code(d("c1")).await.unwrap();
        issue(&store, "a1", Some("r1"), "f1", Some(3600)).await;
        assert!(!has_access(&store, "a1").await);
        assert!(!has_refresh(&store, "r1").await);
    }

    #[tokio::test]
    async fn rotation_retires_the_old_pair_and_keeps_the_new_one() {
        let (store, _) = mk_store(100);
        issue(&store, "a1", Some("r1"), "f1", Some(3600)).await;
        let rot = store
            .rotate(d("r1"), mk_pair("a2", Some("r2"), "f1", Some(3600)))
            .await
            .unwrap();
        assert_eq!(rot, Rotation::Rotated);
        assert!(!has_access(&store, "a1").await);
        assert!(!has_refresh(&store, "r1").await);
        assert!(has_access(&store, "a2").await);
        assert!(has_refresh(&store, "r2").await);
    }

    #[tokio::test]
    async fn reusing_a_rotated_refresh_token_revokes_the_family() {
        let (store, _) = mk_store(100);
        issue(&store, "a1", Some("r1"), "f1", Some(3600)).await;
        store
            .rotate(d("r1"), mk_pair("a2", Some("r2"), "f1", Some(3600)))
            .await
            .unwrap();
        let rot = store
            .rotate(d("r1"), mk_pair("a3", Some("r3"), "f1", Some(3600)))
            .await
            .unwrap();
        assert_eq!(
            rot,
            Rotation::Reused {
                family: "f1".into()
            }
        );
        assert!(!has_access(&store, "a2").await);
        assert!(!has_refresh(&store, "r2").await);
        assert!(!has_access(&store, "a3").await);
    }

    #[tokio::test]
    async fn a_reused_refresh_token_stays_and_only_the_access_token_changes() {
        let (store, _) = mk_store(100);
        issue(&store, "a1", Some("r1"), "f1", Some(3600)).await;
        // reuse_refresh_token: the new pair carries the same refresh digest.
        let mut next = mk_pair("a2", Some("r1"), "f1", Some(3600));
        next.refresh.as_mut().unwrap().1.access = d("a2");
        assert_eq!(
            store.rotate(d("r1"), next).await.unwrap(),
            Rotation::Rotated
        );
        assert!(!has_access(&store, "a1").await);
        assert!(has_access(&store, "a2").await);
        let r = store.refresh_token(d("r1")).await.unwrap().unwrap();
        assert_eq!(r.access, d("a2"));
        // And it can be used again.
        let mut again = mk_pair("a3", Some("r1"), "f1", Some(3600));
        again.refresh.as_mut().unwrap().1.access = d("a3");
        assert_eq!(
            store.rotate(d("r1"), again).await.unwrap(),
            Rotation::Rotated
        );
        assert_eq!(store.len(), 2);
    }

    #[tokio::test]
    async fn rotating_an_expired_or_unknown_refresh_token_is_unknown() {
        let (store, clock) = mk_store(100);
        issue(&store, "a1", Some("r1"), "f1", Some(10)).await;
        clock.advance(100); // refresh lives 10×ttl = 100 s
        assert_eq!(
            store
                .rotate(d("r1"), mk_pair("a2", Some("r2"), "f1", Some(10)))
                .await
                .unwrap(),
            Rotation::Unknown
        );
        assert_eq!(
            store
                .rotate(d("zz"), mk_pair("a3", Some("r3"), "f1", Some(10)))
                .await
                .unwrap(),
            Rotation::Unknown
        );
        assert!(!has_access(&store, "a2").await);
    }

    #[tokio::test]
    async fn revoking_an_access_token_kills_its_refresh_token() {
        let (store, _) = mk_store(100);
        issue(&store, "a1", Some("r1"), "f1", Some(3600)).await;
        assert!(store.revoke(d("a1")).await.unwrap());
        assert!(!has_refresh(&store, "r1").await);
        assert!(!store.revoke(d("a1")).await.unwrap());
    }

    #[tokio::test]
    async fn revoking_a_refresh_token_kills_its_access_token() {
        let (store, _) = mk_store(100);
        issue(&store, "a1", Some("r1"), "f1", Some(3600)).await;
        assert!(store.revoke(d("r1")).await.unwrap());
        assert!(!has_access(&store, "a1").await);
        assert!(store.is_empty());
    }

    #[tokio::test]
    async fn revoke_family_removes_every_member_and_only_them() {
        let (store, _) = mk_store(100);
        issue(&store, "a1", Some("r1"), "f1", Some(3600)).await;
        issue(&store, "a2", None, "f1", None).await;
        issue(&store, "b1", Some("s1"), "f2", Some(3600)).await;
        store.revoke_family("f1").await.unwrap();
        assert!(!has_access(&store, "a1").await);
        assert!(!has_access(&store, "a2").await);
        assert!(!has_refresh(&store, "r1").await);
        assert!(has_access(&store, "b1").await);
        store.revoke_family("no-such-family").await.unwrap();
    }

    #[tokio::test]
    async fn a_full_store_purges_expired_entries_first() {
        let (store, clock) = mk_store(3);
        issue(&store, "a1", None, "f1", Some(10)).await;
        issue(&store, "a2", None, "f2", Some(10)).await;
        issue(&store, "a3", None, "f3", Some(99)).await;
        clock.advance(10);
        issue(&store, "a4", None, "f4", Some(99)).await;
        assert_eq!(store.evictions(), 0);
        assert_eq!(store.len(), 2);
        assert!(has_access(&store, "a3").await);
        assert!(has_access(&store, "a4").await);
    }

    #[tokio::test]
    async fn a_full_store_evicts_the_entry_closest_to_expiry() {
        let (store, _) = mk_store(2);
        issue(&store, "a1", None, "f1", Some(50)).await;
        issue(&store, "a2", None, "f2", Some(10)).await;
        issue(&store, "a3", None, "f3", Some(99)).await;
        assert_eq!(store.evictions(), 1);
        assert!(!has_access(&store, "a2").await);
        assert!(has_access(&store, "a1").await);
        assert!(has_access(&store, "a3").await);
        assert_eq!(store.len(), 2);
    }

    #[tokio::test]
    async fn a_store_full_of_non_expiring_tokens_refuses_with_a_clear_error() {
        let (store, _) = mk_store(1);
        issue(&store, "a1", None, "f1", None).await;
        let err = store
            .issue(mk_pair("a2", None, "f2", None))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)));
        assert!(err.to_string().contains("full"));
        assert!(has_access(&store, "a1").await);
    }

    #[tokio::test]
    async fn expired_families_leave_nothing_behind() {
        let (store, clock) = mk_store(100);
        put_code(&store, "c1", "f1", T0 + 60).await;
        store.take_code(d("c1")).await.unwrap();
        issue(&store, "a1", Some("r1"), "f1", Some(10)).await;
        store
            .rotate(d("r1"), mk_pair("a2", Some("r2"), "f1", Some(10)))
            .await
            .unwrap();
        clock.advance(1_000);
        // Lookups and a purge pass clear everything: tokens, tombstones, family.
        store.access_token(d("a2")).await.unwrap();
        store.refresh_token(d("r2")).await.unwrap();
        {
            let mut inner = store.lock();
            inner.purge_expired(clock.now());
            assert_eq!(inner.len(), 0, "{inner:?}");
            assert!(inner.families.is_empty());
            assert!(inner.expiry.is_empty());
        }
    }

    #[tokio::test]
    async fn rotated_tombstones_per_family_are_bounded() {
        let (store, _) = mk_store(10_000);
        issue(&store, "a0", Some("r0"), "f1", None).await;
        for i in 1..=(MAX_ROTATED_PER_FAMILY + 10) {
            let (a, r) = (format!("a{i}"), format!("r{i}"));
            let old = d(&format!("r{}", i - 1));
            assert_eq!(
                store
                    .rotate(old, mk_pair(&a, Some(&r), "f1", None))
                    .await
                    .unwrap(),
                Rotation::Rotated
            );
        }
        // live pair + bounded tombstones
        assert_eq!(store.len(), 2 + MAX_ROTATED_PER_FAMILY);
    }

    #[tokio::test]
    async fn concurrent_redemptions_of_one_code_succeed_once() {
        let (store, _) = mk_store(100);
        let store = Arc::new(store);
        put_code(&store, "c1", "f1", T0 + 60).await;
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move { s.take_code(d("c1")).await }));
        }
        let mut redeemed = 0;
        for t in tasks {
            if matches!(t.await.unwrap().unwrap(), CodeRedemption::Redeemed(_)) {
                redeemed += 1;
            }
        }
        assert_eq!(redeemed, 1);
    }
}
