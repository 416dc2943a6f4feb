//! A stateful fake of the Kubernetes API server, for what prescaler uses, served to a real
//! `kube::Client` as a tower `Service` (no network). No kube-apiserver can run on these machines,
//! and the fake-client crates on crates.io have neither watch nor `/scale`.
//!
//! Which real behaviour each part stands for:
//! - objects live in one store with a cluster-wide `resourceVersion` counter, bumped on every
//!   write, as etcd's revision is;
//! - `metadata.generation` starts at 1 and is bumped only when `spec` changes, never by
//!   `/status` or metadata-only writes (the API server's rule for resources with a status
//!   subresource);
//! - list returns `metadata.resourceVersion`; `watch=true` streams `ADDED`/`MODIFIED`/`DELETED`
//!   events after the given resourceVersion (replayed from a log, then live), ends after
//!   `timeoutSeconds` as the real server does, and the watcher re-lists or re-watches;
//! - merge patches (RFC 7386) with a `metadata.resourceVersion` precondition that fails with 409
//!   Conflict when stale; PUT (replace) checks it too; server-side apply of `/status` replaces
//!   the status (prescaler is its only field manager, so what it stops applying goes, as it does
//!   on the real API server);
//! - `/status` writes only `status`; `/scale` of Deployments, StatefulSets, ReplicaSets and
//!   ReplicationControllers reads and writes `spec.replicas` as an `autoscaling/v1` `Scale`, and
//!   any other kind has no `/scale` (404);
//! - `compact` forgets the change log as etcd compaction does: a watch resuming from an older
//!   resourceVersion gets an ERROR event with 410 Gone and must list again; watches asked for
//!   bookmarks get one after their replay;
//! - `touch_status` writes an object's status as its own controller would (the HPA controller
//!   writes an HPA's status every sync), so guarded writes meet real 409 Conflicts;
//! - `hang_next` leaves requests unanswered, as a partitioned network or a stuck API server;
//! - API discovery lists the core and `apps/v1` kinds with their `/scale` subresources (a
//!   DaemonSet has none, as on a real server);
//! - delete of an object with finalizers only sets `deletionTimestamp` (and bumps the
//!   generation, as the API server does); the object goes once a write empties its finalizers;
//! - Events (`events.k8s.io/v1`), Leases, HPAs are ordinary objects in the store;
//! - Pods (`v1`) are ordinary objects too, listed in a namespace with an equality-based
//!   `labelSelector` (`app=web`, as the real server filters); any list honours `limit` and
//!   `continue` as the real server's paged lists do (at most `limit` items, and a `continue`
//!   token in `metadata` while more remain; the fake's token is the last key, the real one is
//!   opaque); `/scale` reports the workload's
//!   `spec.selector.matchLabels` as `status.selector` (`app=web`), as the real server does for
//!   Deployments, StatefulSets and ReplicaSets. A test writes a pod's `creationTimestamp` and
//!   conditions itself (the fake keeps a given `creationTimestamp`), standing for the scheduler
//!   and the kubelet, so that start-ups of minutes need no waiting;
//! - KEDA ScaledObjects (`keda.sh/v1alpha1`) are ordinary objects too; `keda_sync` stands for
//!   KEDA's operator reconciling one: it rewrites the HPA the ScaledObject owns (named by
//!   `spec.advanced.horizontalPodAutoscalerConfig.name`, else `keda-hpa-<name>`) so that its
//!   `minReplicas` is `minReplicaCount` (1 when that is 0 or unset) and its `maxReplicas` is
//!   `maxReplicaCount` (100 when unset) — KEDA's `getHPAMinReplicas`/`getHPAMaxReplicas` in
//!   controllers/keda/hpa.go; any other edit of those two HPA fields is undone, as KEDA undoes it
//!   (kedacore/keda#6061);
//! - ConfigMaps (`v1`) are ordinary objects too: a GET in a namespace returns the one of that
//!   name there (with `data`, `binaryData` and the `resourceVersion` of its last write) or 404,
//!   as the real server does; what a ConfigMap in another namespace holds is never in the answer
//!   (a calendar's `.ics`, `spec.calendar.configMapRefs`);
//! - `/version` answers as the API server does (the operator waits for it before it starts);
//! - for kubectl, a real client on a port (`serve_http`): `/api` and `/apis` list the served
//!   groups (legacy discovery, which kubectl falls back to when the answer is plain JSON), and
//!   each group version lists its resources with their short names (`psc`) and categories, as
//!   the API server publishes a CRD's `names`; `/openapi/v3` says that PATCH takes
//!   `fieldValidation`, so `kubectl apply` leaves validation to the server, which refuses a
//!   PredictiveScaler with a field its CRD's schema does not have ("strict decoding error:
//!   unknown field \"spec.peakWindow\""), as the API server checks a structural schema; a
//!   create sets `creationTimestamp` to now;
//! - a list or get asked for as a `meta.k8s.io/v1` Table (`kubectl get`) gets one built from
//!   the CRD's `additionalPrinterColumns` (JSONPaths evaluated on each object, `date` columns
//!   as kubectl's ages, priority > 0 only shown by `-o wide`), as the API server's table
//!   convertor for custom resources builds it; other kinds get NAME and AGE;
//! - Events written through `events.k8s.io/v1` are also served as core `v1` Events
//!   (`regarding` as `involvedObject`, `note` as `message`), filtered by `fieldSelector`
//!   on `involvedObject.*`, as the API server serves one Event storage through both APIs: what
//!   `kubectl describe` lists under "Events:";
//! - `fail_next` injects errors for the next matching requests, each with the reason the real
//!   server gives (409 Conflict from a concurrent writer, 403 Forbidden from RBAC, 429, 500), and
//!   every request is logged so that a test can assert what was (not) written.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use serde_json::{Value, json};
use tokio::sync::broadcast;

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// `apiVersion/plural`, e.g. `apps/v1/deployments` or `v1/configmaps`.
type Collection = String;

