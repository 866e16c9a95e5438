"""A fake of Stripe's hosted Checkout, which localstripe (the tests' Stripe) does not serve.

It stands in front of localstripe as the platform's `STRIPE_API_BASE`: the Checkout sessions API
(`/v1/checkout/sessions`) and the payment page a session's `url` leads to are its own, every other call passes
through to localstripe unchanged. Paying on its page does what Stripe does behind the page, with localstripe's real
objects: a payment intent for the session's customer, amount and `payment_intent_data[metadata]`, confirmed with
the card typed in (localstripe declines its declining test cards). Then the session is complete and paid, its
`checkout.session.completed` event is sent, signed with Stripe's scheme, to the webhook `deliver_to` named
(localstripe sends the payment intent's own `payment_intent.succeeded` there too), and the browser is sent to the
session's `success_url`. The page's "Cancel" goes to its `cancel_url`.

Stripe's behaviours kept: form-encoded nested parameters, the secret key checked, an `Idempotency-Key` answering
the same session (and refused for other parameters), sessions that expire (`POST .../expire`), errors in Stripe's
shape. A test reads `sessions` and `events_sent`.
"""

from __future__ import annotations

import html
import itertools
import secrets
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.fixtures.stripe import SECRET_KEY, LocalStripe, event, signed

SESSION_LIFETIME = 24 * 3600  # seconds, as Stripe's default
PASSED_HEADERS = ("authorization", "content-type", "idempotency-key", "stripe-version")


