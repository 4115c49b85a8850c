"""`python -m scripts.review --base origin/main [--output review.md]`: the PR infrastructure review.

Checks the base ref out with ``git worktree add`` into a temporary directory, synthesizes it and the working
tree with the working tree's virtualenv and CDK CLI (the base may predate packages added since), and writes the
Markdown report. Exit status 0 even when synth of a side fails: the report says so, and the PR's own checks fail.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from scripts.review.assembly import SynthResult, read_assembly
from scripts.review.report import render

ROOT = Path(__file__).resolve().parents[2]
# The last lines of a failed synth's output are what names the cause (ConfigError, nag findings).
ERROR_TAIL = 1500


def synthesize(tree: Path, outdir: Path, *, stage: str, python: Path, cdk: Path) -> SynthResult:
    """`cdk synth -q` of ``tree`` into ``outdir`` with this checkout's Python and CLI, then read the result."""
    command = [str(cdk), "synth", "--quiet", "--app", f"{python} app.py", "--output", str(outdir),
               "-c", f"stage={stage}"]
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    result = subprocess.run(command, cwd=tree, capture_output=True, text=True, check=False, env=env)
    error = None
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if "!!" not in line]
        error = "`cdk synth` exited {}: ```{}```".format(result.returncode, "\n".join(lines)[-ERROR_TAIL:])
    return read_assembly(outdir, error=error)


def review(*, repo: Path, base: str, stage: str, python: Path, cdk: Path, workdir: Path) -> str:
    worktree = workdir / "base"
    subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", "--quiet", str(worktree), base], check=True)
    try:
        base_result = synthesize(worktree, workdir / "base.out", stage=stage, python=python, cdk=cdk)
    finally:
        subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(worktree)], check=False)
    head_result = synthesize(repo, workdir / "head.out", stage=stage, python=python, cdk=cdk)
    return render(base_result, head_result, base_label=base, head_label="working tree")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--base", required=True, help="git ref to compare against, e.g. origin/main")
    parser.add_argument("--repo", type=Path, default=ROOT, help="repository whose working tree is the head")
    parser.add_argument("--stage", default="dev", help="configuration stage to synthesize (default dev)")
    parser.add_argument("--output", type=Path, default=Path("review.md"), help="Markdown report file")
    # Not resolved: a venv's python is a symlink, and resolving it would lose the venv's packages.
    parser.add_argument("--python", type=Path, default=ROOT / ".venv" / "bin" / "python")
    parser.add_argument("--cdk", type=Path, default=ROOT / "node_modules" / ".bin" / "cdk")
    args = parser.parse_args(argv)
    for tool, hint in ((args.python, "make venv"), (args.cdk, "make node")):
        if not tool.exists():
            parser.error(f"{tool} is missing: run `{hint}` first")
    workdir = Path(tempfile.mkdtemp(prefix="review-"))
    try:
        report = review(repo=args.repo.resolve(), base=args.base, stage=args.stage, python=args.python.absolute(),
                        cdk=args.cdk.resolve(), workdir=workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    args.output.write_text(report + "\n")
    print(f"wrote {args.output} ({len(report.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
