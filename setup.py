"""The package list for pyproject.toml's `package-dir` mapping: every package under the four code
folders, installed as costwarden.<folder>.<...>. Computed, so a new sub-package cannot be left out."""

from setuptools import find_packages, setup

CODE = ("agent", "tools", "policies", "state")

setup(packages=[f"costwarden.{p}" for p in find_packages(include=[f"{c}*" for c in CODE])])
