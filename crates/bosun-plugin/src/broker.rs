//! go-plugin's `plugin.GRPCBroker` (non-multiplexed, as in go-plugin 1.0.1): over one
//! bidirectional `StartStream` (opened by the host, served by the plugin) each side offers
//! extra gRPC servers to the other, one `ConnInfo{service_id, network, address}` per server.
//! The side that serves listens on a fresh unix socket ([`Broker::accept_and_serve`]); the
//! other side waits for the offer with the same id and connects ([`Broker::dial`]). Broker
//! connections use the same AutoMTLS certificates as the main connection.
//!
//! This is how a plugin calls back into Bosun: Bosun serves a service through the broker and
//! tells the plugin its id; the plugin dials it.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::Routes;
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};

use crate::error::{PluginError, Result};
use crate::handshake::Network;
use crate::mtls::MutualTls;
use crate::proto::go_plugin::ConnInfo;
use crate::proto::go_plugin::grpc_broker_client::GrpcBrokerClient;
use crate::proto::go_plugin::grpc_broker_server::GrpcBroker;
use crate::transport::{self, Listener};

/// How long [`Broker::dial`] waits for the other side's offer (go-plugin waits as long).
pub const DIAL_WAIT: Duration = Duration::from_secs(5);
/// The most distinct service ids the other side may have on offer at once.
const MAX_OFFERS: usize = 1024;
/// Offers queued for the stream before [`Broker::accept_and_serve`] waits.
const OUTGOING_QUEUE: usize = 64;

/// One side's broker: offers services to the other side and dials the other side's offers.
/// Cheap to clone; every clone is the same broker.
#[derive(Debug, Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Offers to send on the broker stream.
    outgoing: mpsc::Sender<ConnInfo>,
    /// The other side's offers by service id; an offer stays while its server runs, so it
    /// may be dialed more than once.
    offers: Mutex<HashMap<u32, Network>>,
    /// Bumped on every new offer.
    offered: watch::Sender<u64>,
    tls: Option<MutualTls>,
    /// Turns true (or is dropped) when the plugin stops; the brokered servers stop with it.
    stop: watch::Receiver<bool>,
    next_id: AtomicU32,
}

impl Broker {
    /// A broker whose offers go out through the returned receiver (to be sent on the
    /// `StartStream` stream); its servers stop when `stop` turns true or its sender is dropped.
    pub(crate) fn new(tls: Option<MutualTls>, stop: watch::Receiver<bool>) -> (Self, mpsc::Receiver<ConnInfo>) {
        let (outgoing, rx) = mpsc::channel(OUTGOING_QUEUE);
        let inner = Inner {
            outgoing,
            offers: Mutex::new(HashMap::new()),
            offered: watch::channel(0).0,
            tls,
            stop,
            next_id: AtomicU32::new(0),
        };
        (Self { inner: Arc::new(inner) }, rx)
    }

    /// Records an offer received from the other side.
    pub(crate) fn receive_offer(&self, info: ConnInfo) {
        let id = info.service_id;
        let network = match (info.network.as_str(), info.address) {
            (_, address) if address.is_empty() => {
                tracing::warn!(service_id = id, "broker offer without an address ignored");
                return;
            }
            ("unix", address) => Network::Unix(address),
            ("tcp", address) => Network::Tcp(address),
            (other, _) => {
                tracing::warn!(service_id = id, network = other, "broker offer with an unknown network ignored");
                return;
            }
        };
        let Ok(mut offers) = self.inner.offers.lock() else { return };
        if offers.len() >= MAX_OFFERS && !offers.contains_key(&id) {
            tracing::warn!(service_id = id, "too many broker offers; ignored");
            return;
        }
        tracing::debug!(service_id = id, address = network.address(), "broker offer received");
        offers.insert(id, network);
        drop(offers);
        self.inner.offered.send_modify(|n| *n += 1);
    }

    /// A service id not yet used by this side (1, 2, ...).
    pub fn next_id(&self) -> u32 {
        self.inner.next_id.fetch_add(1, Ordering::Relaxed).wrapping_add(1)
    }

