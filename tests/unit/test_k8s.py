"""deploy/k8s: both overlays render with kubectl's Kustomize, every built-in object validates against the
Kubernetes schemas offline (kubernetes-validate, strict: unknown fields fail), and the pieces agree with each
other: probes, Services, the HPA's metric and the prometheus-adapter rule that serves it, the ServiceMonitor."""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
OVERLAYS = ("cpu", "gpu")
KUBERNETES_VERSION = "1.32"  # the kubectl on these machines; the manifests use only GA APIs
CUSTOM_KINDS = {"ServiceMonitor"}


def kustomize(folder: Path) -> list[dict]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (with Kustomize) is needed to render deploy/k8s"
    result = subprocess.run(
        [kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@cache
def rendered(overlay: str) -> tuple[dict, ...]:
    return tuple(kustomize(K8S / "overlays" / overlay))


def find(overlay: str, kind: str, name: str) -> dict:
    matches = [o for o in rendered(overlay) if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} objects"
    return matches[0]


def container(deployment: dict, name: str) -> dict:
    return next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == name)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_built_in_object_of_the_overlay_validates_strictly(overlay: str) -> None:
    kinds = set()
    for manifest in rendered(overlay):
        kinds.add(manifest["kind"])
        if manifest["kind"] not in CUSTOM_KINDS:
            kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ServiceMonitor"} <= kinds


def test_the_strict_validation_would_catch_a_misspelt_field() -> None:
    deployment = yaml.safe_load(yaml.safe_dump(find("cpu", "Deployment", "triton-vlm-triton")))
    deployment["spec"]["replica"] = 3
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize(("overlay", "target"), [("cpu", "embedded"), ("gpu", "gpu")])
def test_each_overlay_serves_its_target_and_only_the_gpu_one_asks_for_gpus(overlay: str, target: str) -> None:
    assert find(overlay, "ConfigMap", "triton-vlm-server")["data"]["VLM_TARGET"] == target
    triton = find(overlay, "Deployment", "triton-vlm-triton")["spec"]["template"]["spec"]
    gpus = [
        c["resources"].get("limits", {}).get("nvidia.com/gpu") for c in triton["containers"] + triton["initContainers"]
    ]
    assert gpus == (["1", "1"] if overlay == "gpu" else [None, None])
    images = {c["image"] for c in triton["containers"] + triton["initContainers"]}
    assert len(images) == 1 and ":" in images.pop()  # the server and the repository it serves: one build


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_triton_probes_exercise_the_python_models_and_the_control_key_comes_from_a_secret(overlay: str) -> None:
    deployment = find(overlay, "Deployment", "triton-vlm-triton")
    triton = container(deployment, "triton")
    for probe, kind in (("startupProbe", "ready"), ("readinessProbe", "ready"), ("livenessProbe", "live")):
        assert triton[probe]["exec"]["command"][:2] == ["vlm-probe", kind], probe
    startup = triton["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 900  # a first load takes minutes
    assert {"name": "VLM_CONTROL_KEY_FILE", "value": "/etc/triton-vlm/control-key"} in triton["env"]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["control-key"]["secret"]["secretName"] == "triton-vlm-control-key"
    (init,) = deployment["spec"]["template"]["spec"]["initContainers"]
    assert {"name": "VLM_PREPARE_ONLY", "value": "1"} in init["env"]
    assert "VLM_PREPARE_ONLY" in (K8S.parents[1] / "docker" / "entrypoint.sh").read_text()


def test_triton_is_reached_only_over_grpc_through_a_headless_service_and_the_gateway_is_public() -> None:
    grpc = find("cpu", "Service", "triton-vlm-grpc")
    assert grpc["spec"]["clusterIP"] == "None" and [p["port"] for p in grpc["spec"]["ports"]] == [8001]
    services = [o for o in rendered("cpu") if o["kind"] == "Service"]
    assert not [p for s in services for p in s["spec"]["ports"] if p["port"] == 8000]  # Triton's HTTP stays inside
    gateway = container(find("cpu", "Deployment", "triton-vlm-gateway"), "gateway")
    assert "--triton-url=dns:///triton-vlm-grpc:8001" in gateway["args"]
    assert next(
        v["secret"]
        for v in find("cpu", "Deployment", "triton-vlm-gateway")["spec"]["template"]["spec"]["volumes"]
        if v["name"] == "api-keys"
    ) == {"secretName": "triton-vlm-api-keys", "defaultMode": 0o400}


def test_the_triton_hpa_scales_on_the_metric_the_adapter_rule_serves() -> None:
    hpa = find("cpu", "HorizontalPodAutoscaler", "triton-vlm-triton")
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods"
    rules = yaml.safe_load(
        find("cpu", "ConfigMap", "triton-vlm-adapter-rules")["data"]["prometheus-adapter-rules.yaml"]
    )
    (rule,) = rules["rules"]
    assert rule["name"]["as"] == metric["pods"]["metric"]["name"]
    assert set(rule["resources"]["overrides"]) == {"namespace", "pod"}
    assert adapter_series(rule) == {
        "nv_inference_queue_duration_us": {"model"},
        "nv_inference_request_success": {"model"},
    }


def adapter_series(rule: dict) -> dict[str, set[str]]:
    """Triton series the rule reads -> the labels it selects on besides the scrape target's namespace and pod."""
    series: dict[str, set[str]] = {}
    for name, matchers in re.findall(r"\b(nv_[a-z_]+)\{([^}]*)\}", rule["seriesQuery"] + rule["metricsQuery"]):
        labels = {m.split("!=")[0].split("=")[0].strip() for m in matchers.split(",") if "<<" not in m}
        series.setdefault(name, set()).update(labels - {"namespace", "pod"})
    return series


def test_the_service_monitor_selects_the_metrics_services_by_their_port_names() -> None:
    monitor = find("cpu", "ServiceMonitor", "triton-vlm")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    wanted = monitor["spec"]["selector"]["matchLabels"]
    selected = [
        s
        for s in rendered("cpu")
        if s["kind"] == "Service" and wanted.items() <= s["metadata"].get("labels", {}).items()
    ]
    assert {s["metadata"]["name"] for s in selected} == {"triton-vlm-metrics", "triton-vlm-gateway-metrics"}
    for service in selected:
        ports = {p["name"] for p in service["spec"]["ports"]}
        assert all(endpoint["port"] in ports for endpoint in monitor["spec"]["endpoints"]), service["metadata"]
    assert {endpoint["path"] for endpoint in monitor["spec"]["endpoints"]} == {"/metrics"}


def test_the_gateways_flags_are_flags_vlm_gateway_has_and_its_metrics_stay_off_the_public_service() -> None:
    from gateway.cli import build_parser

    gateway = container(find("cpu", "Deployment", "triton-vlm-gateway"), "gateway")
    assert gateway["command"] == ["vlm-gateway"]
    known = {flag for action in build_parser()._actions for flag in action.option_strings}
    assert {arg.split("=")[0] for arg in gateway["args"]} <= known
    public = find("cpu", "Service", "triton-vlm-gateway")
    assert [p["name"] for p in public["spec"]["ports"]] == ["http"]


@pytest.mark.parametrize(
    ("kind", "name"), [("PodDisruptionBudget", "triton-vlm-triton"), ("PodDisruptionBudget", "triton-vlm-gateway")]
)
def test_each_deployment_has_a_disruption_budget_selecting_its_pods(kind: str, name: str) -> None:
    budget = find("cpu", kind, name)
    deployment = find("cpu", "Deployment", name)
    assert budget["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