#[derive(Clone, Debug)]
pub struct Logged {
    pub method: Method,
    pub path: String,
    /// The query string's parameters (`limit`, `continue`, `labelSelector`, …), as sent.
    pub query: BTreeMap<String, String>,
    /// When the request arrived.
    pub at: std::time::Instant,
    /// Which client sent it: the name given to `serve_http_as` (`None`: in-process, or
    /// `serve_http`). A real API server tells clients apart by their credentials.
    pub via: Option<String>,
}

struct Fault {
    method: Method,
    path_contains: String,
    /// 0: never answer (a request lost in a partitioned network).
    code: u16,
    times: usize,
}

#[derive(Default)]
struct Store {
    revision: u64,
    /// Changes at or before this revision are forgotten (etcd compaction): a watch from an
    /// older resourceVersion gets 410 Gone and must list again.
    compacted: u64,
    objects: BTreeMap<(Collection, String, String), Value>,
    /// Every change, for watches that start from an older resourceVersion.
    changes: Vec<(u64, Collection, &'static str, Value)>,
    faults: Vec<Fault>,
    log: Vec<Logged>,
}

/// The fake API server. Clones share the same store.
#[derive(Clone)]
pub struct FakeApi {
    store: Arc<Mutex<Store>>,
    changes: broadcast::Sender<(u64, Collection, &'static str, Value)>,
    /// Bumped by `compact`: open watches end, as the real server drops them.
    compactions: tokio::sync::watch::Sender<u64>,
}

impl Default for FakeApi {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeApi {
    pub fn new() -> Self {
        Self {
            store: Arc::default(),
            changes: broadcast::channel(4096).0,
            compactions: tokio::sync::watch::channel(0).0,
        }
    }

    /// A real `kube::Client` whose requests this fake serves.
    pub fn client(&self) -> kube::Client {
        let api = self.clone();
        let service = tower::service_fn(move |req: Request<kube::client::Body>| {
            let api = api.clone();
            async move { Ok::<_, Infallible>(api.handle(req).await) }
        });
        kube::Client::new(service, "default")
    }

    /// Creates or replaces an object, as `kubectl apply` would (the test's way to set things up).
    pub fn put(&self, mut object: Value) {
        let collection = collection_of(&object);
        let ns = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        let name = object["metadata"]["name"]
            .as_str()
            .expect("metadata.name")
            .to_string();
        object["metadata"]["namespace"] = json!(ns);
        let mut store = self.store.lock().unwrap();
        let key = (collection.clone(), ns, name);
        let old = store.objects.get(&key).cloned();
        let kind = if old.is_some() { "MODIFIED" } else { "ADDED" };
        let generation = match &old {
            Some(o) if o["spec"] == object["spec"] => {
                o["metadata"]["generation"].as_i64().unwrap_or(1)
            }
            Some(o) => o["metadata"]["generation"].as_i64().unwrap_or(1) + 1,
            None => 1,
        };
        object["metadata"]["generation"] = json!(generation);
        if let Some(o) = &old {
            object["metadata"]["uid"] = o["metadata"]["uid"].clone();
            if object.get("status").is_none() && o.get("status").is_some() {
                object["status"] = o["status"].clone();
            }
            if object["metadata"].get("finalizers").is_none() {
                object["metadata"]["finalizers"] = o["metadata"]["finalizers"].clone();
            }
        } else {
            object["metadata"]["uid"] = json!(format!("uid-{}", store.revision + 1));
            // The API server sets it; a test may give one (pods created in the past).
            if object["metadata"].get("creationTimestamp").is_none() {
                object["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
            }
        }
        self.commit(&mut store, key, object, kind);
    }

    /// The stored object, if any.
    pub fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let key = object_key(api_version, kind, namespace, name);
        self.store.lock().unwrap().objects.get(&key).cloned()
    }

    /// Every stored object of a kind.
    pub fn list(&self, api_version: &str, kind: &str) -> Vec<Value> {
        let collection = format!("{api_version}/{}", plural(kind));
        let store = self.store.lock().unwrap();
        store
            .objects
            .iter()
            .filter(|((c, _, _), _)| *c == collection)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Deletes as `kubectl delete` would: finalizers first.
    pub fn delete(&self, api_version: &str, kind: &str, namespace: &str, name: &str) {
        let key = object_key(api_version, kind, namespace, name);
        let mut store = self.store.lock().unwrap();
        self.delete_locked(&mut store, key);
    }

    /// Removes the object's finalizers and deletes it in one step: one `DELETED` event. Stands
    /// for a person's `kubectl patch` of the finalizers and `kubectl delete` landing before a
    /// watcher has seen the first: the controller never reconciles the object without them.
    pub fn delete_past_finalizers(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) {
        let key = object_key(api_version, kind, namespace, name);
        let mut store = self.store.lock().unwrap();
        if let Some(mut object) = store.objects.get(&key).cloned() {
            object["metadata"]["finalizers"] = json!([]);
            self.commit(&mut store, key, object, "DELETED");
        }
    }

    /// The next `times` requests with this method whose path contains `path_contains` fail with `code`.
    pub fn fail_next(&self, method: Method, path_contains: &str, code: u16, times: usize) {
        self.store.lock().unwrap().faults.push(Fault {
            method,
            path_contains: path_contains.into(),
            code,
            times,
        });
    }

    /// The next `times` matching requests get no answer at all, as across a network partition
    /// or from an API server that stopped responding.
    pub fn hang_next(&self, method: Method, path_contains: &str, times: usize) {
        self.fail_next(method, path_contains, 0, times);
    }

    /// Compacts the change log, as etcd does: watches resuming from before now get 410 Gone.
    pub fn compact(&self) {
        let mut store = self.store.lock().unwrap();
        store.compacted = store.revision;
        store.changes.clear();
        self.compactions.send_modify(|n| *n += 1);
    }

    /// Writes an object's status without touching its spec, as a controller's status update
    /// does (the HPA controller writes an HPA's status every sync): a new resourceVersion.
    pub fn touch_status(&self, api_version: &str, kind: &str, namespace: &str, name: &str) {
        let key = object_key(api_version, kind, namespace, name);
        let mut store = self.store.lock().unwrap();
        if let Some(mut object) = store.objects.get(&key).cloned() {
            let n = object["status"]["observedWrites"].as_u64().unwrap_or(0) + 1;
            object["status"]["observedWrites"] = json!(n);
            self.commit(&mut store, key, object, "MODIFIED");
        }
    }

    /// One sync of KEDA's operator for ScaledObject `name` (see the module's notes): its HPA's
    /// `minReplicas` and `maxReplicas` are rewritten from the ScaledObject, whatever they were.
    pub fn keda_sync(&self, namespace: &str, name: &str) {
        let so = self
            .get("keda.sh/v1alpha1", "ScaledObject", namespace, name)
            .expect("the ScaledObject exists");
        let hpa_name = so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["name"]
            .as_str()
            .map_or_else(|| format!("keda-hpa-{name}"), str::to_string);
        let min = so["spec"]["minReplicaCount"]
            .as_i64()
            .filter(|m| *m > 0)
            .unwrap_or(1);
        let max = so["spec"]["maxReplicaCount"].as_i64().unwrap_or(100);
        let key = (
            "autoscaling/v2/horizontalpodautoscalers".to_string(),
            namespace.to_string(),
            hpa_name,
        );
        let mut store = self.store.lock().unwrap();
        let Some(mut hpa) = store.objects.get(&key).cloned() else {
            return;
        };
        if hpa["spec"]["minReplicas"] == json!(min) && hpa["spec"]["maxReplicas"] == json!(max) {
            return;
        }
        hpa["spec"]["minReplicas"] = json!(min);
        hpa["spec"]["maxReplicas"] = json!(max);
        let generation = hpa["metadata"]["generation"].as_i64().unwrap_or(1);
        hpa["metadata"]["generation"] = json!(generation + 1);
        self.commit(&mut store, key, hpa, "MODIFIED");
    }

    /// Every request served so far.
    pub fn requests(&self) -> Vec<Logged> {
        self.store.lock().unwrap().log.clone()
    }

    /// Requests that wrote (anything but GET).
    pub fn writes_to(&self, path_contains: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method != Method::GET && r.path.contains(path_contains))
            .count()
    }

