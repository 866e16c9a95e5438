"""Billing (the balance, the plan, spending limits, usage, transactions, buying credits) and the AI gateway's usage.

Amounts are the ledger's integers (micro-units of the currency: 1 USD = 1,000,000) as the API gives them; a person
types whole units to buy and decimal units for a cap or a grant, turned into the API's integers here.

A form that moves money carries an idempotency key made when the page was rendered: sending the same form twice
(a double click, a reload of the answer) repeats the first post's effect, never a second movement. The API takes
the key in its `Idempotency-Key` header.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from typing import Any

from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from wopr_platform.web.console import PREFIX, View, action, page
from wopr_platform.web.upstream import Answer, Refused

BILLING = f"{PREFIX}/billing"
MICROS = 1_000_000  # ledger units per unit of the currency
CENTS = 100
TRANSACTIONS_PAGE = 50
USAGE_DAYS = 30
MAX_USAGE_DAYS = 366
MANAGERS = frozenset({"owner", "admin"})
GATEWAY_FILTERS = ("since", "until", "botId")
# what a buyer coming back from Stripe's payment page is told (the API's success and cancel addresses)
CHECKOUT_OUTCOMES = {
    "paid": "Payment made. The credits appear here as soon as Stripe confirms it, usually within seconds.",
    "canceled": "The payment was canceled: nothing was charged.",
}


def fresh_key() -> str:
    """An idempotency key for one rendering of a form that moves money (the API's 8-100 of A-Z a-z 0-9 _ . : -)."""
    return "console-" + secrets.token_urlsafe(24)


def whole_units(raw: str) -> int | None:
    """A positive whole number of currency units, or None."""
    return int(raw) if raw.isascii() and raw.isdigit() and int(raw) > 0 else None


def micros(raw: str) -> int | None:
    """A positive amount of currency units with at most 6 decimals, in ledger units; None when it is not one."""
    try:
        amount = Decimal(raw)
    except InvalidOperation:
        return None
    if not amount.is_finite() or amount <= 0:
        return None
    scaled = amount * MICROS
    return int(scaled) if scaled == scaled.to_integral_value() else None


def units(amount: int | None) -> str:
    """Ledger units as currency units, exactly (a form's value)."""
    return "" if amount is None else format(Decimal(amount) / MICROS, "f")


async def post_keyed(view: View, path: str, body: dict[str, Any], *, tenant: str | None = None) -> Answer:
    """POST a call that moves money with the form's idempotency key and CSRF token (for `tenant`, else the one
    acted for); `Refused` when the API says no. A missing or malformed key is the API's to refuse."""
    key = view.field("key")
    if not key.isascii():
        raise Refused(400, "the form's idempotency key is malformed", {"field": "key"})
    credentials = replace(view.credentials, csrf=view.field("csrf") or None, tenant=tenant or view.credentials.tenant)
    headers = {"Idempotency-Key": key} if key else None
    return (await view.console.upstream.call(credentials, "POST", path, body=body, headers=headers)).checked()


async def _manages(view: View) -> bool:
    """Whether the person may change the tenant's billing (its owner or an admin, or a platform admin)."""
    me = await view.me()
    tenant = view.current_tenant(me)
    return me.platform_admin or (tenant is not None and me.tenants.get(tenant) in MANAGERS)


def _days(raw: str | None) -> int:
    if raw is not None and raw.isascii() and raw.isdigit():
        return max(1, min(MAX_USAGE_DAYS, int(raw)))
    return USAGE_DAYS


# --- billing -----------------------------------------------------------------------------------------------------


@page
async def billing(view: View) -> Response:
    params = view.request.query_params
    days = _days(params.get("days"))
    after = params.get("after") or None
    balance, plan, plans, limits, usage, transactions = await asyncio.gather(
        view.get("/billing/balance"),
        view.get("/billing/plan"),
        view.get("/billing/plans"),
        view.get("/billing/limits"),
        view.get("/billing/usage", days=days),
        view.get("/billing/transactions", after=after, limit=TRANSACTIONS_PAGE),
    )
    return await view.page(
        "money_billing.html",
        balance=balance,
        plan=plan["plan"],
        plans=plans,
        limits=limits,
        daily_cap=units(limits["dailyCap"]),
        monthly_cap=units(limits["monthlyCap"]),
        usage=usage,
        days=days,
        transactions=transactions["transactions"],
        older=transactions["next"],
        paged=after is not None,
        manages=await _manages(view),
        key=fresh_key(),
        returned=CHECKOUT_OUTCOMES.get(params.get("checkout", "")),
    )


@action(back=BILLING)
async def checkout(view: View) -> Response:
    """Start buying credits: the API opens a Stripe-hosted payment page for the amount and the browser is sent
    there; Stripe brings the buyer back to the billing page, and the credits arrive when Stripe reports the payment.
    The same form sent again leads to the same payment page, never a second payment."""
    amount = whole_units(view.field("amount"))
    if amount is None:
        return view.redirect(BILLING, message="enter the amount to buy as a whole number", error=True)
    hosted = (await post_keyed(view, "/billing/checkout/sessions", {"amountCents": amount * CENTS})).json()
    url = hosted.get("url")
    if hosted.get("status") != "open" or not isinstance(url, str):
        message = f"this form's payment is {hosted.get('status')}: buy again from a fresh form"
        return view.redirect(BILLING, message=message, error=hosted.get("status") != "complete")
    if not url.startswith(view.console.checkout_origin + "/"):
        raise Refused(502, "the payment page is not Stripe's", {"url": url[:200]})
    return RedirectResponse(url, status_code=303)


@action(back=BILLING)
async def set_limits(view: View) -> Response:
    caps: dict[str, int | None] = {}
    for name in ("dailyCap", "monthlyCap"):
        raw = view.field(name)
        caps[name] = micros(raw) if raw else None
        if raw and caps[name] is None:
            return view.redirect(
                BILLING, message=f"{name}: a positive amount with at most 6 decimals, or empty for none", error=True
            )
    await view.send("PUT", "/billing/limits", caps)
    return view.redirect(BILLING, message="Spending limits saved.")


# --- the AI gateway ----------------------------------------------------------------------------------------------


@page
async def gateway(view: View) -> Response:
    params = view.request.query_params
    chosen = {name: params.get(name, "").strip() for name in GATEWAY_FILTERS}
    try:
        usage, models = await asyncio.gather(view.get("/gateway/usage", **chosen), view.get("/gateway/models"))
    except Refused as err:
        if err.code != "gateway_off":
            raise
        return await view.page("money_gateway.html", off=True)
    try:
        keys = (await view.get("/gateway/keys"))["keys"]
    except Refused as err:
        if err.status != 403:
            raise
        keys = None  # the tenant's admins only
    return await view.page(
        "money_gateway.html",
        usage=usage,
        models=models["models"],
        keys=keys,
        chosen=chosen,
        filtered=any(chosen.values()),
        off=False,
    )


routes = [
    Route("/billing", billing, methods=["GET"]),
    Route("/billing/checkout", checkout, methods=["POST"]),
    Route("/billing/limits", set_limits, methods=["POST"]),
    Route("/gateway", gateway, methods=["GET"]),
]
