//! The incremental (Delta) xDS stream: one per `DeltaAggregatedResources` or per-type Delta
//! stream, driven by the response body like the State-of-the-World stream.
//!
//! No task or channel per stream: the state machine runs when the transport polls the response
//! stream; it reads requests and cache changes and yields responses. For every type it keeps
//! what the client holds (the digest of each resource version it was sent or said it has, or
//! that it was told a name does not exist), and a response carries exactly the difference
//! between that and what the client subscribes to in the cache: changed or new resources, and
//! `removed_resources` for deletions and for subscribed names that do not exist. One response
//! per type is outstanding at a time; changes that arrive meanwhile go out, merged, after the
//! client's ACK or NACK. A NACKed version counts as held, so it is never sent again; the next
//! change of that resource is.
//!
//! With heartbeats on ([`crate::XdsServerBuilder::heartbeat_interval`]), a stream whose client
//! honours TTLs has one timer; on each tick, for every type with nothing outstanding, it sends a
//! body-less `Resource` (name, version, TTL) for each resource with a TTL that the client holds
//! at its current version: the client renews the TTL and changes nothing else.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest;
use futures::{FutureExt, StreamExt};
use tokio_stream::StreamMap;
use tokio_stream::wrappers::WatchStream;
use tonic::{Status, Streaming};

use super::Shared;
use super::names::{Glob, canonical_name, resolve_vhds_alias, split_vhds_alias};
use crate::codec::{EncodedMessage, len_field_size, put_len_field};
use crate::observer::{SentResources, StreamId, Subscribed};
use crate::resource::{Resource, TtlView, push_priority, type_url};
use crate::snapshot::TypeResources;

type Change = Option<Arc<TypeResources>>;

/// The wildcard resource name.
const WILDCARD: &str = "*";

/// VHDS: the most aliases one stream keeps waiting for a virtual host that serves them.
const MAX_WAITING_ALIASES: usize = 1024;

/// What the client holds of one resource name, as far as the server knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    /// The version whose name-and-version digest is this (sent to it, or declared in
    /// `initial_resource_versions`).
    Version(u64),
    /// A version this server cannot have made: always differs from the current one.
    Foreign,
    /// It was told that the name does not exist.
    Absent,
}

/// What a response of one type carries.
struct Diff {
    /// The client honours TTLs: resources with a TTL go out with it.
    ttl_client: bool,
    /// Delta entries of the resources to send.
    chunks: Vec<Bytes>,
    /// Number of resources in `chunks`.
    count: usize,
    /// Names to send in `removed_resources`.
    removed: Vec<Arc<str>>,
    /// Sent resources of which the client held another version (updates, not additions).
    replaced: Vec<Arc<str>>,
}

impl Diff {
    fn new(ttl_client: bool) -> Self {
        Self { ttl_client, chunks: Vec::new(), count: 0, removed: Vec::new(), replaced: Vec::new() }
    }

    fn add_if_changed(&mut self, held: &mut HashMap<Arc<str>, Held>, r: &Resource) {
        let now = Held::Version(r.name_version_digest());
        match held.insert(r.name_arc().clone(), now) {
            Some(before) if before == now => return,
            Some(Held::Version(_) | Held::Foreign) => self.replaced.push(r.name_arc().clone()),
            _ => {}
        }
        self.chunks.push(r.delta_entry_for(self.ttl_client).clone());
        self.count += 1;
    }
}

