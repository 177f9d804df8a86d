"""Model ids in `.env` files and in Python / TypeScript source, read line by line.

Source is scanned for a literal passed as a model argument (`model="..."`, `"model": "..."`,
`model: "..."`, `model: str = "..."`, `os.getenv("M", "...")`, `process.env.M ?? "..."`): the
API-wrapper default from the seeds' "expensive library update" is exactly such a literal. Values
built at run time are out of reach of any static gate.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from costwarden.policies.gate.setting import Setting, instance, is_instance_key, is_model_key, looks_like_model


def env_settings(text: str) -> Iterator[Setting]:
    """`KEY=value` lines (quoted or not, `export` allowed) whose key names a model or an instance
    type (`TRAIN_INSTANCE_TYPE=ml.g5.xlarge`); keyed by the variable."""
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
        elif is_instance_key(key):
            s = instance(key.strip(), value, None, i)
            if s is not None:
                yield s


_CODE_RE = re.compile(r"""
    (?P<q>["'`]?)(?P<key>[A-Za-z_$][\w$]*)(?P=q)          # identifier, or a quoted object/dict key
    \s*(?::\s*[\w\[\]|., ]+?\s*(?==))?                       # optional type annotation: model: str = "..."
    (?:=(?!=)|:)\s*
    (?:(?:os\.getenv|os\.environ\.get|getenv)\s*\(\s*["'](?P<env1>[^"']*)["']\s*,\s*
      |process\.env\.(?P<env2>\w+)\s*(?:\?\?|\|\|)\s*)?    # the default of an environment lookup
    (?P<vq>["'`])(?P<value>[^"'`\n\\]{1,120})(?P=vq)
    """, re.VERBOSE)
_SCOPE_RE = re.compile(r"^\s*(?:export\s+)?(?:async\s+)?(?:def|class|function)\s+([A-Za-z_$][\w$]*)")


def script_settings(text: str) -> Iterator[Setting]:
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

