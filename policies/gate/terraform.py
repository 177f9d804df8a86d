"""Instance types and counts in Terraform, read by a small block scanner (no HCL dependency).

`instance_type` / `machine_type` with a literal value, multiplied by the literal `instance_count`,
`initial_instance_count` (SageMaker production variants) or `node_count` of the same block and
the `count` of the enclosing resource. `variable "..._type" { default = "..." }` and top-level
`.tfvars` assignments count too, since that is where the type often lives. A value taken from a
variable or a local is left to the place that defines it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from costwarden.policies.gate.setting import Setting, to_int

_COUNT_ATTRS = ("instance_count", "initial_instance_count", "node_count")
_TYPE_ATTRS = ("instance_type", "machine_type")


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


def terraform_settings(text: str) -> list[Setting]:
    """Instance settings in file order, keyed by their resource address (`aws_instance.train`)."""
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
                    n = to_int(holder.attrs[name][0])
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
