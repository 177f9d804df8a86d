#!/usr/bin/env bash
# Regenerates the container image's lock files, with a sha256 hash for every file pip may fetch:
#   requirements/docker.lock  the runtime dependencies (pyproject.toml's dependencies + the distributed extra:
#                             the postgres extra and procrastinate, so the image runs every --role)
#   requirements/build.lock   the build backend (pyproject.toml's [build-system] requires), used only in the
#                             builder stage to turn the sources into a wheel
# Resolved for the image's interpreter: CPython 3.11 on linux x86_64 (glibc >= 2.28), whatever machine runs this.
#
#   pip install uv && deploy/lock.sh                            # keep the current pins, add/remove what changed
#   deploy/lock.sh --upgrade                                    # move everything to the newest allowed versions
#   deploy/lock.sh --upgrade-package litellm                    # move one package
#
# uv keeps the pins already in an output file unless told to upgrade, so a plain run after editing pyproject.toml
# changes only what the edit requires. Commit both files with the pyproject.toml change that caused them.
set -euo pipefail
cd "$(dirname "$0")/.."

common=(--quiet --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28
        --custom-compile-command "deploy/lock.sh")

uv pip compile pyproject.toml --extra distributed "${common[@]}" --output-file requirements/docker.lock "$@"

# The build requirements are read from pyproject.toml so the two cannot drift apart.
python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"]))' \
  | uv pip compile - "${common[@]}" --output-file requirements/build.lock "$@"