/// Per-type state of a stream.
struct TypeState {
    type_url: Arc<str>,
    /// Subscribed to every resource of the type.
    wildcard: bool,
    /// Names subscribed explicitly (with or without the wildcard), `xdstp://` ones canonical.
    names: HashSet<Arc<str>>,
    /// `xdstp://` glob collections subscribed, by the name they were subscribed with: every
    /// member is sent, as with the wildcard.
    globs: Vec<(Arc<str>, Glob)>,
    /// VHDS: the virtual-host type, where names are `<route configuration>/<host>` aliases.
    vhds: bool,
    /// VHDS: aliases subscribed and not yet resolved to a virtual host. One that resolves is
    /// answered with the virtual host (its `aliases` naming the alias), and the virtual host's
    /// own name is subscribed from then on; one that does not is answered once with an empty
    /// resource named after it, and stays here until a virtual host serves it.
    aliases: HashSet<Arc<str>>,
    /// VHDS over ADS: the route configurations already answered as namespaces.
    namespaces: HashSet<Arc<str>>,
    /// VHDS: the digest of the set the waiting aliases were last resolved against.
    aliases_checked: Option<u64>,
    /// Changes whenever the subscribed names or the wildcard do (for observers).
    generation: u64,
    /// The resources the cache holds for this node (`None`: no snapshot yet).
    current: Option<Arc<TypeResources>>,
    /// What the client holds, by name.
    held: HashMap<Arc<str>, Held>,
    /// The client sent at least one request of this type.
    requested: bool,
    /// A response was sent since the first request (the first one is sent even when empty).
    answered: bool,
    /// The subscription or the resources changed since the difference was last computed.
    dirty: bool,
    /// The digest of the set the difference was last computed against, if the subscription
    /// did not change since: then only the names that changed between the sets need a look.
    diffed: Option<u64>,
    /// Names to send again on the next difference even if the client holds their version.
    resend: Vec<Arc<str>>,
    /// The last response sent and not yet answered: its nonce and system version.
    outstanding: Option<(String, String)>,
    /// The client honours TTLs: resources with a TTL go out with it.
    ttl_client: bool,
    /// The client answered the last response with a NACK.
    nacked: bool,
}

impl TypeState {
    fn new(type_url: &str, current: Change, ttl_client: bool) -> Self {
        Self {
            ttl_client,
            nacked: false,
            type_url: type_url.into(),
            wildcard: false,
            names: HashSet::new(),
            globs: Vec::new(),
            vhds: type_url == type_url::VIRTUAL_HOST,
            aliases: HashSet::new(),
            namespaces: HashSet::new(),
            aliases_checked: None,
            generation: 0,
            current,
            held: HashMap::new(),
            requested: false,
            answered: false,
            dirty: true,
            diffed: None,
            resend: Vec::new(),
            outstanding: None,
        }
    }

    /// Applies the subscription part of a request (honoured whatever its nonce).
    fn apply_request(&mut self, req: &DeltaDiscoveryRequest, legacy_wildcard: bool) {
        let first = !self.requested;
        self.requested = true;
        if !first && req.resource_names_subscribe.is_empty() && req.resource_names_unsubscribe.is_empty() {
            // An ACK or NACK and nothing else: what the client subscribes to is unchanged.
            return;
        }
        self.diffed = None;
        self.generation += 1;
        if first {
            // Reconnecting: what the client already has need not be sent again.
            for (name, version) in &req.initial_resource_versions {
                let held = Resource::digest_of_version(name, version).map_or(Held::Foreign, Held::Version);
                self.held.insert(name.as_str().into(), held);
            }
            if req.resource_names_subscribe.is_empty() && legacy_wildcard {
                self.wildcard = true;
            }
        }
        for name in &req.resource_names_subscribe {
            if name == WILDCARD {
                self.wildcard = true;
                continue;
            }
            if let Some(glob) = Glob::parse(name) {
                // Subscribed again: its members are sent again.
                self.held.retain(|held, _| !glob.contains(held));
                if !self.globs.iter().any(|(n, _)| **n == **name) {
                    self.globs.push((name.as_str().into(), glob));
                }
                continue;
            }
            let name: Arc<str> = canonical_name(name).into();
            if self.vhds {
                // Envoy subscribes to its route configuration's name (a namespace) first, then to
                // `<route configuration>/<host>` for each host it cannot route. Virtual hosts are
                // sent on demand: the namespace alone is answered "not found", which completes
                // Envoy's initial fetch (an empty response would not reach a named watch).
                self.held.remove(&name);
                self.aliases.insert(name);
                continue;
            }
            // A name subscribed again is sent again even if unchanged (go-control-plane #431),
            // unless the client has just declared the version it holds.
            if !(first && req.initial_resource_versions.contains_key(&*name)) {
                self.held.remove(&name);
            }
            self.names.insert(name);
        }
        for name in &req.resource_names_unsubscribe {
            if name == WILDCARD {
                self.wildcard = false;
            } else if Glob::parse(name).is_some() {
                self.globs.retain(|(n, _)| **n != **name);
            } else {
                let name = canonical_name(name);
                self.names.remove(&*name);
                self.aliases.remove(&*name);
            }
        }
        if !self.wildcard {
            // The client drops what it no longer subscribes to: it will need it sent again.
            let (names, aliases) = (&self.names, &self.aliases);
            let globs = &self.globs;
            self.held.retain(|name, _| {
                names.contains(name) || aliases.contains(name) || globs.iter().any(|(_, g)| g.contains(name))
            });
        }
        self.dirty = true;
    }

