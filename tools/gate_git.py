"""Read two revisions of a git repository for the cost gate, with the real `git` binary.

Why plumbing commands: one `git diff --name-status -z -M` lists the changed files (renames
paired, so a moved config file keeps its history), and one `git cat-file --batch` process
returns every blob at both revisions, whatever the number of files: the gate costs a fixed
handful of process starts on a 5,000-file repository. Nothing here writes to the repository
or its index (no checkout, no fetch), so it is safe on a CI runner's working copy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from costwarden.tools.errors import ToolError

MAX_BLOB_BYTES = 2_000_000  # larger files are not configuration; they are skipped


class GitError(ToolError):
    """Not a repository, an unknown revision, or git itself missing: bad input, exit 2."""


@dataclass(frozen=True)
class ChangedFile:
    status: str  # A, M, D, R, C, T
    old_path: str | None  # None when added
    new_path: str | None  # None when deleted


class GitRepo:
    """A repository on disk, read-only."""

    def __init__(self, path: str | Path = ".") -> None:
        self.git = shutil.which("git")
        if self.git is None:
            raise GitError("git is not installed (the gate compares revisions with the git command)")
        p = Path(path)
        if not p.is_dir():
            raise GitError(f"{path}: no such directory")
        self.path = p
        top = self._run(["rev-parse", "--show-toplevel"], what=f"{path}: not a git repository").strip()
        self.root = Path(top)

    def _run(self, args: list[str], *, what: str, stdin: bytes | None = None) -> str:
        out = self._run_bytes(args, what=what, stdin=stdin)
        return out.decode("utf-8", errors="replace")

    def _run_bytes(self, args: list[str], *, what: str, stdin: bytes | None = None) -> bytes:
        env = {**os.environ, "LC_ALL": "C", "GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0"}
        try:
            proc = subprocess.run([self.git or "git", "-C", str(self.path), "-c", "core.quotepath=false", *args],
                                  input=stdin, capture_output=True, env=env, timeout=120, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise GitError(f"{what}: {exc}") from None
        if proc.returncode != 0:
            detail = proc.stderr.decode("utf-8", errors="replace").strip().splitlines()
            raise GitError(what + (f" ({detail[0]})" if detail else ""))
        return proc.stdout

    def commit(self, ref: str) -> str:
        """The commit a ref names; an unknown ref is a GitError naming it."""
        if not ref or ref.startswith("-"):
            raise GitError(f"{ref!r}: not a revision")
        return self._run(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"],
                         what=f"{ref}: no such revision in {self.root}").strip()

    def merge_base(self, a: str, b: str) -> str | None:
        """Where head branched from base: a pull request's own changes are merge-base..head."""
        try:
            return self._run(["merge-base", a, b], what="merge-base").strip() or None
        except GitError:
            return None  # unrelated histories: compare the two commits directly

    def changed_files(self, base: str, head: str) -> list[ChangedFile]:
        raw = self._run(["diff", "--name-status", "-z", "-M", "--no-ext-diff", base, head, "--"],
                        what=f"cannot diff {base[:12]}..{head[:12]}")
        parts = raw.split("\0")
        out: list[ChangedFile] = []
        i = 0
        while i < len(parts) - 1:
            status = parts[i]
            if not status:
                i += 1
                continue
            code = status[0]
            if code in "RC":
                old, new = parts[i + 1], parts[i + 2]
                out.append(ChangedFile(code, old if code == "R" else None, new))
                i += 3
                continue
            path = parts[i + 1]
            out.append(ChangedFile(code, None if code == "A" else path, None if code == "D" else path))
            i += 2
        return out

    def read(self, specs: list[tuple[str, str]]) -> dict[tuple[str, str], str | None]:
        """Text of each (commit, path) in one `git cat-file --batch`; None when missing, binary or too large."""
        if not specs:
            return {}
        stdin = "".join(f"{rev}:{path}\n" for rev, path in specs).encode("utf-8")
        out = self._run_bytes(["cat-file", "--batch"], what="cannot read blobs", stdin=stdin)
        result: dict[tuple[str, str], str | None] = {}
        pos = 0
        for spec in specs:
            nl = out.index(b"\n", pos)
            header = out[pos:nl].decode("utf-8", errors="replace").split()
            pos = nl + 1
            if len(header) != 3 or header[-1] == "missing" or header[1] != "blob":
                result[spec] = None
                continue
            size = int(header[2])
            blob = out[pos:pos + size]
            pos += size + 1  # the blob is followed by a newline
            if size > MAX_BLOB_BYTES or b"\0" in blob[:8000]:
                result[spec] = None
                continue
            result[spec] = blob.decode("utf-8", errors="replace")
        return result