    /// Serves `routes` on a new unix socket and offers it to the other side as `service_id`.
    /// The server runs until the plugin stops; connections must present the peer's AutoMTLS
    /// certificate when AutoMTLS is on.
    pub async fn accept_and_serve(&self, service_id: u32, routes: Routes) -> Result<()> {
        let dir = transport::socket_dir()?;
        let socket = dir.path().join("broker.sock");
        let listener = tokio::net::UnixListener::bind(&socket)?;
        let address = socket.display().to_string();
        let info = ConnInfo { service_id, network: "unix".to_owned(), address: address.clone(), knock: None };
        self.inner
            .outgoing
            .send(info)
            .await
            .map_err(|_| PluginError::Broker("the broker stream is closed".to_owned()))?;
        let tls = self.inner.tls.clone();
        let stop = self.inner.stop.clone();
        tokio::spawn(async move {
            // The socket's directory is removed when the server ends.
            let _dir = dir;
            if let Err(e) = transport::serve(routes, Listener::Unix(listener), tls, stop).await {
                tracing::warn!(service_id, error = %e, "brokered server failed");
            }
        });
        tracing::debug!(service_id, %address, "broker offer sent");
        Ok(())
    }

    /// Connects to the service the other side offers as `service_id`, waiting up to
    /// [`DIAL_WAIT`] for its offer.
    pub async fn dial(&self, service_id: u32) -> Result<Channel> {
        let mut offered = self.inner.offered.subscribe();
        let network = tokio::time::timeout(DIAL_WAIT, async {
            loop {
                if let Some(n) = self.inner.offers.lock().ok().and_then(|o| o.get(&service_id).cloned()) {
                    return Some(n);
                }
                if offered.changed().await.is_err() {
                    return None;
                }
            }
        })
        .await;
        match network {
            Ok(Some(network)) => transport::connect(&network, self.inner.tls.as_ref()).await,
            _ => Err(PluginError::Broker(format!("no offer of service {service_id} within {DIAL_WAIT:?}"))),
        }
    }
}

/// The host's end of the broker stream: opens `StartStream` to the plugin, sends the host's
/// offers and records the plugin's, until the stream ends (the plugin stopped).
pub(crate) async fn run_host_stream(
    plugin: String,
    channel: Channel,
    broker: Broker,
    outgoing: mpsc::Receiver<ConnInfo>,
) {
    let mut client = GrpcBrokerClient::new(channel);
    let mut incoming = match client.start_stream(ReceiverStream::new(outgoing)).await {
        Ok(resp) => resp.into_inner(),
        Err(status) => {
            tracing::debug!(%plugin, %status, "the plugin has no broker stream");
            return;
        }
    };
    loop {
        match incoming.message().await {
            Ok(Some(info)) => broker.receive_offer(info),
            Ok(None) => break,
            Err(status) => {
                tracing::debug!(%plugin, %status, "the broker stream ended");
                break;
            }
        }
    }
}

/// The plugin's `plugin.GRPCBroker` service: the host opens the one broker stream.
pub(crate) struct BrokerService {
    broker: Broker,
    outgoing: Mutex<Option<mpsc::Receiver<ConnInfo>>>,
}

impl BrokerService {
    /// The service for `broker`, whose offers come out of `outgoing`.
    pub(crate) fn new(broker: Broker, outgoing: mpsc::Receiver<ConnInfo>) -> Self {
        Self { broker, outgoing: Mutex::new(Some(outgoing)) }
    }
}

type OfferStream = Pin<Box<dyn Stream<Item = Result<ConnInfo, Status>> + Send>>;

#[tonic::async_trait]
impl GrpcBroker for BrokerService {
    type StartStreamStream = OfferStream;

    async fn start_stream(
        &self,
        request: Request<Streaming<ConnInfo>>,
    ) -> std::result::Result<Response<OfferStream>, Status> {
        let outgoing = self.outgoing.lock().ok().and_then(|mut o| o.take());
        let Some(outgoing) = outgoing else {
            return Err(Status::failed_precondition("the broker stream is already open"));
        };
        let mut incoming = request.into_inner();
        let broker = self.broker.clone();
        tokio::spawn(async move {
            while let Ok(Some(info)) = incoming.message().await {
                broker.receive_offer(info);
            }
        });
        // The stream ends when the plugin stops, so that it does not hold up a graceful stop.
        let mut stop = self.broker.inner.stop.clone();
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        let offers = futures::StreamExt::take_until(ReceiverStream::new(outgoing), Box::pin(stopped));
        Ok(Response::new(Box::pin(tokio_stream::StreamExt::map(offers, Ok))))
    }
}