    /// The difference between what the client holds and what it subscribes to. The client is
    /// assumed to hold what is sent from now on.
    fn diff(&mut self, set: &TypeResources) -> Diff {
        let mut diff = Diff::new(self.ttl_client);
        if !self.aliases.is_empty() {
            self.resolve_aliases(set, &mut diff);
        }
        let previous = self.diffed.replace(set.digest());
        let resend = std::mem::take(&mut self.resend);
        if previous == Some(set.digest()) {
            // The same content as last time: only what must be sent again.
            self.diff_names(set, resend.iter(), &mut diff);
            return diff;
        }
        if let Some(changed) = previous.and_then(|p| set.changed_since(p)) {
            self.diff_names(set, changed.iter().chain(&resend), &mut diff);
            return diff;
        }
        if self.wildcard && self.held.is_empty() {
            // A fresh wildcard subscriber: the body built once for all of them.
            if !set.is_empty() {
                diff.chunks.push(TtlView::delta_body(set, self.ttl_client).clone());
                diff.count = set.len();
            }
            for r in set.iter() {
                self.held.insert(r.name_arc().clone(), Held::Version(r.name_version_digest()));
            }
        } else if self.wildcard {
            for r in set.iter() {
                diff.add_if_changed(&mut self.held, r);
            }
        } else {
            for (_, glob) in &self.globs {
                for r in glob.members(set) {
                    diff.add_if_changed(&mut self.held, r);
                }
            }
        }
        for name in &self.names {
            match set.get(name) {
                Some(r) if !self.wildcard => diff.add_if_changed(&mut self.held, r),
                Some(_) => {}
                None => {
                    // A subscribed name that does not exist (go-control-plane #565).
                    if self.held.insert(name.clone(), Held::Absent) != Some(Held::Absent) {
                        diff.removed.push(name.clone());
                    }
                }
            }
        }
        // Deletions of what the client holds (explicit names not in the set are handled above).
        let names = &self.names;
        self.held.retain(|name, held| {
            if *held == Held::Absent || set.get(name).is_some() || names.contains(name) {
                return true;
            }
            diff.removed.push(name.clone());
            false
        });
        diff
    }

