//! The operator process: connects to Kubernetes and Prometheus, serves its telemetry, waits for
//! leadership, and runs the controller while it leads.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tracing::{error, info};

use crate::controller::{self, Context, Settings};
use crate::leader::{self, LeaseSettings};
use crate::source::{Prometheus, PrometheusConfig};
use crate::telemetry::{self, Health, Metrics};
use crate::{Error, Result};

/// Everything `prescaler run` is configured with.
pub struct OperatorConfig {
    pub prometheus: PrometheusConfig,
    pub settings: Settings,
    pub listen: SocketAddr,
    /// `None` runs without leader election (one replica only).
    pub lease: Option<LeaseSettings>,
}

/// Runs until a signal, or until leadership is lost (the process then exits so that it restarts
/// as a clean standby, as client-go's controllers do).
pub async fn run(config: OperatorConfig) -> Result<()> {
    let metrics = Arc::new(Metrics::default());
    let health = Arc::new(Health::default());
    health.beat();
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| Error::Io {
            context: format!("listening on {}", config.listen),
            source: e,
        })?;
    info!(address = %config.listen, "serving /metrics, /healthz and /readyz");
    let server = tokio::spawn(telemetry::serve(
        listener,
        metrics.clone(),
        health.clone(),
        config.settings.sync_period * 4 + Duration::from_secs(60),
    ));
    let heartbeat = {
        let health = health.clone();
        tokio::spawn(async move {
            loop {
                health.beat();
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        })
    };

    let client = kube::Client::try_default()
        .await
        .map_err(|e| Error::Config {
            what: "Kubernetes client".into(),
            message: format!(
                "{e} (in a pod the service account is used; elsewhere the kubeconfig)"
            ),
        })?;
    let prometheus = Prometheus::new(&config.prometheus)?;
    health.ready.store(true, Ordering::Relaxed);

    if let Some(lease) = &config.lease {
        info!(
            lease = lease.name,
            identity = lease.identity,
            "waiting for leadership"
        );
        leader::acquire(&client, lease).await;
    }
    let ctx = Arc::new(Context::new(
        client.clone(),
        prometheus,
        metrics,
        config.settings,
    ));
    let controller = controller::run(ctx);
    match &config.lease {
        Some(lease) => {
            tokio::select! {
                _ = controller => info!("controller stopped"),
                _ = leader::hold(&client, lease) => {
                    error!("leadership lost; exiting so that this replica restarts as a standby");
                    heartbeat.abort();
                    server.abort();
                    return Err(Error::Config {
                        what: "leader election".into(),
                        message: "lost the Lease".into(),
                    });
                }
            }
        }
        None => controller.await,
    }
    heartbeat.abort();
    server.abort();
    Ok(())
}