    fn commit(
        &self,
        store: &mut Store,
        key: (Collection, String, String),
        mut object: Value,
        kind: &'static str,
    ) {
        store.revision += 1;
        object["metadata"]["resourceVersion"] = json!(store.revision.to_string());
        let change = (store.revision, key.0.clone(), kind, object.clone());
        if kind == "DELETED" {
            store.objects.remove(&key);
        } else {
            store.objects.insert(key, object);
        }
        store.changes.push(change.clone());
        let _ = self.changes.send(change);
    }

    fn delete_locked(&self, store: &mut Store, key: (Collection, String, String)) -> Option<Value> {
        let mut object = store.objects.get(&key)?.clone();
        let has_finalizers = object["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if has_finalizers {
            if object["metadata"].get("deletionTimestamp").is_none() {
                object["metadata"]["deletionTimestamp"] = json!(chrono::Utc::now().to_rfc3339());
                // The API server bumps the generation when it marks an object for deletion.
                let generation = object["metadata"]["generation"].as_i64().unwrap_or(1);
                object["metadata"]["generation"] = json!(generation + 1);
                self.commit(store, key.clone(), object, "MODIFIED");
            }
        } else {
            self.commit(store, key.clone(), object, "DELETED");
        }
        store.objects.get(&key).cloned()
    }

    /// Serves the fake over HTTP on 127.0.0.1, for processes (the `prescaler` binary) that
    /// connect with a kubeconfig; returns that kubeconfig's path in `dir`.
    pub async fn serve_http(&self, dir: &std::path::Path) -> std::path::PathBuf {
        self.serve_http_as(dir, None).await
    }

    /// `serve_http` on a port of its own, whose requests are logged as `via` this client.
    pub async fn serve_http_as(
        &self,
        dir: &std::path::Path,
        via: Option<&str>,
    ) -> std::path::PathBuf {
        let via = via.map(String::from);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let api = self.clone();
        let app = axum::Router::new().fallback(move |req: Request<axum::body::Body>| {
            let api = api.clone();
            let via = via.clone();
            async move { api.handle_via(req, via).await }
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        let path = dir.join("kubeconfig");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\n\
                 clusters: [{{ name: fake, cluster: {{ server: 'http://127.0.0.1:{port}' }} }}]\n\
                 users: [{{ name: fake, user: {{}} }}]\n\
                 contexts: [{{ name: fake, context: {{ cluster: fake, user: fake, namespace: default }} }}]\n\
                 current-context: fake\n"
            ),
        )
        .unwrap();
        path
    }

    async fn handle<B>(&self, req: Request<B>) -> Response<Body>
    where
        B: http_body::Body,
    {
        self.handle_via(req, None).await
    }