    /// The difference restricted to `changed`, the names whose resource changed since the last
    /// difference (the subscription did not): the cost of an update follows what changed.
    fn diff_names<'a>(&mut self, set: &TypeResources, changed: impl Iterator<Item = &'a Arc<str>>, diff: &mut Diff) {
        for name in changed {
            let explicit = self.names.contains(name);
            if !(self.wildcard || explicit || self.globs.iter().any(|(_, g)| g.contains(name))) {
                continue;
            }
            match set.get(name) {
                Some(r) => diff.add_if_changed(&mut self.held, r),
                None if explicit => {
                    if self.held.insert(name.clone(), Held::Absent) != Some(Held::Absent) {
                        diff.removed.push(name.clone());
                    }
                }
                None => {
                    if self.held.remove(name).is_some_and(|h| h != Held::Absent) {
                        diff.removed.push(name.clone());
                    }
                }
            }
        }
    }

    /// VHDS: answers the aliases not yet resolved. An alias that names a virtual host, or that
    /// a virtual host of its route configuration serves, is answered with that virtual host and
    /// its name is subscribed from then on (updates and removal follow it by name); aliases
    /// that resolve to one virtual host share its one entry (a response names a resource once).
    /// One that resolves to nothing is answered once with an empty resource named after it, as
    /// Envoy expects, and waits for a virtual host that serves it: it is looked at again only
    /// when the virtual hosts change, and at most [`MAX_WAITING_ALIASES`] wait (Envoy asks again
    /// for a host it still cannot route), so requests for made-up hosts cannot grow a stream.
    fn resolve_aliases(&mut self, set: &TypeResources, diff: &mut Diff) {
        let changed = self.aliases_checked.replace(set.digest()) != Some(set.digest());
        let pending: Vec<Arc<str>> =
            self.aliases.iter().filter(|a| changed || self.held.get(*a) != Some(&Held::Absent)).cloned().collect();
        let mut found: BTreeMap<Arc<str>, (Resource, Vec<Arc<str>>)> = BTreeMap::new();
        for alias in pending {
            let target = set.get(&alias).or_else(|| {
                let (route_config, host) = split_vhds_alias(&alias)?;
                resolve_vhds_alias(set, route_config, host)
            });
            match target {
                Some(r) => {
                    self.aliases.remove(&alias);
                    self.held.remove(&alias);
                    found.entry(r.name_arc().clone()).or_insert_with(|| (r.clone(), Vec::new())).1.push(alias);
                }
                None => {
                    if self.held.insert(alias.clone(), Held::Absent) != Some(Held::Absent) {
                        diff.chunks.push(not_found_entry(&alias));
                        diff.count += 1;
                    }
                    if self.aliases.len() > MAX_WAITING_ALIASES {
                        self.aliases.remove(&alias);
                        self.held.remove(&alias);
                    }
                }
            }
        }
        for (name, (r, aliases)) in found {
            self.held.insert(name.clone(), Held::Version(r.name_version_digest()));
            if self.names.insert(name) {
                self.generation += 1;
            }
            diff.chunks.push(alias_entry(&r, &aliases));
            diff.count += 1;
        }
    }

    /// Makes the next response send `name` again even if the client holds its version.
    fn resend(&mut self, name: &str) {
        if let Some((name, held)) = self.held.remove_entry(name) {
            if held == Held::Absent {
                self.held.insert(name, held);
            } else {
                self.resend.push(name);
                self.dirty = true;
            }
        }
    }
}

pub(crate) struct DeltaStream {
    shared: Arc<Shared>,
    id: StreamId,
    requests: Streaming<DeltaDiscoveryRequest>,
    /// The type of a per-type stream; `None` for ADS.
    fixed_type: Option<&'static str>,
    node: Option<Node>,
    types: Vec<TypeState>,
    /// Indices into `types`, in sending order (CDS, EDS, LDS, RDS, the rest).
    order: Vec<usize>,
    changes: StreamMap<usize, WatchStream<Change>>,
    next_nonce: u64,
    outbox: VecDeque<EncodedMessage>,
    done: bool,
    /// The client honours TTLs: resources with a TTL go out with it.
    ttl_client: bool,
    /// Ticks when heartbeats are due (only for a TTL client of a server that sends them).
    heartbeat: Option<tokio::time::Interval>,
}

impl DeltaStream {
    pub(crate) fn new(
        shared: Arc<Shared>,
        requests: Streaming<DeltaDiscoveryRequest>,
        fixed_type: Option<&'static str>,
    ) -> Self {
        let id = shared.next_stream_id();
        Self {
            shared,
            id,
            requests,
            fixed_type,
            node: None,
            types: Vec::new(),
            order: Vec::new(),
            changes: StreamMap::new(),
            next_nonce: 0,
            outbox: VecDeque::new(),
            done: false,
            ttl_client: false,
            heartbeat: None,
        }
    }