class FakeStripeCheckout:
    """Checkout sessions and their payment pages, over localstripe; `app` serves both and passes the rest on."""

    def __init__(self, localstripe: LocalStripe) -> None:
        self.localstripe = localstripe
        self.url = ""  # where it is served, set by the fixture
        self.sessions: dict[str, dict[str, Any]] = {}
        self.events_sent: list[dict[str, Any]] = []
        self._by_key: dict[str, tuple[str, str]] = {}  # idempotency key -> (parameters, session id)
        self._webhook: tuple[str, str] | None = None
        self._http = httpx.AsyncClient(base_url=localstripe.url, trust_env=False, timeout=30)
        self.app = Starlette(
            routes=[
                Route("/v1/checkout/sessions", self._create, methods=["POST"]),
                Route("/v1/checkout/sessions/{id}", self._retrieve, methods=["GET"]),
                Route("/v1/checkout/sessions/{id}/expire", self._expire, methods=["POST"]),
                Route("/pay/{id}", self._page, methods=["GET"]),
                Route("/pay/{id}", self._pay, methods=["POST"]),
                Route("/{path:path}", self._pass, methods=["GET", "POST", "DELETE"]),
            ]
        )

    async def close(self) -> None:
        await self._http.aclose()

    def deliver_to(self, webhook_url: str, secret: str, *, payment_intents: bool = True) -> None:
        """Send the sessions' events to `webhook_url` signed with `secret`; with `payment_intents`, localstripe
        sends its payment intents' events there too (as Stripe sends both)."""
        self._webhook = (webhook_url, secret)
        if payment_intents:
            self.localstripe.deliver_to(webhook_url, secret)

    # the API ---------------------------------------------------------------------------------------------------

    async def _create(self, request: Request) -> Response:
        if (refused := _unauthorized(request)) is not None:
            return refused
        raw = (await request.body()).decode()
        params = _nested(parse_qsl(raw, keep_blank_values=True))
        key = request.headers.get("idempotency-key")
        if key is not None and key in self._by_key:
            first, known = self._by_key[key]
            if first != raw:
                return _error(
                    400,
                    "idempotency_error",
                    "Keys for idempotent requests can only be used with the same parameters they were first used with.",
                )
            return JSONResponse(self.sessions[known])
        problem = _invalid(params)
        if problem is not None:
            return _error(400, "invalid_request_error", problem)
        customer = params.get("customer")
        if (
            customer is not None
            and (await self._http.get(f"/v1/customers/{customer}", headers=_auth(request))).status_code != 200
        ):
            return _error(400, "invalid_request_error", f"No such customer: '{customer}'")
        items = params["line_items"]
        amount = sum(int(item["price_data"]["unit_amount"]) * int(item["quantity"]) for item in items)
        session_id = "cs_test_" + secrets.token_hex(12)
        now = int(time.time())
        session: dict[str, Any] = {
            "id": session_id,
            "object": "checkout.session",
            "mode": "payment",
            "status": "open",
            "payment_status": "unpaid",
            "amount_total": amount,
            "currency": items[0]["price_data"]["currency"],
            "customer": customer,
            "client_reference_id": params.get("client_reference_id"),
            "metadata": params.get("metadata") or {},
            "payment_intent": None,
            "success_url": params["success_url"],
            "cancel_url": params["cancel_url"],
            "url": f"{self.url}/pay/{session_id}",
            "created": now,
            "expires_at": now + SESSION_LIFETIME,
            "livemode": False,
            "line_items": items,
            "_intent_metadata": (params.get("payment_intent_data") or {}).get("metadata") or {},
        }
        self.sessions[session_id] = session
        if key is not None:
            self._by_key[key] = (raw, session_id)
        return JSONResponse(_public(session))

    async def _retrieve(self, request: Request) -> Response:
        if (refused := _unauthorized(request)) is not None:
            return refused
        session = self.sessions.get(request.path_params["id"])
        if session is None:
            return _error(404, "invalid_request_error", f"No such checkout.session: '{request.path_params['id']}'")
        return JSONResponse(_public(session))

    async def _expire(self, request: Request) -> Response:
        if (refused := _unauthorized(request)) is not None:
            return refused
        session = self.sessions.get(request.path_params["id"])
        if session is None:
            return _error(404, "invalid_request_error", "No such checkout.session")
        if session["status"] != "open":
            return _error(
                400, "invalid_request_error", f"Only open sessions can be expired; this one is {session['status']}."
            )
        session.update(status="expired", url=None)
        await self._send("checkout.session.expired", session)
        return JSONResponse(_public(session))

    async def _pass(self, request: Request) -> Response:
        """Anything else is localstripe's."""
        headers = {name: value for name, value in request.headers.items() if name in PASSED_HEADERS}
        answer = await self._http.request(
            request.method,
            "/" + request.path_params["path"],
            params=request.query_params,
            content=await request.body(),
            headers=headers,
        )
        return Response(answer.content, status_code=answer.status_code, media_type=answer.headers.get("content-type"))

    # the payment page -----------------------------------------------------------------------------------------

    async def _page(self, request: Request) -> Response:
        session = self.sessions.get(request.path_params["id"])
        if session is None:
            return HTMLResponse(_document("Not found", "<p>This payment page does not exist.</p>"), status_code=404)
        return HTMLResponse(
            _payment_page(session, problem=None), status_code=200 if session["status"] == "open" else 410
        )

    async def _pay(self, request: Request) -> Response:
        session = self.sessions.get(request.path_params["id"])
        if session is None:
            return HTMLResponse(_document("Not found", "<p>This payment page does not exist.</p>"), status_code=404)
        if session["status"] != "open":
            return HTMLResponse(_payment_page(session, problem=None), status_code=410)
        card = (await request.form()).get("card")
        auth = {"Authorization": f"Bearer {SECRET_KEY}"}
        intent = (
            await self._http.post(
                "/v1/payment_intents",
                data={
                    "amount": session["amount_total"],
                    "currency": session["currency"],
                    **({"customer": session["customer"]} if session["customer"] else {}),
                    **{f"metadata[{k}]": v for k, v in session["_intent_metadata"].items()},
                },
                headers=auth,
            )
        ).json()
        method = await self._http.post(
            "/v1/payment_methods",
            data={
                "type": "card",
                "card[number]": str(card or ""),
                "card[exp_month]": "12",
                "card[exp_year]": "2030",
                "card[cvc]": "123",
            },
            headers=auth,
        )
        if method.status_code != 200:
            return HTMLResponse(_payment_page(session, problem=_message(method)), status_code=402)
        await self._http.post(
            f"/v1/payment_intents/{intent['id']}", data={"payment_method": method.json()["id"]}, headers=auth
        )
        confirmed = await self._http.post(f"/v1/payment_intents/{intent['id']}/confirm", headers=auth)
        if confirmed.status_code != 200 or confirmed.json().get("status") != "succeeded":
            return HTMLResponse(_payment_page(session, problem=_message(confirmed)), status_code=402)
        session.update(status="complete", payment_status="paid", payment_intent=intent["id"], url=None)
        await self._send("checkout.session.completed", session)
        return RedirectResponse(session["success_url"].replace("{CHECKOUT_SESSION_ID}", session["id"]), status_code=303)

    async def _send(self, kind: str, session: dict[str, Any]) -> None:
        sent = event(kind, _public(session))
        self.events_sent.append(sent)
        if self._webhook is None:
            return
        url, secret = self._webhook
        body, signature = signed(sent, secret)
        answer = await self._http.post(
            url, content=body, headers={"Stripe-Signature": signature, "Content-Type": "application/json"}
        )
        answer.raise_for_status()


