//! The operator process: connects to Kubernetes and Prometheus, serves its telemetry, waits for
//! leadership, and runs the controller (with the watches it reads) while it leads.

pub mod backoff;
pub mod conditions;
pub mod controller;
pub mod event_filter;
pub mod fair_queue;
pub mod give_back;
pub mod leader;
pub mod shards;
pub mod telemetry;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::Api;
use kube::api::DynamicObject;
use kube::runtime::{WatchStreamExt, predicates, reflector, watcher};
use tracing::{error, info, warn};

use crate::adapters::history::LoadSource;
use crate::adapters::kubernetes;
use crate::adapters::long_term;
use crate::adapters::prometheus::PrometheusConfig;
use crate::api::PredictiveScaler;
use crate::{Error, Result};
use controller::{Context, Settings};
use leader::{Leadership, LeaseSettings};
use shards::{Election, ShardSet};
use telemetry::{Health, Metrics, Probes};

/// Everything `prescaler run` is configured with.
pub struct OperatorConfig {
    pub prometheus: PrometheusConfig,
    /// A long-term store for the history's reads (`--history-prometheus-url`), beside Prometheus.
    pub long_term: Option<PrometheusConfig>,
    /// What the controller runs with (sync period, concurrency, confinement, KEDA, …), as the
    /// command line set it.
    pub settings: Settings,
    pub listen: SocketAddr,
    /// `None` runs without leader election (one replica only).
    pub lease: Option<LeaseSettings>,
    /// With leader election, more than 1 splits the scalers into this many shards, a Lease
    /// each (see `shards`); 1 is one leader for all.
    pub shards: u32,
}

/// Runs until a signal (then releases the Lease), or until leadership is lost (the process then
/// exits so that it restarts as a clean standby, as client-go's controllers do).
///
/// Boxed, as `run_controller` and `give_back::give_back_everything` are: an `async fn`'s state
/// machine (and everything it awaits: the controller, kube's runtime, the adapters) is compiled
/// in each crate that awaits it, so unboxed it was compiled again in the `prescaler` binary and
/// in the integration tests, in the release profile (the binary took 96 s of CPU to compile, 21 s
/// since). Boxed in this library, it is compiled once, here; the cost is one allocation per call.
pub fn run(config: OperatorConfig) -> BoxFuture<'static, Result<()>> {
    run_operator(config).boxed()
}

async fn run_operator(config: OperatorConfig) -> Result<()> {
    let metrics = Arc::new(Metrics::default());
    let health = Arc::new(Health::default());
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| Error::Io {
            context: format!("listening on {}", config.listen),
            source: e,
        })?;
    let (client, address) = connect().await?;
    let prometheus = long_term::source(&config.prometheus, config.long_term.as_ref())?;
    let election = match config.lease {
        Some(lease) if config.shards > 1 => Election::Shards(Arc::new(ShardSet::new(
            client.clone(),
            lease,
            config.shards,
        ))),
        Some(lease) => Election::Leader(Arc::new(Leadership::new(client.clone(), lease))),
        None => Election::Alone,
    };
    let caches = Caches::new();
    let probes = Probes {
        stall_after: config.settings.sync_period * 4 + Duration::from_secs(60),
        lease: election.clone(),
        idle: {
            let scalers = caches.scalers.clone();
            Arc::new(move || scalers.state().is_empty())
        },
    };
    info!(address = %config.listen, "serving /metrics, /healthz and /readyz");
    let server = tokio::spawn(telemetry::serve(
        listener,
        metrics.clone(),
        health.clone(),
        probes,
    ));
    health.set_started();
    wait_for_api_server(&client, &address).await;

    let outcome = match election {
        Election::Leader(lease) => {
            info!(
                lease = lease.settings().name,
                identity = lease.settings().identity,
                "waiting for leadership"
            );
            // Not beside replicas of a sharded configuration still running (a `--shards`
            // change rolling out): they write for the scalers of the shards they hold.
            shards::wait_until_no_shard_is_held(client.clone(), lease.settings()).await;
            lease.acquire().await;
            health.set_leading();
            let election = Election::Leader(lease.clone());
            let controller = run_controller(
                client,
                prometheus,
                metrics,
                health,
                config.settings,
                election,
                caches,
            );
            tokio::select! {
                _ = controller => {
                    info!("controller stopped");
                    lease.release().await;
                    Ok(())
                }
                _ = lease.hold() => {
                    error!("leadership lost; exiting so that this replica restarts as a standby");
                    Err(Error::Config {
                        what: "leader election".into(),
                        message: "lost the Lease".into(),
                    })
                }
            }
        }
        Election::Shards(shards) => {
            run_sharded(
                shards,
                client,
                prometheus,
                metrics,
                health,
                config.settings,
                caches,
            )
            .await;
            Ok(())
        }
        Election::Alone => {
            health.set_leading();
            run_controller(
                client,
                prometheus,
                metrics,
                health,
                config.settings,
                Election::Alone,
                caches,
            )
            .await;
            Ok(())
        }
    };
    server.abort();
    outcome
}

