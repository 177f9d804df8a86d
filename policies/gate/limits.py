"""Output-token limits and system prompts: the settings that change what each request costs
without changing the model.

Why they are read: raising `max_tokens` from 1,024 to 8,192 lets every reply of a feature be up
to eight times longer, and a system prompt that doubles in size doubles the input tokens every
request pays for. Both are ordinary settings in files the gate already reads:
- YAML/JSON/TOML: a key `max_tokens`, `max_output_tokens`, `max_completion_tokens`,
  `max_new_tokens` (any case, `-`/`_` alike) with an integer value; a key `system_prompt`,
  `systemPrompt`, `system`, `system_message`, `system_instruction` with prose (a value with a
  space: `system: linux` is not a prompt); a `{role: system, content: ...}` message. The model of
  the same mapping (`model:` next to it; LiteLLM's `model_list[].litellm_params`) prices it.
- Python, read with `ast`: those keywords of any call (`client.chat.completions.create(...,
  max_tokens=...)`, Anthropic `system=`, OpenAI `instructions=`, Gemini `system_instruction=`),
  a `{"role": "system", "content": ...}` message in a call's `messages=`, a dict literal with a
  limit key (`generation_config={"max_output_tokens": ...}`), and a module- or class-level string
  assigned to a name like `SYSTEM_PROMPT` (counted there, not again where it is passed).
A limit's value is its token count, a prompt's value its length in characters.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator
from typing import Any

from costwarden.policies.gate.pycalls import callee, python_settings
from costwarden.policies.gate.setting import Setting, is_model_key, looks_like_model

PY_LIMIT_WORDS = ("max_tokens", "max_output_tokens", "max_completion_tokens", "max_new_tokens", "system", "SYSTEM",
                  "instructions")
_LIMIT_KEYS = frozenset({"maxtokens", "maxoutputtokens", "maxcompletiontokens", "maxnewtokens"})
_PROMPT_KEYS = frozenset({"system", "systemmessage", "systeminstruction", "systeminstructions"})
_PY_PROMPT_ARGS = frozenset({"system", "system_prompt", "instructions", "system_instruction", "system_message"})


def _norm(key: str) -> str:
    return re.sub(r"[-_\s]", "", str(key)).lower()


def is_limit_key(key: str) -> bool:
    return _norm(key) in _LIMIT_KEYS


def is_prompt_key(key: str) -> bool:
    k = _norm(key)
    return k in _PROMPT_KEYS or k.endswith("systemprompt")


def _limit_value(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else None


def _prose(v: Any) -> bool:
    return isinstance(v, str) and " " in v.strip()


# -- YAML / JSON / TOML ------------------------------------------------------------------------------------
def doc_limit_settings(doc: Any, path: str, find: Callable[..., int]) -> list[Setting]:
    """Limits and system prompts of one parsed document; `find(*needles)` gives a line."""
    return list(_walk(doc, path, "", find))


def _walk(node: Any, path: str, model: str, find: Callable[..., int]) -> Iterator[Setting]:
    if isinstance(node, dict):
        here = next((str(v) for k, v in node.items() if isinstance(v, str) and is_model_key(str(k))
                     and looks_like_model(v)), model)
        if node.get("role") == "system" and _prose(node.get("content")):
            yield Setting("prompt", f"{path}.content", str(len(node["content"])), line=find("content"), model=here)
        for k, v in node.items():
            key = str(k)
            sub = f"{path}.{key}" if path else key
            if is_limit_key(key) and _limit_value(v):
                yield Setting("limit", sub, str(v), line=find(key, str(v)), model=here)
            elif is_prompt_key(key) and _prose(v):
                yield Setting("prompt", sub, str(len(v)), line=find(key), model=here)
            else:
                yield from _walk(v, sub, here, find)
    elif isinstance(node, list):
        for i, item in enumerate(node):  # keyed by name where there is one: list order can change
            label = next((item[k] for k in ("name", "model_name") if isinstance(item, dict)
                          and isinstance(item.get(k), str)), i)
            yield from _walk(item, f"{path}[{label}]", model, find)


# -- Python ------------------------------------------------------------------------------------------------
def _py_prompt_name(name: str) -> bool:
    k = _norm(name)
    return k.endswith(("systemprompt", "systemmessage", "systeminstruction", "systeminstructions"))


def _text(node: ast.expr | None) -> str | None:
    """A literal string, the literal parts of an f-string, or `dedent("...")` of a literal."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(str(v.value) for v in node.values if isinstance(v, ast.Constant))
    if isinstance(node, ast.Call) and callee(node.func) in ("dedent", "strip", "cleandoc") and node.args:
        return _text(node.args[0])
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "strip":
        return _text(node.func.value)
    return None


