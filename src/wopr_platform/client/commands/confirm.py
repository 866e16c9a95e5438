"""The one way `wopr ... rm` asks before removing something: a prompt on a terminal, `--yes` anywhere else."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def confirmed(question: str, yes: bool) -> None:
    """Go on when `yes` or the person at the terminal agrees; stop with a usage error when nobody can be asked."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise typer.BadParameter("pass --yes to do this without being asked", param_hint="--yes")
    typer.confirm(question, abort=True)
