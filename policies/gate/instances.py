"""Instance types in parsed YAML/JSON/TOML documents that are not CloudFormation: plain
settings, Kubernetes manifests, Helm values and Karpenter NodePools.

What counts as an instance type here, and why:
- a key that names one (`instance_type`, `instanceType`, `machine_type`, `TRAIN_INSTANCE_TYPE`,
  and the node label `node.kubernetes.io/instance-type` in a `nodeSelector`) with a value that
  looks like an EC2/SageMaker or GCE type; lists of such values count item by item;
- a node-affinity or Karpenter `requirements` entry `{key: <instance-type label>, operator: In,
  values: [...]}`: the first listed type is priced (said in a note when there are more), since
  the scheduler may pick any of them.
The count is the nearest count the document carries for it: a count key in the same mapping or an
enclosing one (`replicas`, `replicaCount`, `instance_count`, `desired_capacity`, ...). A pinned
workload is counted as one node per replica (bin-packing is unknown; said in a note). When a
mapping also requests `nvidia.com/gpu` (Helm values, or a custom resource such as a KServe
InferenceService whose pods the standard workload reader does not see), the GPU request is the
setting (priced per GPU of the pinned node type) and the node label is not counted again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from costwarden.policies.gate.setting import Setting, dig, instance, is_count_key, is_instance_key, to_int

NODE_TYPE_LABELS = ("node.kubernetes.io/instance-type", "beta.kubernetes.io/instance-type")
GPU_RESOURCE = "nvidia.com/gpu"
_PINNED = "one node per replica assumed (pods pinned to the type; bin-packing unknown)"

Count = tuple[int | None, str]  # the count and the key it came from


def _requirement_type(req: Any) -> tuple[str, tuple[str, ...]] | None:
    """The instance type of an affinity / Karpenter requirement `{key, operator: In, values}`."""
    if not isinstance(req, dict) or req.get("key") not in NODE_TYPE_LABELS or req.get("operator", "In") != "In":
        return None
    values = [v for v in req.get("values") or [] if isinstance(v, str)]
    if not values:
        return None
    notes = (f"{len(values)} instance types allowed ({', '.join(values)}); priced as the first",) if len(values) > 1 else ()
    return values[0], notes


def pod_node_type(pod: Any) -> str:
    """The node type a pod spec pins: its nodeSelector, else required node affinity."""
    selector = dig(pod, "nodeSelector") or {}
    for label in NODE_TYPE_LABELS:
        if isinstance(selector, dict) and isinstance(selector.get(label), str):
            return selector[label]
    terms = dig(pod, "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution",
                 "nodeSelectorTerms") or []
    for term in terms if isinstance(terms, list) else []:
        for req in (term or {}).get("matchExpressions") or []:
            found = _requirement_type(req)
            if found:
                return found[0]
    return ""


def _gpus(resources: Any) -> int:
    """`nvidia.com/gpu` of one container's `resources`: the larger of its limit and request."""
    return max(to_int(dig(resources, "limits", GPU_RESOURCE)) or 0,
               to_int(dig(resources, "requests", GPU_RESOURCE)) or 0)


def gpus_per_pod(pod: Any) -> int:
    """`nvidia.com/gpu` of a pod's containers, summed."""
    return sum(_gpus((c or {}).get("resources") or {})
               for c in ((pod.get("containers") or []) if isinstance(pod, dict) else []))


def _resources_gpus(node: dict[str, Any]) -> int:
    """`resources.limits/requests.nvidia.com/gpu` of a Helm-values section (one container)."""
    return _gpus(node.get("resources"))


def instance_settings(doc: Any, prefix: str, find_line: Callable[..., int], *, count: Count = (None, ""),
                      kubernetes: bool = False) -> Iterator[Setting]:
    """Every instance (and Helm-values GPU) setting of one document, keyed by its path."""
    yield from _walk(doc, prefix, find_line, count, kubernetes)


def _pod_gpus(node: dict[str, Any]) -> int:
    """GPUs a pod-like mapping requests: its own `resources`, else (when it pins a node type, as a
    KServe predictor does) those of its direct children and `containers`."""
    gpus = _resources_gpus(node)
    if gpus or not ("nodeSelector" in node or "affinity" in node):
        return gpus
    for v in node.values():
        items = v if isinstance(v, list) else [v]
        gpus += sum(_resources_gpus(x) for x in items if isinstance(x, dict))
    return gpus


def _walk(node: Any, path: str, find_line: Callable[..., int], count: Count, k8s: bool,
          gpu_done: bool = False) -> Iterator[Setting]:
    if isinstance(node, list):
        for i, item in enumerate(node):
            label = next((item[k] for k in ("name", "key") if isinstance(item, dict)
                          and isinstance(item.get(k), str)), i)
            yield from _walk(item, f"{path}[{label}]", find_line, count, k8s, gpu_done)
        return
    if not isinstance(node, dict):
        return
    for k, v in node.items():  # a count in this mapping applies to everything below it
        if is_count_key(str(k)) and not isinstance(v, (dict, list)):
            count = (to_int(v), f"`{k}`") if to_int(v) is not None else (None, "")
            break
    found = _requirement_type(node)
    if found:
        s = instance(path, found[0], count[0], find_line(found[0]), (*found[1], *_pinned(False, path)), count[1])
        if s:
            yield s
        return
    gpus = 0 if gpu_done else _pod_gpus(node)
    if gpus:  # Helm values {replicaCount, nodeSelector, resources: {limits: {nvidia.com/gpu: n}}}, a KServe predictor
        node_type = pod_node_type(node)
        n = count[0] if count[0] is not None else 1
        notes = (f"count {n} from {count[1]} (x {gpus} GPUs each)",) if count[0] is not None else (
            "no replica count given; 1 assumed",)
        yield Setting("gpu", f"{path}.resources" if path else "resources", node_type, count=gpus * n,
                      line=find_line(GPU_RESOURCE), provider="aws" if node_type else "", notes=notes)
    for k, v in node.items():
        key = str(k)
        sub = f"{path}.{key}" if path else key
        if gpus and key in ("nodeSelector", "affinity"):
            continue  # the GPU request prices the node type it pins
        if is_instance_key(key) and isinstance(v, str):
            s = instance(sub, v, count[0], find_line(key, v), _pinned(k8s or key in NODE_TYPE_LABELS, sub), count[1])
            if s:
                yield s
        elif is_instance_key(key) and isinstance(v, list) and all(isinstance(x, str) for x in v):
            for x in v:
                s = instance(f"{sub}[{x}]", x, count[0], find_line(x), (), count[1])
                if s:
                    yield s
        elif isinstance(v, (dict, list)):
            yield from _walk(v, sub, find_line, count, k8s, gpu_done or bool(gpus))


def _pinned(applies: bool, path: str) -> tuple[str, ...]:
    return (_PINNED,) if applies or "nodeSelector" in path or "affinity" in path.lower() else ()
