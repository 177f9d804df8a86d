"""The git transport of gateway changes: read the config at the base branch, commit the change on a
new branch, push that branch. Dry-run is enforced here, where every git process starts.

Why the `git` command (as tools/gate_git.py does) rather than a Python git library: the remote is
the user's own (GitHub over SSH or HTTPS, GitLab, a bare repository on a file share), and only
git itself honours all of their ssh config, credential helpers and URL rewrites unchanged. Every
command goes through `GitTransport.run`, which counts it in the call log and, in dry-run, refuses
`push` before any process starts (the botocore before-call hook's rule for git): a dry-run can
clone and read, never write to a remote. Work happens in a private scratch clone in a temporary
directory, deleted afterwards, so no working copy of a person is ever touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from costwarden.tools.calls import CallLog
from costwarden.tools.errors import DryRunViolation, ToolError

MUTATING = frozenset({"push", "send-pack"})  # the git commands that write to another repository


class GitError(ToolError):
    """git missing, a remote that cannot be read or written, an unknown branch: one line."""


def is_mutating(name: str) -> bool:
    service, _, op = name.partition(".")
    return (service == "git" and op in MUTATING) or (service == "github" and not op.startswith(("GET", "HEAD")))


def call_log() -> CallLog:
    return CallLog(is_mutating)


class GitTransport:
    def __init__(self, *, dry_run: bool, log: CallLog | None = None, author: tuple[str, str] = (
            "Costwarden", "costwarden@localhost")) -> None:
        self.dry_run = dry_run
        self.log = log if log is not None else call_log()
        self.author = author
        self.git = shutil.which("git")

    def run(self, args: list[str], *, cwd: Path | None = None, what: str) -> str:
        """One git command's output as text; see run_bytes."""
        return self.run_bytes(args, cwd=cwd, what=what).decode("utf-8", errors="replace")

    def run_bytes(self, args: list[str], *, cwd: Path | None = None, what: str, stdin: bytes | None = None) -> bytes:
        """One git command; DryRunViolation (before any process starts) for a push in dry-run."""
        command = args[0]
        if command.startswith("-"):  # the subcommand comes first, so the dry-run rule cannot be stepped around
            raise ValueError(f"git {command}: global options are not accepted here")
        if self.dry_run and command in MUTATING:
            self.log.add(f"git.{command}", refused=True)
            raise DryRunViolation("git", command)
        if self.git is None:
            raise GitError("git is not installed (gateway changes are committed and pushed with the git command)")
        name, email = self.author
        env = {**os.environ, "LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0", "GIT_AUTHOR_NAME": name,
               "GIT_AUTHOR_EMAIL": email, "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email}
        self.log.add(f"git.{command}")
        try:
            proc = subprocess.run([self.git, *args], cwd=cwd, capture_output=True, env=env, timeout=300, check=False,
                                  input=stdin)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise GitError(f"{what}: {exc}") from None
        if proc.returncode != 0:
            detail = [ln for ln in proc.stderr.decode("utf-8", errors="replace").strip().splitlines()
                      if ln.strip() and not ln.startswith("hint:")]
            raise GitError(what + (f" ({detail[-1].strip()})" if detail else ""))
        return proc.stdout

    def remote_branch(self, repo: str, branch: str) -> str | None:
        """The commit `branch` points at on the remote, or None when it has no such branch."""
        out = self.run(["ls-remote", "--heads", "--", repo, f"refs/heads/{branch}"],
                       what=f"cannot read the branches of {repo}")
        for line in out.splitlines():
            sha, _, ref = line.partition("\t")
            if ref == f"refs/heads/{branch}":
                return sha
        return None

    def read_at(self, repo: str, branch: str, path: str) -> tuple[str, str | None] | None:
        """(commit of `branch`, the file there or None) read straight from a repository on this machine,
        without a clone: one read-only `git cat-file --batch`. None when `repo` is not a local path."""
        if _clone_url(repo) == repo:
            return None
        out = self.run_bytes(["cat-file", "--batch"], cwd=Path(repo).resolve(), what=f"cannot read {repo}",
                             stdin=f"refs/heads/{branch}\nrefs/heads/{branch}:{path}\n".encode())
        header, _, rest = out.partition(b"\n")
        commit = header.split()
        if len(commit) != 3 or commit[1] != b"commit":
            raise GitError(f"cannot read branch {branch!r} of {repo} (no such branch)")
        rest = rest[int(commit[2]) + 1:]  # the commit object, then a newline
        header, _, rest = rest.partition(b"\n")
        blob = header.split()
        if len(blob) != 3 or blob[1] != b"blob":
            return commit[0].decode(), None
        try:
            return commit[0].decode(), rest[:int(blob[2])].decode("utf-8")
        except UnicodeDecodeError:
            raise GitError(f"{path} on branch {branch!r} of {repo}: not UTF-8 text") from None

    @contextmanager
    def scratch_clone(self, repo: str, branch: str) -> Iterator[Path]:
        """A private clone of `branch` (its tip only), deleted on exit."""
        with tempfile.TemporaryDirectory(prefix="costwarden-gateway-") as tmp:
            dest = Path(tmp) / "repo"
            self.run(["clone", "--quiet", "--no-checkout", "--depth", "1", "--single-branch", "--branch", branch,
                      "--", _clone_url(repo), str(dest)], what=f"cannot clone branch {branch!r} of {repo}")
            yield dest

    def read(self, clone: Path, path: str) -> str | None:
        """The file at the clone's HEAD, or None when the branch has no such file."""
        listed = self.run(["ls-tree", "--name-only", "HEAD", "--", path], cwd=clone, what=f"cannot list {path}")
        if not listed.strip():
            return None
        return self.run(["show", f"HEAD:{path}"], cwd=clone, what=f"cannot read {path}")

    def head(self, clone: Path) -> str:
        return self.run(["rev-parse", "HEAD"], cwd=clone, what="cannot read HEAD").strip()

    def commit_file(self, clone: Path, path: str, text: str, message: str) -> str:
        """Commit the new text of `path` on top of HEAD (the file's mode kept); return the commit."""
        self.run(["checkout", "--quiet", "HEAD", "--", path], cwd=clone, what=f"cannot check out {path}")
        (clone / path).write_text(text, encoding="utf-8")
        self.run(["add", "--", path], cwd=clone, what=f"cannot stage {path}")
        self.run(["commit", "--quiet", "--no-verify", "-m", message], cwd=clone, what="cannot commit")
        return self.head(clone)

    def push(self, clone: Path, repo: str, commit: str, branch: str) -> None:
        """Create `branch` on the remote at `commit`; never moves an existing branch (no force)."""
        self.run(["push", "--quiet", "--porcelain", _clone_url(repo), f"{commit}:refs/heads/{branch}"], cwd=clone,
                 what=f"cannot push branch {branch!r} to {repo}")


def _clone_url(repo: str) -> str:
    """A local path as a file:// URL, so --depth applies (git ignores it for plain local paths)."""
    if "://" in repo or (":" in repo and not Path(repo).exists()):  # a URL or scp-like user@host:path
        return repo
    return Path(repo).resolve().as_uri()