def _unauthorized(request: Request) -> Response | None:
    if request.headers.get("authorization") != f"Bearer {SECRET_KEY}":
        return _error(401, "invalid_request_error", "Invalid API Key provided.")
    return None


def _auth(request: Request) -> dict[str, str]:
    return {"Authorization": request.headers["authorization"]}


def _error(status: int, kind: str, message: str) -> Response:
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status)


def _message(answer: httpx.Response) -> str:
    try:
        return str(answer.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"the payment was not accepted ({answer.status_code})"


def _public(session: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in session.items() if not name.startswith("_") and name != "line_items"}


def _invalid(params: dict[str, Any]) -> str | None:
    """What Stripe would refuse in a payment session's parameters (the ones the platform sends), or None."""
    if params.get("mode") != "payment":
        return "mode: only payment sessions are faked"
    for name in ("success_url", "cancel_url"):
        if not str(params.get(name, "")).startswith(("http://", "https://")):
            return f"{name}: Not a valid URL"
    items = params.get("line_items")
    if not isinstance(items, list) or not items:
        return "line_items: required"
    for item in items:
        price = item.get("price_data") if isinstance(item, dict) else None
        if not isinstance(price, dict) or not str(price.get("unit_amount", "")).isdigit():
            return "line_items[][price_data][unit_amount]: required"
        if not str(price.get("currency", "")).isalpha() or not (price.get("product_data") or {}).get("name"):
            return "line_items[][price_data]: currency and product_data[name] are required"
        if not str(item.get("quantity", "")).isdigit() or int(item["quantity"]) < 1:
            return "line_items[][quantity]: must be at least 1"
    return None


def _nested(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding (`a[b][0][c]=v`) as nested dicts, with lists for numeric keys."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = key.replace("]", "").split("[")
        node: Any = root
        for part, following in itertools.pairwise(parts):
            child_is_list = following.isdigit()
            if isinstance(node, list):
                index = int(part)
                while len(node) <= index:
                    node.append([] if child_is_list else {})
                node = node[index]
            else:
                node = node.setdefault(part, [] if child_is_list else {})
        last = parts[-1]
        if isinstance(node, list):
            node.append(value)
        else:
            node[last] = value
    return root


def _document(title: str, body: str) -> str:
    head = f'<meta charset=utf-8><link rel=icon href="data:,"><title>{html.escape(title)}</title>'
    return f"<!doctype html><html lang=en><head>{head}</head><body>{body}</body></html>"


def _payment_page(session: dict[str, Any], *, problem: str | None) -> str:
    """The fake's stand-in for Stripe's payment page: the amount, a card field, Pay, and Cancel."""
    amount = f"{session['amount_total'] / 100:.2f} {session['currency'].upper()}"
    if session["status"] != "open":
        return _document("Payment", f"<h1>This checkout is {html.escape(session['status'])}</h1>")
    name = html.escape(str(session["line_items"][0]["price_data"]["product_data"]["name"]))
    shown = f'<p role="alert">{html.escape(problem)}</p>' if problem else ""
    return _document(
        "Pay (fake Stripe Checkout)",
        f"<h1>Pay {amount}</h1><p>{name}</p>{shown}"
        f'<form method="post"><label>Card number <input name="card" value="4242424242424242"></label>'
        f'<button type="submit">Pay {amount}</button></form>'
        f'<p><a href="{html.escape(session["cancel_url"])}">Cancel</a></p>',
    )