    async fn handle_via<B>(&self, req: Request<B>, via: Option<String>) -> Response<Body>
    where
        B: http_body::Body,
    {
        let method = req.method().clone();
        let uri = req.uri().clone();
        let path = uri.path().to_string();
        let query: BTreeMap<String, String> = uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let content_type = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let as_table = req
            .headers()
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("as=Table"));
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let injected = {
            let mut store = self.store.lock().unwrap();
            store.log.push(Logged {
                method: method.clone(),
                path: path.clone(),
                query: query.clone(),
                at: std::time::Instant::now(),
                via: via.clone(),
            });
            store
                .faults
                .iter_mut()
                .find(|f| f.method == method && path.contains(&f.path_contains) && f.times > 0)
                .map(|f| {
                    f.times -= 1;
                    f.code
                })
        };
        if let Some(code) = injected {
            if code == 0 {
                return std::future::pending().await;
            }
            // The reason the real API server gives with each code (kube's helpers read it).
            let reason = match code {
                403 => "Forbidden",
                404 => "NotFound",
                409 => "Conflict",
                410 => "Expired",
                429 => "TooManyRequests",
                _ => "InternalError",
            };
            return status(code, reason, "injected by the test");
        }
        if method == Method::GET
            && let Some(list) = discovery(&path)
        {
            return ok(list);
        }
        if method == Method::GET && path == "/version" {
            return ok(
                json!({ "major": "1", "minor": "33", "gitVersion": "v1.33.0-fake",
                              "platform": "linux/amd64" }),
            );
        }
        if method == Method::GET
            && let Some(doc) = openapi(&path)
        {
            return ok(doc);
        }
        // Core v1 Events: the events.k8s.io/v1 ones, as kubectl describe reads them.
        if method == Method::GET && path.ends_with("/events") && path.starts_with("/api/v1/") {
            let namespace = path
                .strip_prefix("/api/v1/namespaces/")
                .and_then(|p| p.strip_suffix("/events"));
            let selector = query.get("fieldSelector").map(|s| percent_decode(s));
            return ok(self.core_events(namespace, selector.as_deref()));
        }
        let Some(route) = Route::parse(&path) else {
            return status(404, "NotFound", &format!("no route for {path}"));
        };
        let body: Value = if body.is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => {
                    return status(
                        400,
                        "BadRequest",
                        &format!("body is not JSON ({content_type}): {e}"),
                    );
                }
            }
        };
        let writes = [Method::POST, Method::PUT, Method::PATCH].contains(&method);
        if writes
            && query.get("fieldValidation").is_some_and(|v| v == "Strict")
            && route.collection == SCALERS
            && let Some(unknown) = unknown_field(&body)
        {
            return status(
                400,
                "BadRequest",
                &format!(
                    "PredictiveScaler in version \"v1alpha1\" cannot be handled as a PredictiveScaler: strict decoding error: unknown field \"{unknown}\""
                ),
            );
        }
        match (&method, &route.name) {
            (&Method::GET, None) if query.get("watch").is_some_and(|w| w == "true" || w == "1") => {
                self.watch(&route, &query)
            }
            (&Method::GET, None) => {
                let selector = query.get("labelSelector").map(|s| percent_decode(s));
                let page = Page {
                    limit: query.get("limit").and_then(|l| l.parse().ok()),
                    after: query.get("continue").and_then(|c| {
                        let token = percent_decode(c);
                        let (ns, name) = token.split_once('/')?;
                        Some((ns.to_string(), name.to_string()))
                    }),
                };
                let list = self.list_response(&route, selector.as_deref(), page);
                if as_table {
                    return table_of(list, &query).await;
                }
                list
            }
            (&Method::GET, Some(_)) if as_table && route.subresource.is_none() => {
                table_of(self.read(&route), &query).await
            }
            (&Method::GET, Some(_)) => self.read(&route),
            (&Method::POST, None) => self.create(&route, body),
            (&Method::PUT, Some(_)) => self.replace(&route, body),
            (&Method::PATCH, Some(_)) => self.patch(&route, body, &content_type),
            (&Method::DELETE, Some(name)) => {
                let mut store = self.store.lock().unwrap();
                let key = (
                    route.collection.clone(),
                    route.namespace.clone().unwrap_or_default(),
                    name.clone(),
                );
                match self.delete_locked(&mut store, key) {
                    Some(o) => ok(o),
                    None => status(200, "Deleted", "deleted"),
                }
            }
            _ => status(405, "MethodNotAllowed", &format!("{method} {path}")),
        }
    }

    /// The stored `events.k8s.io/v1` Events as core `v1` Events, in `namespace` (all without),
    /// those matching every `involvedObject.<field>=<value>` of `selector`.
    fn core_events(&self, namespace: Option<&str>, selector: Option<&str>) -> Value {
        let store = self.store.lock().unwrap();
        let items: Vec<Value> = store
            .objects
            .iter()
            .filter(|((c, ns, _), _)| {
                c == "events.k8s.io/v1/events" && namespace.is_none_or(|n| n == ns)
            })
            .map(|(_, e)| {
                json!({
                    "apiVersion": "v1", "kind": "Event",
                    "metadata": e["metadata"],
                    "involvedObject": e["regarding"],
                    "reason": e["reason"], "message": e["note"], "type": e["type"],
                    "source": { "component": e["reportingController"] },
                    "reportingComponent": e["reportingController"],
                    "reportingInstance": e["reportingInstance"],
                    "firstTimestamp": e["eventTime"], "lastTimestamp": e["eventTime"],
                    "eventTime": e["eventTime"],
                    "count": e["series"]["count"].as_i64().unwrap_or(1),
                })
            })
            .filter(|e| {
                selector
                    .unwrap_or("")
                    .split(',')
                    .filter(|r| !r.is_empty())
                    .all(|r| {
                        let (k, v) = r.split_once('=').unwrap_or((r, ""));
                        let field = k.trim().strip_prefix("involvedObject.").unwrap_or(k.trim());
                        let have = &e["involvedObject"][field];
                        have.as_str()
                            .map_or(v.is_empty() && have.is_null(), |h| h == v)
                    })
            })
            .collect();
        json!({ "apiVersion": "v1", "kind": "EventList",
                "metadata": { "resourceVersion": store.revision.to_string() }, "items": items })
    }

    fn list_response(&self, route: &Route, selector: Option<&str>, page: Page) -> Response<Body> {
        let store = self.store.lock().unwrap();
        let mut items = store
            .objects
            .iter()
            .filter(|((c, ns, _), _)| {
                *c == route.collection && route.namespace.as_ref().is_none_or(|n| n == ns)
            })
            .filter(|((_, ns, name), _)| {
                page.after
                    .as_ref()
                    .is_none_or(|(a_ns, a_name)| (ns, name) > (a_ns, a_name))
            })
            .filter(|(_, v)| selector.is_none_or(|s| selects(s, v)));
        // The store's order (namespace, then name) is the order of the real server's keys in
        // etcd, which is what its `continue` token resumes from.
        let mut listed = Vec::new();
        let mut last = None;
        // Stop at the limit without taking the next item: taken and dropped, it was lost when it
        // was the last one (a list of 41 in pages of 10 ended without it, and without a token).
        for ((_, ns, name), v) in items.by_ref() {
            listed.push(v.clone());
            last = Some(continue_token(ns, name));
            if page.limit.is_some_and(|l| l > 0 && listed.len() >= l) {
                break;
            }
        }
        let more = items.next().is_some();
        let mut metadata = json!({ "resourceVersion": store.revision.to_string() });
        if more && let Some(token) = last {
            metadata["continue"] = json!(token);
        }
        ok(json!({
            "apiVersion": route.api_version,
            "kind": "List",
            "metadata": metadata,
            "items": listed,
        }))
    }