    /// The next response to send, `None` when the stream is over.
    pub(crate) async fn next_response(&mut self) -> Option<Result<EncodedMessage, Status>> {
        loop {
            if let Some(m) = self.outbox.pop_front() {
                return Some(Ok(m));
            }
            if self.done {
                return None;
            }
            tokio::select! {
                biased;
                req = self.requests.next() => match req {
                    None => self.done = true,
                    Some(Err(status)) => {
                        tracing::debug!(stream = self.id, %status, "delta xDS stream ended by the client");
                        self.done = true;
                    }
                    Some(Ok(req)) => {
                        if let Err(status) = self.on_request(req) {
                            tracing::debug!(stream = self.id, %status, "delta xDS stream refused");
                            self.done = true;
                            self.shared.observer.stream_closed(self.id, Some(&status));
                            self.node = None;
                            return Some(Err(status));
                        }
                        self.flush();
                    }
                },
                Some((idx, value)) = self.changes.next(), if !self.changes.is_empty() => {
                    self.set_current(idx, value);
                    // Take every change that is already there, so types changed together are
                    // sent in order (CDS before EDS before LDS before RDS).
                    while let Some(Some((idx, value))) = self.changes.next().now_or_never() {
                        self.set_current(idx, value);
                    }
                    self.flush();
                }
                _ = super::next_heartbeat(&mut self.heartbeat), if self.heartbeat.is_some() => {
                    self.send_heartbeats();
                }
            }
        }
    }

    fn set_current(&mut self, idx: usize, value: Change) {
        let st = &mut self.types[idx];
        st.current = value;
        st.dirty = true;
    }

    fn on_request(&mut self, req: DeltaDiscoveryRequest) -> Result<(), Status> {
        let first_request = self.node.is_none();
        let type_url = super::check_request(
            &self.shared,
            self.id,
            &mut self.node,
            req.node.as_ref(),
            self.fixed_type,
            &req.type_url,
        )?;
        if first_request {
            self.ttl_client = self.node.as_ref().is_some_and(super::supports_ttl);
            self.heartbeat = super::heartbeat_timer(&self.shared, self.ttl_client);
        }
        self.shared.observer.request(self.id, type_url, &req.resource_names_subscribe);
        let idx = match self.types.iter().position(|t| &*t.type_url == type_url) {
            Some(idx) => idx,
            None => {
                super::check_type_count(self.types.len())?;
                let rx = match &self.node {
                    Some(node) => self.shared.cache.watch(node, type_url),
                    None => return Err(Status::internal("stream has no node")),
                };
                self.add_type(type_url, rx)
            }
        };
        let legacy_wildcard = self.shared.legacy_wildcard(type_url);
        let node_id = self.node.as_ref().map_or("", |n| n.id.as_str());
        let st = &mut self.types[idx];
        let answers_outstanding = st.outstanding.as_ref().is_some_and(|(nonce, _)| *nonce == req.response_nonce);
        if answers_outstanding {
            if let Some((_, version)) = st.outstanding.take() {
                st.nacked = req.error_detail.is_some();
                match &req.error_detail {
                    Some(err) => {
                        tracing::warn!(stream = self.id, node = node_id, type_url, version = %version, error = %err.message, "delta NACK");
                        self.shared.observer.nack(self.id, type_url, &version, &err.message);
                    }
                    None => self.shared.observer.ack(self.id, type_url, &version),
                }
            }
        } else if !req.response_nonce.is_empty() {
            // A stale nonce: the client has not seen our last response yet. Its subscription
            // changes still count.
            tracing::trace!(stream = self.id, type_url, nonce = %req.response_nonce, "stale nonce");
        }
        st.apply_request(&req, legacy_wildcard);
        if self.fixed_type.is_none() && matches!(type_url, type_url::ROUTE | type_url::VIRTUAL_HOST) {
            self.vhds_namespaces();
        }
        Ok(())
    }

    /// Over ADS, Envoy's VHDS subscription names nothing at first: its watch is keyed by the
    /// route configuration's name (a namespace, which Envoy does not send), and only a resource
    /// of that name or namespace completes its initial fetch. So every route configuration the
    /// client subscribes to is answered on the VHDS type as an alias: "not found" unless a
    /// virtual host is named after it. Virtual hosts themselves are then fetched on demand.
    fn vhds_namespaces(&mut self) {
        let Some(routes) = self.types.iter().position(|t| &*t.type_url == type_url::ROUTE) else { return };
        let Some(vhds) = self.types.iter().position(|t| &*t.type_url == type_url::VIRTUAL_HOST) else { return };
        let new: Vec<Arc<str>> =
            self.types[routes].names.iter().filter(|n| !self.types[vhds].namespaces.contains(*n)).cloned().collect();
        let vhds = &mut self.types[vhds];
        if !vhds.requested || new.is_empty() {
            return;
        }
        for name in new {
            // `<route configuration>/`, the empty host: Envoy matches it to the watch by its
            // namespace, and an alias equal to the name leaves the watch's interest as it is.
            vhds.aliases.insert(format!("{name}/").into());
            vhds.namespaces.insert(name);
        }
        vhds.dirty = true;
    }

