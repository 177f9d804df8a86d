"""Find cost-relevant settings in the text of one file: LLM model ids, instance types and counts,
Kubernetes GPU requests.

Pure functions over (path, text): no IO, no prices. The gate calls them on the base and head
version of each changed file and diffs the results (policies.gate.diff), so the rules here
decide what a pull request can change without being noticed. Why each rule:

- A model id is a string value whose *key* names a model (`model`, `default_model`, `modelName`,
  `OPENAI_MODEL`, `fallback_models`, ...) and whose *value* looks like a model (a known family
  such as gpt/claude/gemini/llama, a provider prefix, or a digit). The value test keeps
  `model="User"` (an ORM model) out of a cost report.
- Python/TypeScript are scanned line by line for a literal passed as a model argument
  (`model="..."`, `"model": "..."`, `model: "..."`, `model: str = "..."`, `os.getenv("M", "...")`,
  `process.env.M ?? "..."`): the API-wrapper default from the seeds' "expensive library update"
  is exactly such a literal. Values built at run time are out of reach of any static gate.
- Terraform is read by a small block scanner (no HCL dependency): `instance_type` /
  `machine_type` with a literal value, multiplied by the literal `instance_count`,
  `initial_instance_count` (SageMaker production variants) or `node_count` of the same block and
  the `count` of the enclosing resource. `variable "..._type" { default = "..." }` and top-level
  `.tfvars` assignments count too, since that is where the type often lives.
- Kubernetes workloads: GPUs per pod (`nvidia.com/gpu` limits/requests) x replicas; the node's
  instance type comes from the `node.kubernetes.io/instance-type` node selector when present.
- A `costwarden.feature: NAME` (or `=NAME`) annotation anywhere in the file (comment or data)
  names the product feature of every setting below it, up to the next annotation.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

Kind = Literal["model", "instance", "gpu"]

_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_KEY_RE = re.compile(r"model(?:s|_?names?|_?ids?)?$", re.IGNORECASE)
_FAMILY_RE = re.compile(
    r"^(?:[\w.-]+/)*(?:gpt|o[1-9]|chatgpt|text-|claude|anthropic\.|gemini|gemma|llama|meta-llama|meta\.|mistral|"
    r"mixtral|codestral|ministral|command|cohere|amazon\.|titan|nova|deepseek|qwen|phi-|grok|jamba|sonar|"
    r"davinci|babbage|whisper|tts-|dall-e|embed)", re.IGNORECASE)
_VALUE_RE = re.compile(r"[A-Za-z0-9][\w.:/@+-]*")
_ANNOTATION_RE = re.compile(r"costwarden\.feature[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9][\w.-]*)")
GPU_RESOURCE = "nvidia.com/gpu"
_NODE_TYPE_LABELS = ("node.kubernetes.io/instance-type", "beta.kubernetes.io/instance-type")
_COUNT_ATTRS = ("instance_count", "initial_instance_count", "node_count")
_TYPE_ATTRS = ("instance_type", "machine_type")
_SCRIPT_EXT = (".py", ".pyi", ".ts", ".tsx", ".mts", ".cts", ".js", ".jsx", ".mjs", ".cjs")


@dataclass(frozen=True)
class Setting:
    """One cost-relevant value at one place in a file.

    `key` locates it independently of line numbers (which shift with every edit), so the
    base and head versions of the same setting can be paired: "llm.summarize.model",
    "aws_instance.train", "Deployment/infer". `value` is the model id or instance type ("" for
    a GPU request on an unknown node type); `count` is instances or GPUs (1 for a model).
    """

    kind: Kind
    key: str
    value: str
    count: int = 1
    line: int = 0
    provider: str = ""
    feature: str | None = None
    notes: tuple[str, ...] = field(default=(), compare=False)


def file_format(path: str) -> str | None:
    """The extractor for a path, or None when the file cannot hold a cost-relevant setting."""
    name = path.rsplit("/", 1)[-1].lower()
    if name == ".env" or name.startswith(".env.") or name.endswith(".env"):
        return "env"
    if name.endswith((".tf", ".tfvars")):
        return "terraform"
    if name.endswith((".yaml", ".yml")):
        return "yaml"
    if name.endswith(".json"):
        return "json"
    if name.endswith(".toml"):
        return "toml"
    if name.endswith(_SCRIPT_EXT):
        return "script"
    return None


def is_model_key(key: str) -> bool:
    return bool(_KEY_RE.search(key.strip().strip("\"'`")))


def looks_like_model(value: str) -> bool:
    """A model id: one token, at least two letters, and a known family, a provider prefix or a digit."""
    v = value.strip()
    if not v or len(v) > 120 or not _VALUE_RE.fullmatch(v):
        return False
    if _FAMILY_RE.match(v):
        return True
    return sum(c.isalpha() for c in v) >= 2 and ("/" in v or any(c.isdigit() for c in v))


def annotations(text: str) -> list[tuple[int, str]]:
    """(line, feature) of every `costwarden.feature` annotation, in file order."""
    return [(i, m.group(1)) for i, line in enumerate(text.splitlines(), 1)
            for m in [_ANNOTATION_RE.search(line)] if m]


def _feature_at(marks: list[tuple[int, str]], line: int) -> str | None:
    found = None
    for at, name in marks:
        if at > line:
            break
        found = name
    return found


def extract(path: str, text: str) -> tuple[list[Setting], list[str]]:
    """All settings of one file version, and warnings (e.g. a file that would not parse)."""
    fmt = file_format(path)
    if fmt is None:
        return [], []
    warnings: list[str] = []
    if fmt == "env":
        found = list(_env(text))
    elif fmt == "script":
        found = list(_script(text))
    elif fmt == "terraform":
        found = _terraform(text)
    else:
        found = _structured(fmt, path, text, warnings)
    marks = annotations(text)
    if marks:
        found = [Setting(s.kind, s.key, s.value, s.count, s.line, s.provider, _feature_at(marks, s.line), s.notes)
                 for s in found]
    return found, warnings


# -- .env ----------------------------------------------------------------------------------------
def _env(text: str) -> Iterator[Setting]:
    for i, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if value[:1] in "\"'":
            value = value[1:].split(value[0], 1)[0]
        else:
            value = value.split(" #", 1)[0].strip()
        if is_model_key(key.strip()) and looks_like_model(value):
            yield Setting("model", key.strip(), value, line=i)


# -- Python / TypeScript ---------------------------------------------------------------------------
_CODE_RE = re.compile(r"""
    (?P<q>["'`]?)(?P<key>[A-Za-z_$][\w$]*)(?P=q)          # identifier, or a quoted object/dict key
    \s*(?::\s*[\w\[\]|., ]+?\s*(?==))?                       # optional type annotation: model: str = "..."
    (?:=(?!=)|:)\s*
    (?:(?:os\.getenv|os\.environ\.get|getenv)\s*\(\s*["'](?P<env1>[^"']*)["']\s*,\s*
      |process\.env\.(?P<env2>\w+)\s*(?:\?\?|\|\|)\s*)?    # the default of an environment lookup
    (?P<vq>["'`])(?P<value>[^"'`\n\\]{1,120})(?P=vq)
    """, re.VERBOSE)
_SCOPE_RE = re.compile(r"^\s*(?:export\s+)?(?:async\s+)?(?:def|class|function)\s+([A-Za-z_$][\w$]*)")


def _script(text: str) -> Iterator[Setting]:
    """Literals passed as a model argument; the key is scope.identifier#n so an edit elsewhere in
    the file does not re-pair unrelated settings."""
    scope, seen = "", {}  # type: ignore[var-annotated]
    for i, line in enumerate(text.splitlines(), 1):
        s = _SCOPE_RE.match(line)
        if s and not line.startswith((" ", "\t")):
            scope = s.group(1)
        elif s and scope:
            scope = scope.split(".")[0] + "." + s.group(1)
        elif line[:1].strip() and not line.startswith(("@", ")", "]", "#", '"', "'", "/")):
            scope = ""  # a top-level statement (or a TypeScript function's closing brace) ends the scope
        stripped = line.lstrip()
        if stripped.startswith(("#", "//", "*", "/*")):
            continue
        for m in _CODE_RE.finditer(line):
            key, value = m.group("key"), m.group("value").strip()
            env = m.group("env1") or m.group("env2")
            if env and not is_model_key(key) and is_model_key(env):
                key = env  # m = os.getenv("SUMMARY_MODEL", "gpt-4o"): the variable names the model
            if not is_model_key(key) or not looks_like_model(value):
                continue
            base = f"{scope}.{key}" if scope else key
            seen[base] = seen.get(base, 0) + 1
            yield Setting("model", f"{base}#{seen[base]}", value, line=i)


# -- YAML / JSON / TOML ----------------------------------------------------------------------------
class _Lines:
    """Line of a value in the text, searched forward from the previous hit (structured parsers
    drop line numbers; this is for display and for annotation scope)."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.pos = 0

    def find(self, *needles: str) -> int:
        for start in (self.pos, 0):
            for i in range(start, len(self.lines)):
                if all(n in self.lines[i] for n in needles):
                    self.pos = i
                    return i + 1
        return 0


def _structured(fmt: str, path: str, text: str, warnings: list[str]) -> list[Setting]:
    try:
        if fmt == "yaml":
            docs = [d for d in yaml.load_all(text, Loader=_YAML_LOADER) if d is not None]
        elif fmt == "json":
            docs = [json.loads(text)] if text.strip() else []
        else:
            docs = [tomllib.loads(text)]
    except (yaml.YAMLError, ValueError) as exc:
        if fmt != "yaml":
            warnings.append(f"{path}: not valid {fmt.upper()} ({str(exc).splitlines()[0]}); skipped")
            return []
        warnings.append(f"{path}: not valid YAML (a template?); model keys found by a line scan")
        return list(_yaml_lines(text))
    lines = _Lines(text)
    out: list[Setting] = []
    for n, doc in enumerate(docs):
        prefix = f"[{n}]" if len(docs) > 1 else ""
        if isinstance(doc, dict) and "kind" in doc and "apiVersion" in doc:
            name = (doc.get("metadata") or {}).get("name", "?") if isinstance(doc.get("metadata"), dict) else "?"
            prefix = f"{doc['kind']}/{name}"
            gpu = _k8s_gpu(doc, prefix, lines)
            if gpu:
                out.append(gpu)
        out.extend(_walk(doc, prefix, lines))
    return out


def _walk(node: Any, path: str, lines: _Lines) -> Iterator[Setting]:
    if isinstance(node, dict):
        name, value = node.get("name"), node.get("value")
        if isinstance(name, str) and isinstance(value, str) and is_model_key(name) and looks_like_model(value):
            yield Setting("model", path if path.endswith(f"[{name}]") else f"{path}[{name}]", value,
                          line=lines.find(value))
        for k, v in node.items():
            key = str(k)
            sub = f"{path}.{key}" if path else key
            if isinstance(v, str) and is_model_key(key) and looks_like_model(v):
                yield Setting("model", sub, v, line=lines.find(key, v))
            elif isinstance(v, list) and is_model_key(key):
                for i, item in enumerate(v):
                    if isinstance(item, str) and looks_like_model(item):
                        yield Setting("model", f"{sub}[{i}]", item, line=lines.find(item))
                    else:
                        yield from _walk(item, f"{sub}[{i}]", lines)
            else:
                yield from _walk(v, sub, lines)
    elif isinstance(node, list):
        for i, item in enumerate(node):  # list items keyed by their name when they have one: order can change
            label = next((item[k] for k in ("name", "model_name") if isinstance(item, dict)
                          and isinstance(item.get(k), str)), i)
            yield from _walk(item, f"{path}[{label}]", lines)


_YAML_LINE_RE = re.compile(r"^\s*(?:-\s+)?[\"']?([\w.-]+)[\"']?\s*:\s*[\"']?([^\"'#\s{}]+)[\"']?\s*(?:#.*)?$")


def _yaml_lines(text: str) -> Iterator[Setting]:
    seen: dict[str, int] = {}
    for i, line in enumerate(text.splitlines(), 1):
        m = _YAML_LINE_RE.match(line)
        if m and is_model_key(m.group(1)) and looks_like_model(m.group(2)):
            seen[m.group(1)] = seen.get(m.group(1), 0) + 1
            yield Setting("model", f"{m.group(1)}#{seen[m.group(1)]}", m.group(2), line=i)


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _k8s_gpu(doc: dict[str, Any], key: str, lines: _Lines) -> Setting | None:
    """GPUs a workload holds: GPUs per pod x replicas (x parallelism for Jobs)."""
    kind, spec, notes = doc.get("kind"), doc.get("spec") or {}, []
    if kind == "Pod":
        pod, replicas = spec, 1
    elif kind == "CronJob":
        pod, replicas = _get(spec, "jobTemplate", "spec", "template", "spec"), _get(spec, "jobTemplate", "spec",
                                                                                   "parallelism")
    elif kind == "Job":
        pod, replicas = _get(spec, "template", "spec"), _get(spec, "parallelism")
    else:
        pod, replicas = _get(spec, "template", "spec"), _get(spec, "replicas")
        if kind == "DaemonSet":
            notes.append("DaemonSet: one pod per node; node count unknown, counted once")
    if not isinstance(pod, dict):
        return None
    per_pod = 0
    for c in pod.get("containers") or []:
        res = (c or {}).get("resources") or {}
        per_pod += max(_int(_get(res, "limits", GPU_RESOURCE)) or 0, _int(_get(res, "requests", GPU_RESOURCE)) or 0)
    if per_pod == 0:
        return None
    n = _int(replicas) if replicas is not None else 1
    if n is None:
        notes.append(f"replicas {replicas!r} is not a number; counted as 1")
        n = 1
    selector = pod.get("nodeSelector") or {}
    node_type = next((str(selector[k]) for k in _NODE_TYPE_LABELS if k in selector), "")
    return Setting("gpu", key, node_type, count=per_pod * n, line=lines.find(GPU_RESOURCE),
                   provider="aws" if node_type else "", notes=tuple(notes))


# -- Terraform ---------------------------------------------------------------------------------------
@dataclass
class _Block:
    kind: str
    labels: tuple[str, ...]
    parent: _Block | None
    line: int
    attrs: dict[str, tuple[str, int]] = field(default_factory=dict)
    children: list[_Block] = field(default_factory=list)


_BLOCK_RE = re.compile(r'^\s*([\w-]+)((?:\s+"[^"]*"|\s+[\w-]+)*)\s*\{(.*)$')
_ATTR_RE = re.compile(r"^\s*([\w-]+)\s*=\s*(.*?)\s*$")
_LABEL_RE = re.compile(r'"([^"]*)"|([\w-]+)')


def _strip_hcl_comment(line: str) -> str:
    quote = False
    for i, ch in enumerate(line):
        if ch == '"' and (i == 0 or line[i - 1] != "\\"):
            quote = not quote
        elif not quote and (ch == "#" or line.startswith("//", i)):
            return line[:i]
    return line


def _hcl_blocks(text: str) -> _Block:
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.DOTALL)
    root = _Block("", (), None, 0)
    cur, depth_extra = root, [0]  # depth_extra: braces opened inside attribute values of each block
    heredoc: str | None = None
    for i, raw in enumerate(text.splitlines(), 1):
        if heredoc is not None:
            if raw.strip() == heredoc:
                heredoc = None
            continue
        line = _strip_hcl_comment(raw)
        if not line.strip():
            continue
        m = _BLOCK_RE.match(line)
        if m and "=" not in line.split("{", 1)[0]:
            labels = tuple(a or b for a, b in _LABEL_RE.findall(m.group(2)))
            blk = _Block(m.group(1), labels, cur, i)
            cur.children.append(blk)
            cur, rest = blk, m.group(3)
            depth_extra.append(0)
            net = rest.count("{") - rest.count("}")
            if net < 0:  # a one-line block: `lifecycle { prevent_destroy = true }`
                inner = _ATTR_RE.match(rest.rsplit("}", 1)[0])
                if inner:
                    blk.attrs[inner.group(1)] = (inner.group(2), i)
                depth_extra.pop()
                cur = cur.parent or root
            continue
        a = _ATTR_RE.match(line)
        if a and depth_extra[-1] == 0:
            value = a.group(2)
            cur.attrs[a.group(1)] = (value, i)
            h = re.match(r"<<-?\s*(\w+)", value)
            if h:
                heredoc = h.group(1)
                continue
        opened = line.count("{") + line.count("[") - line.count("}") - line.count("]")
        if opened >= 0 or depth_extra[-1] + opened >= 0:
            depth_extra[-1] += opened
        else:  # closes the current block (and whatever was left open inside it)
            depth_extra.pop()
            cur = cur.parent or root
            if not depth_extra:
                depth_extra = [0]
    return root


def _literal(raw: str) -> str | None:
    m = re.fullmatch(r'"([^"$]*)"', raw.strip())
    return m.group(1) if m else None


def _terraform(text: str) -> list[Setting]:
    out: list[Setting] = []

    def resource_of(b: _Block) -> _Block | None:
        while b.parent is not None and b.parent.parent is not None:
            b = b.parent
        return b if b.parent is not None else None

    def key_of(b: _Block) -> str:
        parts: list[str] = []
        while b.parent is not None:
            if b.kind in ("resource", "data") and len(b.labels) == 2:
                parts.append(("data." if b.kind == "data" else "") + ".".join(b.labels))
            elif b.kind in ("module", "variable") and b.labels:
                parts.append(f"{'module' if b.kind == 'module' else 'var'}.{b.labels[0]}")
            else:
                same = [c for c in b.parent.children if c.kind == b.kind]
                parts.append(f"{b.kind}[{same.index(b)}]" if len(same) > 1 else b.kind)
            b = b.parent
        return "/".join(reversed(parts)) or "(file)"

    def visit(b: _Block) -> None:
        for child in b.children:
            visit(child)
        type_attr = next((a for a in _TYPE_ATTRS if a in b.attrs), None)
        if b.kind == "variable" and b.labels and b.labels[0].endswith(_TYPE_ATTRS) and "default" in b.attrs:
            value, line = b.attrs["default"]
            lit = _literal(value)
            if lit:
                provider = "gcp" if b.labels[0].endswith("machine_type") else "aws"
                out.append(Setting("instance", key_of(b), lit, 1, line, provider,
                                   notes=("variable default; instance count not known here, counted once",)))
            return
        if type_attr is None:
            return
        value, line = b.attrs[type_attr]
        lit = _literal(value)
        if lit is None:
            return  # var.x / local.x: the change shows up where the value is defined
        notes: list[str] = []
        count = 1
        res = resource_of(b)
        for holder, attrs in ((b, _COUNT_ATTRS), (res, ("count",))):
            if holder is None:
                continue
            for name in attrs:
                if name in holder.attrs:
                    n = _int(holder.attrs[name][0])
                    if n is None:
                        notes.append(f"{name} = {holder.attrs[name][0]} is not a literal; counted as 1")
                    else:
                        count *= n
        if res is not None and "for_each" in res.attrs:
            notes.append("for_each: instances per key not known; counted once")
        rtype = res.labels[0] if res is not None and res.labels else ""
        provider = "gcp" if rtype.startswith("google_") or type_attr == "machine_type" else "aws"
        out.append(Setting("instance", key_of(b), lit, count, line, provider, notes=tuple(notes)))

    visit(_hcl_blocks(text))
    return sorted(out, key=lambda s: s.line)