    fn watch(&self, route: &Route, query: &BTreeMap<String, String>) -> Response<Body> {
        let since: u64 = query
            .get("resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let bookmarks = query
            .get("allowWatchBookmarks")
            .is_some_and(|v| v == "true");
        let (compacted, revision) = {
            let store = self.store.lock().unwrap();
            (store.compacted, store.revision)
        };
        if since > 0 && since < compacted {
            // What the real server sends: a 200 and, in the stream, an ERROR event with 410.
            let gone = json!({ "type": "ERROR", "object": {
                "apiVersion": "v1", "kind": "Status", "status": "Failure", "code": 410,
                "reason": "Expired", "message": format!("too old resource version: {since} ({compacted})"),
            }});
            let mut line = serde_json::to_vec(&gone).unwrap();
            line.push(b'\n');
            let stream = futures::stream::iter([Ok::<_, Infallible>(http_body::Frame::data(
                Bytes::from(line),
            ))]);
            return Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(BodyExt::boxed_unsync(StreamBody::new(stream)))
                .unwrap();
        }
        let timeout = query
            .get("timeoutSeconds")
            .and_then(|v| v.parse().ok())
            .unwrap_or(290u64);
        let mut live = self.changes.subscribe();
        let backlog: Vec<_> = {
            let store = self.store.lock().unwrap();
            store
                .changes
                .iter()
                .filter(|c| c.0 > since)
                .cloned()
                .collect()
        };
        let last_backlog = backlog.last().map_or(since, |c| c.0);
        let route_api_version = route.api_version.clone();
        let route_kind = route.kind_hint();
        let route = route.clone();
        let matches = move |c: &(u64, Collection, &'static str, Value)| {
            c.1 == route.collection
                && route
                    .namespace
                    .as_ref()
                    .is_none_or(|n| c.3["metadata"]["namespace"].as_str() == Some(n))
        };
        let matches2 = matches.clone();
        let line = |c: &(u64, Collection, &'static str, Value)| {
            let mut s = serde_json::to_vec(&json!({ "type": c.2, "object": c.3 })).unwrap();
            s.push(b'\n');
            Ok::<_, Infallible>(http_body::Frame::data(Bytes::from(s)))
        };
        let replay =
            futures::stream::iter(backlog.into_iter().filter(matches).map(move |c| line(&c)));
        let mut compactions = self.compactions.subscribe();
        compactions.mark_unchanged();
        let follow = async_stream(move |tx| async move {
            let deadline = tokio::time::sleep(Duration::from_secs(timeout));
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    _ = &mut deadline => return,
                    _ = compactions.changed() => return,
                    change = live.recv() => match change {
                        Ok(c) if c.0 > last_backlog && matches2(&c) => {
                            if tx.send(line(&c)).await.is_err() {
                                return;
                            }
                        }
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(_)) => return,
                        Err(broadcast::error::RecvError::Closed) => return,
                    }
                }
            }
        });
        // A bookmark after the replay, as the real server sends them: the watcher learns the
        // current resourceVersion even when nothing of its kind changed.
        let bookmark = bookmarks.then(|| {
            let mut b = serde_json::to_vec(&json!({ "type": "BOOKMARK", "object": {
                "apiVersion": route_api_version, "kind": route_kind,
                "metadata": { "resourceVersion": revision.max(last_backlog).to_string() },
            }}))
            .unwrap();
            b.push(b'\n');
            Ok::<_, Infallible>(http_body::Frame::data(Bytes::from(b)))
        });
        let stream = replay.chain(futures::stream::iter(bookmark)).chain(follow);
        Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(BodyExt::boxed_unsync(StreamBody::new(stream)))
            .unwrap()
    }

    fn read(&self, route: &Route) -> Response<Body> {
        let store = self.store.lock().unwrap();
        let Some(object) = store.objects.get(&route.key()) else {
            return not_found(route);
        };
        match route.subresource.as_deref() {
            None | Some("status") => ok(object.clone()),
            Some("scale") if has_scale(&route.collection) => ok(scale_of(object)),
            Some(sub) => status(
                404,
                "NotFound",
                &format!("the server could not find the requested resource ({sub})"),
            ),
        }
    }

    fn create(&self, route: &Route, mut body: Value) -> Response<Body> {
        let name = match body["metadata"]["name"].as_str() {
            Some(n) => n.to_string(),
            None => match body["metadata"]["generateName"].as_str() {
                Some(prefix) => format!("{prefix}{}", self.store.lock().unwrap().revision + 1),
                None => return status(422, "Invalid", "metadata.name is required"),
            },
        };
        let ns = route.namespace.clone().unwrap_or_default();
        let mut store = self.store.lock().unwrap();
        let key = (route.collection.clone(), ns.clone(), name.clone());
        if store.objects.contains_key(&key) {
            return status(409, "AlreadyExists", &format!("{name} already exists"));
        }
        body["metadata"]["name"] = json!(name);
        body["metadata"]["namespace"] = json!(ns);
        body["metadata"]["generation"] = json!(1);
        body["metadata"]["creationTimestamp"] =
            json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        body["metadata"]["uid"] = json!(format!("uid-{}", store.revision + 1));
        self.commit(&mut store, key.clone(), body, "ADDED");
        created(store.objects[&key].clone())
    }

    fn replace(&self, route: &Route, mut body: Value) -> Response<Body> {
        let mut store = self.store.lock().unwrap();
        let key = route.key();
        let Some(old) = store.objects.get(&key).cloned() else {
            return not_found(route);
        };
        if let Some(rv) = body["metadata"]["resourceVersion"].as_str()
            && rv
                != old["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
        {
            return conflict(route);
        }
        let generation = old["metadata"]["generation"].as_i64().unwrap_or(1)
            + i64::from(old["spec"] != body["spec"]);
        body["metadata"]["generation"] = json!(generation);
        body["metadata"]["uid"] = old["metadata"]["uid"].clone();
        self.commit(&mut store, key.clone(), body, "MODIFIED");
        ok(store.objects[&key].clone())
    }

    fn patch(&self, route: &Route, mut patch: Value, content_type: &str) -> Response<Body> {
        let mut store = self.store.lock().unwrap();
        let key = route.key();
        let Some(old) = store.objects.get(&key).cloned() else {
            return not_found(route);
        };
        if let Some(rv) = patch["metadata"]["resourceVersion"].as_str()
            && rv
                != old["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
        {
            return conflict(route);
        }
        if let Some(m) = patch.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        let mut new = old.clone();
        match route.subresource.as_deref() {
            None => {
                // Writes to the main resource cannot change status (the status subresource rule).
                if let Some(p) = patch.as_object_mut() {
                    p.remove("status");
                }
                merge(&mut new, &patch);
            }
            // Server-side apply by prescaler, the status' only field manager: the applied status
            // is the whole status (fields it no longer sets are removed, as the API server
            // removes fields a manager stops applying). A merge patch merges.
            Some("status") if content_type.starts_with("application/apply-patch") => {
                new["status"] = patch["status"].clone();
            }
            Some("status") => merge(&mut new["status"], &patch["status"]),
            Some("scale") if has_scale(&route.collection) => {
                if let Some(r) = patch["spec"]["replicas"].as_i64() {
                    new["spec"]["replicas"] = json!(r);
                }
            }
            Some(sub) => return status(404, "NotFound", &format!("no {sub} subresource")),
        }
        if new["spec"] != old["spec"] {
            new["metadata"]["generation"] =
                json!(old["metadata"]["generation"].as_i64().unwrap_or(1) + 1);
        }
        let deleting = new["metadata"].get("deletionTimestamp").is_some()
            && new["metadata"]["finalizers"]
                .as_array()
                .is_none_or(|f| f.is_empty());
        if deleting {
            self.commit(&mut store, key, new.clone(), "DELETED");
            return ok(new);
        }
        if new != old {
            self.commit(&mut store, key.clone(), new, "MODIFIED");
        }
        let stored = store.objects[&key].clone();
        match route.subresource.as_deref() {
            Some("scale") => ok(scale_of(&stored)),
            _ => ok(stored),
        }
    }
}

/// A channel-fed stream: the generator pushes frames until it returns or the reader goes away.
fn async_stream<F, Fut, T>(generator: F) -> impl futures::Stream<Item = T> + Send + 'static
where
    F: FnOnce(tokio::sync::mpsc::Sender<T>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(generator(tx));
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) })
}

