"""The package list for pyproject.toml's `package-dir` mapping: every package under the four code
folders, installed as costwarden.<folder>.<...>. Computed, so a new sub-package cannot be left out.

Namespace discovery, so that the data folders (policy packs, price tables, report templates) are
packages too and their files ship as those packages' data (pyproject's package-data)."""

from setuptools import find_namespace_packages, setup

CODE = ("agent", "tools", "policies", "state")

packages = find_namespace_packages(include=[p for c in CODE for p in (c, f"{c}.*")], exclude=["*.__pycache__"])
setup(packages=[f"costwarden.{p}" for p in packages])
