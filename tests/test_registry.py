"""The one registry behind detectors, actions, tools and collectors: duplicates, unknown names, lazy builtins."""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

import pytest

from costwarden.policies.registry import actions, detectors
from costwarden.state.errors import CostwardenError
from costwarden.state.registry import DuplicateName, Registry, UnknownName
from costwarden.tools.collectors import CollectorSpec, collectors, get_collector, register_collector, resource_types
from costwarden.tools.registry import ToolSpec, get_tool, register_tool, tool_names


def _known(message: str) -> list[str]:
    return message.split("; known: ", 1)[1].split(", ")


@pytest.mark.parametrize("registry, name", [(detectors, "idle-gpu"), (actions, "stop")], ids=["detectors", "actions"])
def test_policy_registries_reject_a_second_class_of_one_name(registry, name):
    original = registry.get(name)

    class Impostor:
        pass

    with pytest.raises(DuplicateName, match=f"'{name}' registered twice"):
        registry.register(name)(Impostor)
    assert registry.get(name) is original and original.name == name
    assert not hasattr(Impostor, "name")  # a rejected class is not stamped either


@pytest.mark.parametrize("registry, kind", [(detectors, "detector"), (actions, "action")], ids=["detectors", "actions"])
def test_policy_registries_name_the_unknown_and_list_the_known(registry, kind):
    with pytest.raises(UnknownName) as e:
        registry.get("no-such-thing")
    assert str(e.value).startswith(f"unknown {kind} 'no-such-thing'; known: ")
    assert _known(str(e.value)) == registry.names() and len(registry.names()) > 5
    assert isinstance(e.value, KeyError) and isinstance(e.value, CostwardenError)
    assert "no-such-thing" not in registry


def test_tools_reject_a_duplicate_and_list_the_known_on_a_miss():
    original = get_tool("aws.ec2.stop_instance")
    twin = ToolSpec(name="aws.ec2.stop_instance", provider="aws", run=original.run, observe=original.observe,
                    is_done=original.is_done)
    with pytest.raises(DuplicateName, match="tool 'aws.ec2.stop_instance' registered twice"):
        register_tool(twin)
    assert get_tool("aws.ec2.stop_instance") is original
    with pytest.raises(KeyError) as e:
        get_tool("aws.ec2.explode")
    assert str(e.value).startswith("unknown tool 'aws.ec2.explode'; known: ")
    assert _known(str(e.value)) == tool_names() and "gcp.compute.stop_instance" in tool_names()


def test_collectors_reject_a_duplicate_and_list_the_known_on_a_miss():
    original = get_collector("aws.ec2")
    with pytest.raises(DuplicateName, match="resource type 'aws.ec2' registered twice"):
        register_collector(CollectorSpec("aws.ec2", "aws", original.collect))
    assert get_collector("aws.ec2") is original
    with pytest.raises(KeyError) as e:
        get_collector("aws.lambda")
    assert str(e.value).startswith("unknown resource type 'aws.lambda'; known: ")
    assert _known(str(e.value)) == resource_types() == collectors.names()


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Registry[int]]:
    """A package of plugin modules that register into a fresh registry when imported."""
    reg: Registry[int] = Registry("plugin", packages=("cw_plugins",), modules=("cw_extra",))
    host = types.ModuleType("cw_registry_host")
    host.REG = reg  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cw_registry_host", host)
    pkg = tmp_path / "cw_plugins"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "one.py").write_text("import cw_registry_host as h\nh.REG.add('one', 1)\n")
    # a module that looks names up while the builtins are loading sees what is there so far
    (pkg / "two.py").write_text("import cw_registry_host as h\nSEEN = h.REG.names()\nh.REG.add('two', 2)\n")
    (pkg / "_private.py").write_text("import cw_registry_host as h\nh.REG.add('private', 0)\n")
    (tmp_path / "cw_extra.py").write_text("import cw_registry_host as h\nh.REG.add('extra', 3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("cw_plugins", "cw_plugins.one", "cw_plugins.two", "cw_plugins._private", "cw_extra"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return tmp_path, reg


def test_builtin_modules_are_imported_on_the_first_lookup_only(plugin_dir):
    _, reg = plugin_dir
    assert "cw_plugins.one" not in sys.modules and "cw_extra" not in sys.modules  # creating it imported nothing
    reg.add("early", 0)  # registering does not load the builtins either
    assert "cw_plugins.one" not in sys.modules
    assert reg.get("one") == 1
    assert reg.names() == ["early", "extra", "one", "two"]  # the package's _private module is not a plugin
    assert sys.modules["cw_plugins.two"].SEEN == ["early", "extra", "one"]
    reg.load_builtin()  # once only: a second import would register 'one' twice
    assert reg.items() == [("early", 0), ("extra", 3), ("one", 1), ("two", 2)]


def test_a_failed_builtin_import_is_retried_not_remembered(plugin_dir):
    tmp_path, reg = plugin_dir
    (tmp_path / "cw_extra.py").write_text("raise ImportError('cw_extra is broken')\n")
    with pytest.raises(ImportError, match="broken"):
        reg.names()
    (tmp_path / "cw_extra.py").write_text("import cw_registry_host as h\nh.REG.add('extra', 3)\n")
    sys.modules.pop("cw_extra", None)
    importlib.invalidate_caches()
    assert "extra" in reg