    fn add_type(&mut self, type_url: &str, mut rx: crate::cache::TypeWatch) -> usize {
        let current = rx.borrow_and_update().clone();
        let idx = self.types.len();
        // Virtual hosts get no TTL: they can get no heartbeat (Envoy's VHDS takes a body-less
        // resource as a removal), so a TTL would only expire them while the server runs.
        let ttl_client = self.ttl_client && type_url != type_url::VIRTUAL_HOST;
        self.types.push(TypeState::new(type_url, current, ttl_client));
        self.changes.insert(idx, WatchStream::from_changes(rx));
        let p = push_priority(type_url);
        let pos =
            self.order.iter().position(|&i| push_priority(&self.types[i].type_url) > p).unwrap_or(self.order.len());
        self.order.insert(pos, idx);
        idx
    }

    /// Queues a response for every type that has something to send, in sending order.
    fn flush(&mut self) {
        for i in 0..self.order.len() {
            let st = &mut self.types[self.order[i]];
            if !st.requested || !st.dirty || st.outstanding.is_some() {
                continue;
            }
            let Some(current) = st.current.clone() else { continue };
            st.dirty = false;
            let Diff { chunks, count, removed, replaced, .. } = st.diff(&current);
            if chunks.is_empty() && removed.is_empty() && st.answered {
                continue;
            }
            st.answered = true;
            let nonce = self.queue_response(self.order[i], &current, chunks, count, &removed, false);
            let st = &mut self.types[self.order[i]];
            let subscribed = if st.wildcard { Subscribed::All } else { Subscribed::SharedNames(&st.names) };
            let sent = SentResources {
                type_url: &st.type_url,
                version: current.version(),
                resources: &current,
                subscribed,
                subscription_generation: st.generation,
            };
            self.shared.observer.resources_sent(self.id, &sent);
            st.outstanding = Some((nonce, current.version().to_owned()));
            if self.fixed_type.is_none() && current.type_url() == type_url::CLUSTER && !replaced.is_empty() {
                self.resend_endpoints_of(&current, &replaced);
            }
        }
    }

    /// Queues a heartbeat for every type with nothing outstanding or pending whose last
    /// response was ACKed: a body-less entry for each resource with a TTL that the client holds
    /// at its current version. Its cost follows the resources with a TTL.
    fn send_heartbeats(&mut self) {
        for i in 0..self.order.len() {
            let idx = self.order[i];
            let st = &self.types[idx];
            if !st.ttl_client || !st.requested || st.dirty || st.nacked || st.outstanding.is_some() {
                continue;
            }
            let Some(current) = st.current.clone() else { continue };
            let chunks: Vec<Bytes> = current
                .ttl_view()
                .resources()
                .iter()
                .filter(|r| {
                    (st.wildcard || st.names.contains(r.name()))
                        && st.held.get(r.name()) == Some(&Held::Version(r.name_version_digest()))
                })
                .filter_map(|r| r.delta_heartbeat_entry().cloned())
                .collect();
            if chunks.is_empty() {
                continue;
            }
            let count = chunks.len();
            let nonce = self.queue_response(idx, &current, chunks, count, &[], true);
            self.types[idx].outstanding = Some((nonce, current.version().to_owned()));
        }
    }

    /// Queues a response of type `idx` made of `chunks` (`count` resources) and `removed` at the
    /// version of `current`, reports it to the observer, and returns its nonce.
    fn queue_response(
        &mut self,
        idx: usize,
        current: &TypeResources,
        chunks: Vec<Bytes>,
        count: usize,
        removed: &[Arc<str>],
        heartbeat: bool,
    ) -> String {
        let st = &self.types[idx];
        self.next_nonce += 1;
        let nonce = self.next_nonce.to_string();
        let head = response_head(current.version(), &st.type_url, &nonce, removed, &self.shared.control_plane_id);
        let message = EncodedMessage::new(head, chunks);
        let sent = super::Outgoing { type_url: &st.type_url, current, nonce: &nonce, count, heartbeat };
        super::report_response(&self.shared, self.id, &sent, &message);
        self.outbox.push_back(message);
        nonce
    }
}