/// Whether an equality-based label selector (`app=web,tier=front`, `==` too; what a `/scale`
/// `status.selector` of a `matchLabels` selector reads) selects `object`. Set-based selectors
/// (`in`, `notin`, `!=`, `!key`) are not served by this fake.
/// A list request's paging: `limit` items at most, after the `continue` token's key.
struct Page {
    limit: Option<usize>,
    /// The namespace and name of the last object of the previous page.
    after: Option<(String, String)>,
}

/// The `continue` token of an object: its key (opaque to clients, as the real one is).
fn continue_token(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

fn selects(selector: &str, object: &Value) -> bool {
    selector
        .split(',')
        .filter(|r| !r.is_empty())
        .all(|requirement| {
            let (k, v) = requirement
                .split_once("==")
                .or_else(|| requirement.split_once('='))
                .unwrap_or((requirement, ""));
            object["metadata"]["labels"][k.trim()].as_str() == Some(v.trim())
        })
}

/// `%XX` escapes of a query value decoded (label selectors arrive as `app%3Dweb`).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match text
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            {
                Some(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                None => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().unwrap();
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

#[derive(Clone, Debug)]
struct Route {
    api_version: String,
    collection: Collection,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

impl Route {
    fn parse(path: &str) -> Option<Self> {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (api_version, rest) = match parts.as_slice() {
            ["api", v, rest @ ..] => (v.to_string(), rest),
            ["apis", g, v, rest @ ..] => (format!("{g}/{v}"), rest),
            _ => return None,
        };
        let (namespace, rest) = match rest {
            ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
            rest => (None, rest),
        };
        let (plural, name, subresource) = match rest {
            [p] => (p, None, None),
            [p, n] => (p, Some(n.to_string()), None),
            [p, n, s] => (p, Some(n.to_string()), Some(s.to_string())),
            _ => return None,
        };
        Some(Self {
            collection: format!("{api_version}/{plural}"),
            api_version,
            namespace,
            name,
            subresource,
        })
    }

    /// The kind a collection holds (`deployments` → `Deployment`), for bookmarks.
    fn kind_hint(&self) -> String {
        let plural = self.collection.rsplit('/').next().unwrap_or_default();
        let singular = plural.strip_suffix('s').unwrap_or(plural);
        let mut chars = singular.chars();
        chars
            .next()
            .map(|c| c.to_uppercase().chain(chars).collect())
            .unwrap_or_default()
    }

    fn key(&self) -> (Collection, String, String) {
        (
            self.collection.clone(),
            self.namespace.clone().unwrap_or_default(),
            self.name.clone().unwrap_or_default(),
        )
    }
}

/// The store's key of an object: its collection, namespace and name.
fn object_key(
    api_version: &str,
    kind: &str,
    namespace: &str,
    name: &str,
) -> (Collection, String, String) {
    (
        format!("{api_version}/{}", plural(kind)),
        namespace.to_string(),
        name.to_string(),
    )
}

fn plural(kind: &str) -> String {
    format!("{}s", kind.to_lowercase())
}

fn collection_of(object: &Value) -> Collection {
    format!(
        "{}/{}",
        object["apiVersion"].as_str().expect("apiVersion"),
        plural(object["kind"].as_str().expect("kind"))
    )
}

/// The group versions served, with their kinds and plurals.
const GROUPS: &[(&str, &[(&str, &str)])] = &[
    (
        "v1",
        &[
            ("ReplicationController", "replicationcontrollers"),
            ("ConfigMap", "configmaps"),
            ("Pod", "pods"),
            ("Event", "events"),
        ],
    ),
    (
        "apps/v1",
        &[
            ("Deployment", "deployments"),
            ("StatefulSet", "statefulsets"),
            ("ReplicaSet", "replicasets"),
            ("DaemonSet", "daemonsets"),
        ],
    ),
    (
        "autoscaling/v2",
        &[("HorizontalPodAutoscaler", "horizontalpodautoscalers")],
    ),
    ("coordination.k8s.io/v1", &[("Lease", "leases")]),
    ("events.k8s.io/v1", &[("Event", "events")]),
    ("keda.sh/v1alpha1", &[("ScaledObject", "scaledobjects")]),
    (
        "prescaler.dev/v1alpha1",
        &[("PredictiveScaler", "predictivescalers")],
    ),
];

/// The PredictiveScalers' collection.
const SCALERS: &str = "prescaler.dev/v1alpha1/predictivescalers";

/// API discovery: `/api` and `/apis` (the groups), and `/api/v1`, `/apis/apps/v1`… (each
/// group version's resources, and which have a `/scale` subresource — what kube's discovery
/// reads for kinds prescaler does not know by name, and what kubectl reads to resolve `psc`).
fn discovery(path: &str) -> Option<Value> {
    let parts = path.trim_matches('/').split('/').collect::<Vec<_>>();
    let group_version = match parts.as_slice() {
        ["api"] => {
            return Some(json!({ "kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1" }] }));
        }
        ["apis"] => {
            let groups: Vec<Value> = GROUPS
                .iter()
                .filter_map(|(gv, _)| gv.split_once('/'))
                .map(|(g, v)| {
                    let version = json!({ "groupVersion": format!("{g}/{v}"), "version": v });
                    json!({ "name": g, "versions": [version], "preferredVersion": version })
                })
                .collect();
            return Some(json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups }));
        }
        ["api", v] => v.to_string(),
        ["apis", g, v] => format!("{g}/{v}"),
        _ => return None,
    };
    let (_, kinds) = GROUPS.iter().find(|(gv, _)| *gv == group_version)?;
    let mut resources = Vec::new();
    for (kind, plural) in kinds.iter() {
        let verbs = json!([
            "get", "list", "watch", "create", "update", "patch", "delete"
        ]);
        let mut resource = json!({ "name": plural, "singularName": kind.to_lowercase(),
            "namespaced": true, "kind": kind, "verbs": verbs });
        if format!("{group_version}/{plural}") == SCALERS {
            let names = &crd()["spec"]["names"];
            resource["shortNames"] = names["shortNames"].clone();
            resource["categories"] = names["categories"].clone();
            resources.push(resource);
            resources.push(
                json!({ "name": format!("{plural}/status"), "singularName": "",
                "namespaced": true, "kind": kind, "verbs": ["get", "patch", "update"] }),
            );
            continue;
        }
        resources.push(resource);
        if has_scale(&format!("{group_version}/{plural}")) {
            resources.push(
                json!({ "name": format!("{plural}/scale"), "singularName": "",
                "namespaced": true, "group": "autoscaling", "version": "v1", "kind": "Scale",
                "verbs": ["get", "patch", "update"] }),
            );
        }
    }
    Some(json!({ "kind": "APIResourceList", "apiVersion": "v1",
        "groupVersion": group_version, "resources": resources }))
}

