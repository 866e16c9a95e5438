"""What the root command's options leave for the subcommands, and the connection they call the API with."""

from __future__ import annotations

import os
from dataclasses import dataclass

import typer

from wopr_platform.client import config
from wopr_platform.client.api import Api


@dataclass(frozen=True, slots=True)
class Options:
    """The root command's options: the tenant to act for, over WOPR_TENANT and the stored one."""

    tenant: str | None = None


def connect(ctx: typer.Context) -> Api:
    """An API connection with the credentials in force (environment over the stored file)."""
    options = ctx.find_object(Options) or Options()
    credentials = config.current(config.config_path(), os.environ, options.tenant)
    return Api(credentials.url, credentials.key, credentials.tenant)
