"""Instance types in Python code, read with the `ast` module: boto3, the SageMaker Python SDK
and google-cloud-compute calls.

Why `ast` and not a line scan: the arguments of one call span lines, comments and strings must not
count, and a count (`MaxCount=`, `instance_count=`) belongs to the same call as its type. What is read:
- keyword `InstanceType="..."` of any call (boto3 `run_instances`, `create_notebook_instance`, ...),
  counted by `MaxCount` (else `MinCount`) of the same call;
- `ProductionVariants=[{"InstanceType": ..., "InitialInstanceCount": ...}]` (boto3
  `create_endpoint_config`), one setting per variant, keyed by its `VariantName`;
- keyword `instance_type="..."` (SageMaker SDK `Estimator(...)`, `Model.deploy(...)`, processors),
  counted by `instance_count` / `initial_instance_count`;
- `machine_type="..."` as a keyword or an attribute assignment (`instance.machine_type = ...`,
  google-cloud-compute), also in its `zones/ZONE/machineTypes/NAME` form and as an f-string whose
  tail is literal; provider GCP;
- a dict literal with an `"InstanceType"` key (a `LaunchTemplateData`, `run_instances(**params)`),
  counted by its `MaxCount` / `MinCount`;
- the default of a function parameter named like an instance type (`def deploy(instance_type="ml.g5.xlarge")`).
A plain name is resolved when the file assigns it one string or integer literal
(`INSTANCE_TYPE = "p4d.24xlarge"`), an environment lookup to its literal default
(`os.getenv("TYPE", "ml.g5.xlarge")`, `os.environ.get(...)`); anything else is decided at run time and left out. Settings are
keyed `scope.callee.argument#n` (scope: enclosing class/function), so edits elsewhere in the file
do not re-pair them. Model ids in Python stay with code.py's scan.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import Any

from costwarden.policies.gate.setting import Setting, instance, is_instance_key, to_int

_COUNT_ARGS = {"InstanceType": ("MaxCount", "MinCount"), "instance_type": ("instance_count", "initial_instance_count"),
               "machine_type": ()}


def _literal(node: ast.expr | None) -> Any:
    """A literal, or the literal default of an environment lookup (`os.getenv("T", "ml.g5.xlarge")`)."""
    if isinstance(node, ast.Constant):
        return node.value
    if (isinstance(node, ast.Call) and callee(node.func) in ("getenv", "get") and len(node.args) == 2
            and isinstance(node.args[1], ast.Constant)):
        return node.args[1].value  # the default ships in the code
    return None


def constants(tree: ast.AST) -> dict[str, Any]:
    """Names bound to exactly one str/int literal in the file (anything rebound is unknown)."""
    seen: dict[str, list[Any]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            seen.setdefault(node.targets[0].id, []).append(_literal(node.value))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            seen.setdefault(node.target.id, []).append(_literal(node.value))
    return {k: v[0] for k, v in seen.items() if len(v) == 1 and isinstance(v[0], (str, int))}


def callee(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return "call"


class _Finder(ast.NodeVisitor):
    def __init__(self, consts: dict[str, Any]) -> None:
        self.consts = consts
        self.scope: list[str] = []
        self.seen: dict[str, int] = {}
        self.out: list[Setting] = []

    def value(self, node: ast.expr | None) -> Any:
        if isinstance(node, ast.Name):
            return self.consts.get(node.id)
        if _literal(node) is not None:
            return _literal(node)
        if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[-1], ast.Constant):
            tail = str(node.values[-1].value)  # f"zones/{zone}/machineTypes/n2-standard-8"
            return tail if "machineTypes/" in tail else None
        return None

    def emit(self, what: str, node: ast.expr, count_node: ast.expr | None, count_name: str,
             notes: tuple[str, ...] = ()) -> None:
        value = self.value(node)
        if not isinstance(value, str):
            return
        count = None
        if count_node is not None:
            count = to_int(self.value(count_node)) if self.value(count_node) is not None else None
            if count is None:
                notes = (*notes, f"{count_name} is not a literal")
        base = ".".join([*self.scope, what])
        self.seen[base] = self.seen.get(base, 0) + 1
        s = instance(f"{base}#{self.seen[base]}", value, count, node.lineno, notes,
                     f"`{count_name}`" if count is not None else "")
        if s is not None:
            self.out.append(s)

    def scoped(self, node: ast.AST, name: str) -> None:
        self.scope.append(name)
        self.generic_visit(node)
        self.scope.pop()

    def defaults(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        """`def deploy(instance_type: str = "ml.g5.xlarge")`: the default is what callers get."""
        positional = [*node.args.posonlyargs, *node.args.args]
        pairs = [*zip(positional[len(positional) - len(node.args.defaults):], node.args.defaults),
                 *((a, d) for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults) if d is not None)]
        self.scope.append(node.name)
        for arg, default in pairs:
            if is_instance_key(arg.arg):
                self.emit(arg.arg, default, None, "")
        self.scope.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.defaults(node)
        self.scoped(node, node.name)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self.defaults(node)
        self.scoped(node, node.name)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.scoped(node, node.name)

    def visit_Call(self, node: ast.Call) -> None:
        kw = {k.arg: k.value for k in node.keywords if k.arg}
        fn = callee(node.func)
        for arg, counts in _COUNT_ARGS.items():
            if arg in kw:
                name = next((c for c in counts if c in kw), counts[0] if counts else "")
                self.emit(f"{fn}.{arg}", kw[arg], kw.get(name), name)
        variants = kw.get("ProductionVariants")
        if isinstance(variants, (ast.List, ast.Tuple)):
            for i, v in enumerate(variants.elts):
                if not isinstance(v, ast.Dict):
                    continue
                d = {k.value: val for k, val in zip(v.keys, v.values) if isinstance(k, ast.Constant)}
                label = self.value(d.get("VariantName")) or i
                if "InstanceType" in d:
                    self.emit(f"{fn}.ProductionVariants[{label}]", d["InstanceType"],
                              d.get("InitialInstanceCount"), "InitialInstanceCount")
        self.generic_visit(node)

    def visit_Dict(self, node: ast.Dict) -> None:
        for k, v in zip(node.keys, node.values):
            if isinstance(k, ast.Constant) and k.value == "InstanceType" and not self._in_variant(node):
                d = {key.value: val for key, val in zip(node.keys, node.values) if isinstance(key, ast.Constant)}
                name = next((c for c in ("MaxCount", "MinCount") if c in d), "MaxCount")
                self.emit("InstanceType", v, d.get(name), name)  # run_instances(**params)
        self.generic_visit(node)

    def _in_variant(self, node: ast.Dict) -> bool:
        return any(isinstance(k, ast.Constant) and k.value in ("InitialInstanceCount", "VariantName")
                   for k in node.keys)

    def visit_Assign(self, node: ast.Assign) -> None:
        for t in node.targets:
            if isinstance(t, ast.Attribute) and is_instance_key(t.attr):
                self.emit(t.attr, node.value, None, "")
        self.generic_visit(node)


def python_settings(text: str, finder: Callable[[dict[str, Any]], Any]) -> list[Setting]:
    """What `finder` (built with the file's constants) collects in its `out` while visiting a Python
    file, in line order; a file that does not parse has none (and is not an error: its model ids
    are still found by the line scan)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return []
    visitor = finder(constants(tree))
    visitor.visit(tree)
    return sorted(visitor.out, key=lambda s: s.line)


def python_instance_settings(text: str) -> list[Setting]:
    """Instance settings of a Python file."""
    return python_settings(text, _Finder)