fn has_scale(collection: &str) -> bool {
    [
        "apps/v1/deployments",
        "apps/v1/statefulsets",
        "apps/v1/replicasets",
        "v1/replicationcontrollers",
    ]
    .contains(&collection)
}

fn scale_of(object: &Value) -> Value {
    json!({
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {
            "name": object["metadata"]["name"],
            "namespace": object["metadata"]["namespace"],
            "resourceVersion": object["metadata"]["resourceVersion"],
        },
        "spec": { "replicas": object["spec"]["replicas"].as_i64().unwrap_or(1) },
        "status": { "replicas": object["status"]["replicas"].as_i64().unwrap_or(0),
                    "selector": match_labels_selector(object) },
    })
}

/// The label selector `/scale` reports in `status.selector`, from `spec.selector.matchLabels`
/// (`app=web`), as the API server serializes a workload's selector; empty without one.
fn match_labels_selector(object: &Value) -> String {
    object["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn respond(code: u16, value: Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap())
        .header("content-type", "application/json")
        .body(BodyExt::boxed_unsync(Full::new(Bytes::from(
            serde_json::to_vec(&value).unwrap(),
        ))))
        .unwrap()
}

fn ok(value: Value) -> Response<Body> {
    respond(200, value)
}

fn created(value: Value) -> Response<Body> {
    respond(201, value)
}

fn status(code: u16, reason: &str, message: &str) -> Response<Body> {
    respond(
        code,
        json!({
            "apiVersion": "v1", "kind": "Status", "status": if code < 300 { "Success" } else { "Failure" },
            "message": message, "reason": reason, "code": code,
        }),
    )
}

fn not_found(route: &Route) -> Response<Body> {
    status(
        404,
        "NotFound",
        &format!(
            "{} {:?} not found",
            route.collection,
            route.name.as_deref().unwrap_or("")
        ),
    )
}

fn conflict(route: &Route) -> Response<Body> {
    status(
        409,
        "Conflict",
        &format!(
            "Operation cannot be fulfilled on {} {:?}: the object has been modified; please apply your changes to the latest version and try again",
            route.collection,
            route.name.as_deref().unwrap_or("")
        ),
    )
}

/// The PredictiveScaler CRD, as `crds/predictivescaler.yaml` holds it.
fn crd() -> &'static Value {
    static CRD: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    CRD.get_or_init(|| {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds/predictivescaler.yaml");
        serde_yaml_ng::from_str(&std::fs::read_to_string(path).expect("the CRD")).expect("YAML")
    })
}

