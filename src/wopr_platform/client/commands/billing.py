"""`wopr billing ...`: the tenant's credits and what moved them."""

from __future__ import annotations

import secrets
from typing import Annotated

import typer

from wopr_platform.client import models, views
from wopr_platform.client.output import Format, OutputOption, emit
from wopr_platform.client.state import connect

app = typer.Typer(help="Billing: the tenant's credits and their movements (amounts in the API are micro-units).")


@app.command("balance")
def balance(ctx: typer.Context, output: OutputOption = Format.TABLE) -> None:
    """Show the tenant's credits and the least a bot needs to be created or started."""
    with connect(ctx) as api:
        reply = api.get("/billing/balance")
    emit(reply, output, lambda: views.balance(reply.parsed(models.Balance)))


@app.command("buy")
def buy(
    ctx: typer.Context,
    amount: Annotated[int, typer.Argument(help="How much to buy, in whole units of the currency.", min=1)],
    key: Annotated[
        str | None,
        typer.Option(help="Idempotency key: the same key answers the same payment page (default: a new one)."),
    ] = None,
    output: OutputOption = Format.TABLE,
) -> None:
    """Buy credits: prints the address of Stripe's payment page; the credits arrive once it is paid."""
    headers = {"Idempotency-Key": key or f"cli-{secrets.token_urlsafe(18)}"}
    with connect(ctx) as api:
        reply = api.request("POST", "/billing/checkout/sessions", json={"amountCents": amount * 100}, headers=headers)
    emit(reply, output, lambda: views.checkout(reply.parsed(models.HostedCheckout)))


@app.command("transactions")
def transactions(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(help="How many, newest first.", min=1, max=200)] = 50,
    after: Annotated[str | None, typer.Option(help="Page on: the cursor an earlier page ended with.")] = None,
    output: OutputOption = Format.TABLE,
) -> None:
    """List the tenant's purchases, charges, grants and corrections, newest first."""
    params = {"limit": str(limit)} | ({"after": after} if after else {})
    with connect(ctx) as api:
        reply = api.get("/billing/transactions", params=params)
    emit(reply, output, lambda: views.transactions(reply.parsed(models.TransactionPage)))