class _Finder(ast.NodeVisitor):
    def __init__(self, consts: dict[str, Any]) -> None:
        self.consts, self.scope, self.seen, self.out = consts, [], {}, []  # type: ignore[var-annotated]

    def add(self, kind: str, what: str, value: str, line: int, model: str) -> None:
        base = ".".join([*self.scope, what])
        self.seen[base] = self.seen.get(base, 0) + 1
        key = base if kind == "prompt" and what.isidentifier() and "." not in what else f"{base}#{self.seen[base]}"
        self.out.append(Setting(kind, key, value, line=line, model=model))  # type: ignore[arg-type]

    def const(self, node: ast.expr | None) -> Any:
        if isinstance(node, ast.Name):
            return self.consts.get(node.id)
        return node.value if isinstance(node, ast.Constant) else None

    def prompt_arg(self, what: str, node: ast.expr, model: str) -> None:
        if isinstance(node, ast.Name):
            if _py_prompt_name(node.id):
                return  # counted where it is defined
            text = self.consts.get(node.id)
        else:
            text = _text(node)
        if _prose(text):
            self.add("prompt", what, str(len(text)), node.lineno, model)

    def scoped(self, node: ast.AST, name: str) -> None:
        self.scope.append(name)
        self.generic_visit(node)
        self.scope.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.scoped(node, node.name)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self.scoped(node, node.name)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.scoped(node, node.name)

    def visit_Assign(self, node: ast.Assign) -> None:
        for t in node.targets:
            if isinstance(t, ast.Name) and _py_prompt_name(t.id) and _prose(_text(node.value)):
                self.add("prompt", t.id, str(len(_text(node.value) or "")), node.lineno, "")
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        t = node.target
        if isinstance(t, ast.Name) and _py_prompt_name(t.id) and _prose(_text(node.value)):
            self.add("prompt", t.id, str(len(_text(node.value) or "")), node.lineno, "")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        kw = {k.arg: k.value for k in node.keywords if k.arg}
        model = self.const(kw.get("model")) or (self.const(node.args[0]) if node.args else None)
        model = model if isinstance(model, str) and looks_like_model(model) else ""
        name = callee(node.func)
        for arg, value in kw.items():
            if is_limit_key(arg) and _limit_value(self.const(value)):
                self.add("limit", f"{name}.{arg}", str(self.const(value)), value.lineno, model)
            elif arg in _PY_PROMPT_ARGS:
                self.prompt_arg(f"{name}.{arg}", value, model)
        messages = kw.get("messages")
        for m in messages.elts if isinstance(messages, (ast.List, ast.Tuple)) else []:
            d = {k.value: v for k, v in zip(m.keys, m.values) if isinstance(k, ast.Constant)} \
                if isinstance(m, ast.Dict) else {}
            if isinstance(d.get("role"), ast.Constant) and d["role"].value == "system" and "content" in d:
                self.prompt_arg(f"{name}.messages.system", d["content"], model)
        self.generic_visit(node)

    def visit_Dict(self, node: ast.Dict) -> None:
        d = {k.value: v for k, v in zip(node.keys, node.values) if isinstance(k, ast.Constant)
             and isinstance(k.value, str)}
        model = self.const(d.get("model"))
        model = model if isinstance(model, str) and looks_like_model(model) else ""
        for key, value in d.items():
            if is_limit_key(key) and _limit_value(self.const(value)):
                self.add("limit", key, str(self.const(value)), value.lineno, model)
        self.generic_visit(node)


def python_limit_settings(text: str) -> list[Setting]:
    """Limits and system prompts of a Python file (none when it does not parse)."""
    return python_settings(text, _Finder)