/// With shards: every replica runs the controller at once and writes only for the shards it
/// holds, which it takes, renews and gives up beside it (see `shards`). A lost shard does not
/// end the process, as a lost Lease does for the one leader: its scalers are forgotten and
/// another replica takes them. On a signal, every shard is given up for the others to take at
/// once.
async fn run_sharded(
    shards: Arc<ShardSet>,
    client: kube::Client,
    source: Arc<dyn LoadSource>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    settings: Settings,
    caches: Caches,
) {
    info!(
        shards = shards.count(),
        identity = shards.settings().identity,
        "taking part in the shards"
    );
    shards.round().await;
    health.set_leading();
    let holding = tokio::spawn({
        let shards = shards.clone();
        async move { shards.run().await }
    });
    let counting = tokio::spawn({
        let (shards, metrics) = (shards.clone(), metrics.clone());
        let mut changes = shards.changes();
        async move {
            loop {
                metrics.shards_held(shards.held().len());
                if changes.changed().await.is_err() {
                    return;
                }
            }
        }
    });
    let election = Election::Shards(shards.clone());
    run_controller(client, source, metrics, health, settings, election, caches).await;
    info!("controller stopped");
    holding.abort();
    counting.abort();
    shards.release_all().await;
}

/// A client for the API server of the in-cluster service account, else of the kubeconfig, and
/// that server's address (for messages).
async fn connect() -> Result<(kube::Client, String)> {
    let config = kube::Config::infer().await.map_err(|e| Error::Config {
        what: "Kubernetes client configuration (in-cluster service account, else kubeconfig)"
            .into(),
        message: crate::chain(&e),
    })?;
    let address = config.cluster_url.to_string();
    Ok((kube::Client::try_from(config)?, address))
}

/// The first wait for the API server before its first answer, and the longest between tries.
pub const API_SERVER_BACKOFF: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(60));

/// Waits until the API server answers (its `/version`), trying again with exponential backoff
/// (1 s, 2 s, 4 s … 60 s): an unreachable server is logged once per try with its address and
/// the cause, not at every turn of every loop that would otherwise find it gone. The process
/// stays up meanwhile (its `/healthz` answers; `/readyz` does not report ready), as client-go's
/// controllers wait for their caches.
pub async fn wait_for_api_server(client: &kube::Client, address: &str) {
    let (mut delay, max) = API_SERVER_BACKOFF;
    let mut failures = 0u32;
    loop {
        let answer =
            tokio::time::timeout(Duration::from_secs(10), client.apiserver_version()).await;
        let problem = match answer {
            Ok(Ok(version)) => {
                info!(
                    address,
                    version = %version.git_version,
                    "connected to the Kubernetes API server"
                );
                return;
            }
            // It answered, if not with its version (RBAC, an old proxy): it is there.
            Ok(Err(kube::Error::Api(status))) => {
                info!(
                    address,
                    code = status.code,
                    "connected to the Kubernetes API server"
                );
                return;
            }
            Ok(Err(e)) => crate::chain(&e),
            Err(_) => "no answer within 10s".to_string(),
        };
        failures += 1;
        warn!(
            address,
            error = %problem,
            failures,
            retry_in = ?delay,
            "cannot reach the Kubernetes API server"
        );
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(max);
    }
}