/// OpenAPI v3, as far as kubectl reads it before a write: the root lists the group versions,
/// and each says that its PATCH takes `fieldValidation` (client-go's query-parameter verifier
/// looks for it on the operation tagged with the kind), so kubectl sends
/// `fieldValidation=Strict` and leaves the schema to the server.
fn openapi(path: &str) -> Option<Value> {
    let gv_doc = |group_version: &str| -> Option<Value> {
        let (_, kinds) = GROUPS.iter().find(|(gv, _)| *gv == group_version)?;
        let (group, version) = group_version.split_once('/').unwrap_or(("", group_version));
        let prefix = if group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{group}/{version}")
        };
        let mut paths = serde_json::Map::new();
        for (kind, plural) in kinds.iter() {
            let gvk = json!({ "group": group, "version": version, "kind": kind });
            let param = json!([{ "name": "fieldValidation", "in": "query", "schema": { "type": "string" } }]);
            paths.insert(
                format!("{prefix}/namespaces/{{namespace}}/{plural}/{{name}}"),
                json!({ "patch": { "x-kubernetes-group-version-kind": gvk, "parameters": param,
                                   "responses": { "200": { "description": "OK" } } } }),
            );
            paths.insert(
                format!("{prefix}/namespaces/{{namespace}}/{plural}"),
                json!({ "post": { "x-kubernetes-group-version-kind": gvk, "parameters": param,
                                  "responses": { "201": { "description": "Created" } } } }),
            );
        }
        Some(
            json!({ "openapi": "3.0.0", "info": { "title": "Kubernetes", "version": "v1.33.0" },
                     "paths": paths, "components": { "schemas": {} } }),
        )
    };
    match path
        .trim_matches('/')
        .split('/')
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["openapi", "v3"] => {
            let mut paths = serde_json::Map::new();
            for (gv, _) in GROUPS {
                let key = if gv.contains('/') {
                    format!("apis/{gv}")
                } else {
                    format!("api/{gv}")
                };
                paths.insert(
                    key.clone(),
                    json!({ "serverRelativeURL": format!("/openapi/v3/{key}?hash=fake") }),
                );
            }
            Some(json!({ "paths": paths }))
        }
        ["openapi", "v3", "api", v] => gv_doc(v),
        ["openapi", "v3", "apis", g, v] => gv_doc(&format!("{g}/{v}")),
        _ => None,
    }
}

/// The first field of a PredictiveScaler that its CRD's schema does not have (`spec.peakWindow`),
/// as the API server's strict field validation finds it; `metadata`, `apiVersion` and `kind` are
/// the server's own.
fn unknown_field(object: &Value) -> Option<String> {
    fn walk(value: &Value, schema: &Value, path: &str) -> Option<String> {
        match value {
            Value::Object(map) => {
                let properties = schema["properties"].as_object();
                for (k, v) in map {
                    let here = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    if path.is_empty() && ["apiVersion", "kind", "metadata"].contains(&k.as_str()) {
                        continue;
                    }
                    match properties.and_then(|p| p.get(k)) {
                        Some(sub) => {
                            if let Some(found) = walk(v, sub, &here) {
                                return Some(found);
                            }
                        }
                        // A schema that lists its properties has no others (a map's schema,
                        // `additionalProperties`, lists none).
                        None if properties.is_some() => return Some(here),
                        None => {}
                    }
                }
                None
            }
            Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, item)| walk(item, &schema["items"], &format!("{path}[{i}]"))),
            _ => None,
        }
    }
    let schema = &crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    walk(object, schema, "")
}

/// A `meta.k8s.io/v1` Table of a list or an object response, as the API server's table
/// convertor makes it: for PredictiveScalers the CRD's printer columns, for other kinds NAME and
/// AGE; each row with the object (`includeObject=Object`, kubectl's default for `-o wide` and
/// namespaces) or its metadata.
async fn table_of(response: Response<Body>, query: &BTreeMap<String, String>) -> Response<Body> {
    if !response.status().is_success() {
        return response;
    }
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value: Value = serde_json::from_slice(&bytes).unwrap();
    let objects: Vec<Value> = match value["items"].as_array() {
        Some(items) => items.clone(),
        None => vec![value.clone()],
    };
    let scalers = objects
        .first()
        .is_none_or(|o| o["kind"] == "PredictiveScaler")
        && value["apiVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("prescaler.dev/"));
    let mut columns = vec![json!({ "name": "Name", "type": "string", "format": "name",
        "description": "Name must be unique within a namespace.", "priority": 0 })];
    let printer: Vec<Value> = if scalers || objects.iter().any(|o| o["kind"] == "PredictiveScaler")
    {
        crd()["spec"]["versions"][0]["additionalPrinterColumns"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    } else {
        vec![json!({ "name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp" })]
    };
    for c in &printer {
        columns.push(json!({ "name": c["name"], "type": c["type"], "format": c["format"].as_str().unwrap_or(""),
            "description": c["description"].as_str().unwrap_or(""), "priority": c["priority"].as_i64().unwrap_or(0) }));
    }
    let include_object = query.get("includeObject").map(String::as_str);
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut cells = vec![o["metadata"]["name"].clone()];
            for c in &printer {
                let path = c["jsonPath"].as_str().unwrap_or("");
                let mut v = o;
                for key in path.trim_start_matches('.').split('.') {
                    v = &v[key];
                }
                cells.push(match (c["type"].as_str(), v) {
                    (_, Value::Null) => Value::Null,
                    (Some("date"), Value::String(t)) => json!(age(t)),
                    (_, v) => v.clone(),
                });
            }
            let object = match include_object {
                Some("None") => Value::Null,
                Some("Object") => o.clone(),
                _ => json!({ "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": o["metadata"] }),
            };
            json!({ "cells": cells, "object": object })
        })
        .collect();
    ok(json!({
        "kind": "Table", "apiVersion": "meta.k8s.io/v1",
        "metadata": { "resourceVersion": value["metadata"]["resourceVersion"] },
        "columnDefinitions": columns, "rows": rows,
    }))
}

/// How long ago `timestamp` was, as kubectl prints ages (`45s`, `3m20s`, `5h`, `12d`).
fn age(timestamp: &str) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(timestamp) else {
        return "<invalid>".into();
    };
    let s = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    match () {
        _ if s < 120 => format!("{s}s"),
        _ if m < 10 && s % 60 != 0 => format!("{m}m{}s", s % 60),
        _ if m < 180 => format!("{m}m"),
        _ if h < 8 && m % 60 != 0 => format!("{h}h{}m", m % 60),
        _ if h < 48 => format!("{h}h"),
        _ if h < 192 && h % 24 != 0 => format!("{d}d{}h", h % 24),
        _ => format!("{d}d"),
    }
}