impl DeltaStream {
    /// Envoy warms an updated cluster until it receives its endpoints, but does not ask for them
    /// again over Delta ADS (the name stays subscribed): send them again after the cluster.
    fn resend_endpoints_of(&mut self, clusters: &TypeResources, replaced: &[Arc<str>]) {
        let Some(eds) = self.types.iter_mut().find(|t| &*t.type_url == type_url::ENDPOINT) else { return };
        for cluster in replaced {
            if let Some(service) = clusters.eds_service_of(cluster) {
                eds.resend(service);
            }
        }
    }
}

impl Drop for DeltaStream {
    fn drop(&mut self) {
        if self.node.is_some() {
            self.shared.observer.stream_closed(self.id, None);
        }
    }
}

/// The `DeltaDiscoveryResponse.resources` entry of `r` answering the VHDS `aliases`: the
/// resource (version 1, resource 2, name 3) with `aliases` (4) naming them.
fn alias_entry(r: &Resource, aliases: &[Arc<str>]) -> Bytes {
    let any = r.sotw_entry();
    let body_len = len_field_size(1, r.version().len())
        + any.len()
        + len_field_size(3, r.name().len())
        + aliases.iter().map(|a| len_field_size(4, a.len())).sum::<usize>();
    let mut entry = BytesMut::with_capacity(len_field_size(2, body_len));
    prost::encoding::encode_key(2, prost::encoding::WireType::LengthDelimited, &mut entry);
    prost::encoding::encode_varint(body_len as u64, &mut entry);
    put_len_field(&mut entry, 1, r.version().as_bytes());
    entry.extend_from_slice(any);
    put_len_field(&mut entry, 3, r.name().as_bytes());
    for alias in aliases {
        put_len_field(&mut entry, 4, alias.as_bytes());
    }
    entry.freeze()
}

/// The entry that tells a VHDS client no virtual host serves `alias`: a resource without a body
/// whose name (3) and `aliases` (4) are the alias.
fn not_found_entry(alias: &str) -> Bytes {
    let body_len = len_field_size(3, alias.len()) + len_field_size(4, alias.len());
    let mut entry = BytesMut::with_capacity(len_field_size(2, body_len));
    prost::encoding::encode_key(2, prost::encoding::WireType::LengthDelimited, &mut entry);
    prost::encoding::encode_varint(body_len as u64, &mut entry);
    put_len_field(&mut entry, 3, alias.as_bytes());
    put_len_field(&mut entry, 4, alias.as_bytes());
    entry.freeze()
}

/// Encodes the per-stream fields of a `DeltaDiscoveryResponse`: system_version_info (1),
/// type_url (4), nonce (5), removed_resources (6) and control_plane (7).
fn response_head(version: &str, type_url: &str, nonce: &str, removed: &[Arc<str>], control_plane: &str) -> Bytes {
    let cp_len = if control_plane.is_empty() { 0 } else { len_field_size(1, control_plane.len()) };
    let mut buf = BytesMut::with_capacity(
        len_field_size(1, version.len())
            + len_field_size(4, type_url.len())
            + len_field_size(5, nonce.len())
            + removed.iter().map(|n| len_field_size(6, n.len())).sum::<usize>()
            + if cp_len > 0 { len_field_size(7, cp_len) } else { 0 },
    );
    put_len_field(&mut buf, 1, version.as_bytes());
    put_len_field(&mut buf, 4, type_url.as_bytes());
    put_len_field(&mut buf, 5, nonce.as_bytes());
    for name in removed {
        put_len_field(&mut buf, 6, name.as_bytes());
    }
    if cp_len > 0 {
        prost::encoding::encode_key(7, prost::encoding::WireType::LengthDelimited, &mut buf);
        prost::encoding::encode_varint(cp_len as u64, &mut buf);
        put_len_field(&mut buf, 1, control_plane.as_bytes());
    }
    buf.freeze()
}