/// The caches the controller reads: every PredictiveScaler, every HPA and (with KEDA support
/// on) every KEDA ScaledObject, each kept by a watch that `run_controller` starts. They exist
/// before it, so that `/healthz` can see the scalers.
pub struct Caches {
    pub scalers: reflector::Store<PredictiveScaler>,
    scaler_writer: reflector::store::Writer<PredictiveScaler>,
    pub hpas: reflector::Store<HorizontalPodAutoscaler>,
    hpa_writer: reflector::store::Writer<HorizontalPodAutoscaler>,
    pub scaled_objects: reflector::Store<DynamicObject>,
    scaled_object_writer: reflector::store::Writer<DynamicObject>,
}

impl Caches {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        let (scalers, scaler_writer) = reflector::store();
        let (hpas, hpa_writer) = reflector::store();
        let scaled_object_writer =
            reflector::store::Writer::new(kubernetes::scaled_object_resource());
        Self {
            scalers,
            scaler_writer,
            hpas,
            hpa_writer,
            scaled_objects: scaled_object_writer.as_reader(),
            scaled_object_writer,
        }
    }
}

/// Starts the watches and runs the controller until a signal: what a leader does. Boxed (see
/// `run`).
pub fn run_controller(
    client: kube::Client,
    source: Arc<dyn LoadSource>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    settings: Settings,
    election: impl Into<Election>,
    caches: Caches,
) -> BoxFuture<'static, ()> {
    controller_until_signal(
        client,
        source,
        metrics,
        health,
        settings,
        election.into(),
        caches,
    )
    .boxed()
}

async fn controller_until_signal(
    client: kube::Client,
    source: Arc<dyn LoadSource>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    settings: Settings,
    election: Election,
    caches: Caches,
) {
    let hpa_watch = tokio::spawn(
        // Slimmed before they are stored, and listed in pages, not in one answer from the watch
        // cache: HPAs are the tenants' to write and may be large (see `kubernetes::LIST_PAGE`).
        watcher(
            Api::<HorizontalPodAutoscaler>::all(client.clone()),
            watcher::Config::default().page_size(kubernetes::LIST_PAGE),
        )
        .default_backoff()
        .modify(kubernetes::slim_hpa)
        .reflect(caches.hpa_writer)
        .for_each(|_| async {}),
    );
    // With KEDA support on, whether a ScaledObject scales a target is read from a watch of
    // them, slimmed and paged as the HPAs are: listing a namespace's at each reconcile was a
    // request per ten of them per reconcile. Where KEDA is not installed the watch fails and
    // retries with backoff, and the lookup lists instead (see `observe::scaled_object_for`).
    let scaled_object_watch = settings.keda.then(|| {
        tokio::spawn(
            watcher(
                Api::<DynamicObject>::all_with(
                    client.clone(),
                    &kubernetes::scaled_object_resource(),
                ),
                watcher::Config::default().page_size(kubernetes::LIST_PAGE),
            )
            .default_backoff()
            .modify(kubernetes::slim_scaled_object)
            .reflect(caches.scaled_object_writer)
            .for_each(|_| async {}),
        )
    });
    // Reconcile on spec changes (and the deletion mark) — not on the controller's own status
    // writes, which would double every sync. The sync period's requeue brings everything else.
    // Slimmed before they are stored, and listed in pages (see `kubernetes::slim_scaler`).
    let changes = watcher(
        Api::<PredictiveScaler>::all(client.clone()),
        watcher::Config::default().page_size(kubernetes::LIST_PAGE),
    )
    .default_backoff()
    .modify(kubernetes::slim_scaler)
    .reflect(caches.scaler_writer)
    .applied_objects()
    .predicate_filter(predicates::generation, Default::default());
    let keda = settings.keda;
    let (leadership, shards) = match election {
        Election::Leader(lease) => (Some(lease), None),
        Election::Shards(shards) => (None, Some(shards)),
        Election::Alone => (None, None),
    };
    let mut ctx = Context::new(
        client,
        source,
        metrics,
        health,
        settings,
        caches.hpas,
        caches.scalers,
        leadership,
    );
    if keda {
        ctx = ctx.with_scaled_objects(caches.scaled_objects);
    }
    if let Some(shards) = shards {
        ctx = ctx.with_shards(shards);
    }
    controller::run(Arc::new(ctx), changes).await;
    hpa_watch.abort();
    if let Some(watch) = scaled_object_watch {
        watch.abort();
    }
}
