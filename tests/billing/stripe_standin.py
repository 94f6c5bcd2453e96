"""A local stand-in for Stripe's HTTP API, and Stripe's side of webhooks, for the billing tests.

What is real: an HTTP server on 127.0.0.1 in a thread, spoken to by the real `stripe` SDK over
real sockets (tests point `stripe.api_base` at it); webhook bodies signed the way Stripe signs
them (HMAC-SHA256 of "{t}.{body}" with the endpoint's secret) and verified by the SDK.

What is simulated: Stripe's servers. The stand-in keeps customers (with their credit balance
and its transactions), invoices, invoice items, invoice payments, refunds and billing portal
sessions in memory and answers with plausible JSON objects. It checks what matters to us the way
Stripe does, and stricter:
- every POST must carry an Idempotency-Key, and one derived from our ids (`org-…`, `stmt-…`,
  `refund-…`): the SDK would invent a random key for a call that forgot to pass one, so a random
  key fails too (HTTP 400, and it is listed in `violations`);
- finalizing an invoice applies the customer's credit balance first, as Stripe does: an invoice
  the credit covers entirely comes back `paid` at once, with `amount_paid` 0;
- a key seen before with the same parameters replays the first answer and creates nothing; with
  other parameters it is refused (`idempotency_error`), like Stripe;
- items only go on a draft invoice of the same customer and currency; a refund never exceeds
  what was paid less earlier refunds.
Faults are injected on request: `down` (every call answers 503), `go_down_after(n)`,
`lose_answers(n)` (the next n POSTs are carried out, then answered 500, as when an answer is lost
on the way back) and `forget_idempotency_keys()` (Stripe keeps keys for 24 hours).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import itertools
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import stripe

SECRET_KEY = "sk_test_ironbowl_standin"
WEBHOOK_SECRET = "whsec_ironbowl_standin"
OUR_KEYS = re.compile(
    r"^(org-[0-9a-f-]{36}-(customer|customer-email-\d+|portal-\d{12}-[0-9a-f]{12})"
    r"|stmt-[0-9a-f-]{36}-.+|refund-[0-9a-f-]{36})$"
)


@dataclasses.dataclass
class Call:
    method: str
    path: str
    params: dict[str, Any]
    idempotency_key: str | None
    replayed: bool = False


def _nest(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding (`metadata[statement_id]=…`) back into nested dicts."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        parts = re.findall(r"[^\[\]]+", key)
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


class _Fault(Exception):
    def __init__(self, status: int, kind: str, message: str, code: str = "") -> None:
        super().__init__(message)
        self.status, self.kind, self.code = status, kind, code


class StripeStandin:
    def __init__(self, secret_key: str = SECRET_KEY) -> None:
        self.secret_key = secret_key
        self.calls: list[Call] = []
        self.violations: list[str] = []
        self.customers: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.invoice_items: dict[str, dict[str, Any]] = {}
        self.invoice_payments: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.balance_transactions: dict[str, dict[str, Any]] = {}
        self.portal_sessions: dict[str, dict[str, Any]] = {}
        self.down = False
        self._lose = 0
        self._posts_left: int | None = None
        self._answers: dict[str, tuple[dict[str, Any], int, dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # --- life ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> StripeStandin:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def lose_answers(self, count: int) -> None:
        self._lose = count

    def go_down_after(self, posts: int) -> None:
        """Answer the next `posts` POSTs, then be down."""
        self._posts_left = posts

    def up(self) -> None:
        self.down = False
        self._posts_left = None

    def forget_idempotency_keys(self) -> None:
        """What Stripe does 24 hours after a key was first used."""
        self._answers.clear()

    def posts(self, path_prefix: str = "/v1/") -> list[Call]:
        return [c for c in self.calls if c.method == "POST" and c.path.startswith(path_prefix)]

    # --- Stripe's side of things the tests make happen ------------------------------------------

    def pay(self, invoice_id: str) -> dict[str, Any]:
        """Stripe collected the open invoice: paid, with a payment intent to refund against."""
        with self._lock:
            invoice = self.invoices[invoice_id]
            assert invoice["status"] == "open", invoice["status"]
            intent = self._id("pi")
            invoice.update(status="paid", amount_paid=invoice["amount_due"], amount_remaining=0)
            payment = {
                "id": self._id("inpay"),
                "object": "invoice_payment",
                "invoice": invoice_id,
                "amount_paid": invoice["amount_due"],
                "currency": invoice["currency"],
                "status": "paid",
                "is_default": True,
                "livemode": False,
                "created": int(time.time()),
                "payment": {"type": "payment_intent", "payment_intent": intent},
            }
            self.invoice_payments[payment["id"]] = payment
            return dict(invoice)

    def fail_payment(self, invoice_id: str) -> dict[str, Any]:
        """Stripe tried to collect the open invoice and the card was declined."""
        with self._lock:
            invoice = self.invoices[invoice_id]
            invoice["attempt_count"] = invoice.get("attempt_count", 0) + 1
            return dict(invoice)

    # --- HTTP ---------------------------------------------------------------------------------

    def _id(self, prefix: str) -> str:
        return f"{prefix}_standin{next(self._ids):06d}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                self._answer("GET")

            def do_POST(self) -> None:
                self._answer("POST")

            def _answer(self, method: str) -> None:
                split = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                params = _nest(parse_qsl(body if method == "POST" else split.query))
                key = self.headers.get("Idempotency-Key")
                status, payload = standin._dispatch(
                    method, split.path, params, key, self.headers.get("Authorization", "")
                )
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Request-Id", f"req_{next(standin._ids)}")
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def _dispatch(
        self, method: str, path: str, params: dict[str, Any], key: str | None, auth: str
    ) -> tuple[int, dict[str, Any]]:
        with self._lock:
            call = Call(method, path, params, key)
            self.calls.append(call)
            try:
                if method == "POST" and self._posts_left is not None:
                    self.down = self._posts_left == 0
                    self._posts_left = max(self._posts_left - 1, 0)
                if self.down:
                    raise _Fault(503, "api_error", "The stand-in is down.")
                if auth != f"Bearer {self.secret_key}":
                    raise _Fault(401, "invalid_request_error", "Invalid API key provided.")
                answer = self._post(call) if method == "POST" else (200, self._get(path, params))
            except _Fault as fault:
                error = {"type": fault.kind, "message": str(fault)}
                if fault.code:
                    error["code"] = fault.code
                return fault.status, {"error": error}
            if method == "POST" and self._lose:
                self._lose -= 1
                return 500, {"error": {"type": "api_error", "message": "Answer lost."}}
            return answer

    def _post(self, call: Call) -> tuple[int, dict[str, Any]]:
        key = call.idempotency_key
        if not key:
            self.violations.append(f"POST {call.path} without an Idempotency-Key")
            raise _Fault(400, "invalid_request_error", "Idempotency-Key required.")
        if not OUR_KEYS.match(key):
            self.violations.append(f"POST {call.path} with a key not derived from our ids: {key}")
            raise _Fault(400, "invalid_request_error", "Idempotency-Key not derived from ids.")
        seen = self._answers.get(key)
        if seen is not None:
            params, status, payload = seen
            if params != {"path": call.path, **call.params}:
                raise _Fault(
                    400,
                    "idempotency_error",
                    "Keys for idempotent requests can only be used with the same parameters.",
                )
            call.replayed = True
            return status, payload
        status, payload = 200, self._create(call.path, call.params)
        self._answers[key] = ({"path": call.path, **call.params}, status, payload)
        return status, payload

    def _create(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        now = int(time.time())
        if path == "/v1/customers":
            customer = {
                "id": self._id("cus"),
                "object": "customer",
                "created": now,
                "livemode": False,
                "name": params.get("name"),
                "email": params.get("email"),
                "balance": 0,
                "currency": None,
                "metadata": params.get("metadata", {}),
            }
            self.customers[customer["id"]] = customer
            return dict(customer)
        match = re.fullmatch(r"/v1/customers/([^/]+)(/balance_transactions)?", path)
        if match:
            customer = self.customers.get(match.group(1))
            if customer is None:
                raise _Fault(404, "invalid_request_error", "No such customer.", "resource_missing")
            if match.group(2):
                return self._balance_transaction(customer, params, now)
            customer.update({k: v for k, v in params.items() if k in ("email", "name")})
            return dict(customer)
        if path == "/v1/billing_portal/sessions":
            return self._portal_session(params, now)
        if path == "/v1/invoices":
            customer_id = params.get("customer", "")
            if customer_id not in self.customers:
                raise _Fault(400, "invalid_request_error", f"No such customer: '{customer_id}'")
            invoice = {
                "id": self._id("in"),
                "object": "invoice",
                "created": now,
                "livemode": False,
                "customer": customer_id,
                "currency": params["currency"],
                "collection_method": params.get("collection_method"),
                "auto_advance": params.get("auto_advance") == "true",
                "status": "draft",
                "amount_due": 0,
                "amount_paid": 0,
                "amount_remaining": 0,
                "total": 0,
                "starting_balance": 0,
                "ending_balance": None,
                "attempt_count": 0,
                "description": params.get("description"),
                "metadata": params.get("metadata", {}),
                "lines": {"object": "list", "data": [], "has_more": False},
            }
            self.invoices[invoice["id"]] = invoice
            return dict(invoice)
        if path == "/v1/invoiceitems":
            invoice = self.invoices.get(params.get("invoice", ""))
            if invoice is None or invoice["status"] != "draft":
                raise _Fault(400, "invalid_request_error", "Items go on a draft invoice.")
            if params.get("customer") != invoice["customer"]:
                raise _Fault(400, "invalid_request_error", "Not the invoice's customer.")
            if params.get("currency") != invoice["currency"]:
                raise _Fault(400, "invalid_request_error", "Not the invoice's currency.")
            item = {
                "id": self._id("ii"),
                "object": "invoiceitem",
                "date": now,
                "livemode": False,
                "customer": params["customer"],
                "invoice": invoice["id"],
                "amount": int(params["amount"]),
                "currency": params["currency"],
                "description": params.get("description"),
                "metadata": params.get("metadata", {}),
            }
            self.invoice_items[item["id"]] = item
            invoice["lines"]["data"].append(item["id"])
            invoice["amount_due"] += item["amount"]
            invoice["total"] += item["amount"]
            invoice["amount_remaining"] = invoice["amount_due"]
            return dict(item)
        match = re.fullmatch(r"/v1/invoices/([^/]+)/finalize", path)
        if match:
            invoice = self.invoices.get(match.group(1))
            if invoice is None:
                raise _Fault(404, "invalid_request_error", "No such invoice.", "resource_missing")
            if invoice["status"] != "draft":
                raise _Fault(400, "invalid_request_error", "This invoice is already finalized.")
            self._apply_balance(invoice)
            status = "paid" if invoice["amount_due"] == 0 else "open"
            invoice.update(status=status, auto_advance=params.get("auto_advance") == "true")
            return {**invoice, "lines": {**invoice["lines"], "data": []}}
        if path == "/v1/refunds":
            return self._refund(params, now)
        raise _Fault(404, "invalid_request_error", f"Unrecognized request URL (POST: {path})")

    def _apply_balance(self, invoice: dict[str, Any]) -> None:
        """Finalizing: the customer's credit (a negative balance) in the invoice's currency
        pays what it can of the invoice."""
        customer = self.customers[invoice["customer"]]
        balance = customer["balance"] if customer["currency"] == invoice["currency"] else 0
        applied = min(-balance, invoice["amount_due"]) if balance < 0 else 0
        customer["balance"] += applied
        invoice.update(
            starting_balance=balance,
            ending_balance=balance + applied,
            amount_due=invoice["amount_due"] - applied,
            amount_remaining=invoice["amount_due"] - applied,
        )

    def _balance_transaction(
        self, customer: dict[str, Any], params: dict[str, Any], now: int
    ) -> dict[str, Any]:
        currency = params["currency"]
        if customer["currency"] not in (None, currency):
            raise _Fault(400, "invalid_request_error", "Not the customer's balance currency.")
        amount = int(params["amount"])
        customer.update(currency=currency, balance=customer["balance"] + amount)
        transaction = {
            "id": self._id("cbtxn"),
            "object": "customer_balance_transaction",
            "created": now,
            "livemode": False,
            "customer": customer["id"],
            "amount": amount,
            "currency": currency,
            "ending_balance": customer["balance"],
            "type": "adjustment",
            "description": params.get("description"),
            "metadata": params.get("metadata", {}),
        }
        self.balance_transactions[transaction["id"]] = transaction
        return dict(transaction)

    def _portal_session(self, params: dict[str, Any], now: int) -> dict[str, Any]:
        customer = params.get("customer", "")
        if customer not in self.customers:
            raise _Fault(400, "invalid_request_error", f"No such customer: '{customer}'")
        if not params.get("return_url"):
            raise _Fault(400, "invalid_request_error", "Missing required param: return_url.")
        session_id = self._id("bps")
        session = {
            "id": session_id,
            "object": "billing_portal.session",
            "created": now,
            "livemode": False,
            "customer": customer,
            "return_url": params["return_url"],
            "url": f"https://billing.stripe.com/p/session/test_{session_id}",
        }
        self.portal_sessions[session_id] = session
        return dict(session)

    def _refund(self, params: dict[str, Any], now: int) -> dict[str, Any]:
        intent = params.get("payment_intent")
        paid = [
            p for p in self.invoice_payments.values() if p["payment"]["payment_intent"] == intent
        ]
        if not paid:
            raise _Fault(400, "invalid_request_error", f"No such payment_intent: '{intent}'")
        amount = int(params["amount"])
        refunded = sum(r["amount"] for r in self.refunds.values() if r["payment_intent"] == intent)
        if amount + refunded > paid[0]["amount_paid"]:
            raise _Fault(
                400,
                "invalid_request_error",
                "Refund amount is greater than unrefunded amount on charge.",
                "amount_too_large",
            )
        refund = {
            "id": self._id("re"),
            "object": "refund",
            "created": now,
            "amount": amount,
            "currency": paid[0]["currency"],
            "payment_intent": intent,
            "reason": params.get("reason"),
            "status": "succeeded",
            "metadata": params.get("metadata", {}),
        }
        self.refunds[refund["id"]] = refund
        return dict(refund)

    def _get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        if path == "/v1/invoice_payments":
            rows = [
                p
                for p in self.invoice_payments.values()
                if p["invoice"] == params.get("invoice")
                and params.get("status") in (None, p["status"])
            ]
            return {"object": "list", "data": rows, "has_more": False, "url": path}
        if path == "/v1/refunds":
            rows = [
                r
                for r in self.refunds.values()
                if r["payment_intent"] == params.get("payment_intent")
            ]
            return {"object": "list", "data": rows, "has_more": False, "url": path}
        match = re.fullmatch(r"/v1/invoices/([^/]+)", path)
        if match and match.group(1) in self.invoices:
            return dict(self.invoices[match.group(1)])
        raise _Fault(404, "invalid_request_error", f"Unrecognized request URL (GET: {path})")


@contextmanager
def running(secret_key: str = SECRET_KEY) -> Iterator[StripeStandin]:
    """The stand-in, with the SDK pointed at it for the duration."""
    standin = StripeStandin(secret_key).start()
    previous = stripe.api_base
    stripe.api_base = standin.url
    try:
        yield standin
    finally:
        stripe.api_base = previous
        standin.stop()


# --- Stripe's side of webhooks --------------------------------------------------------------------

_events = itertools.count(1)


def event(
    kind: str,
    obj: dict[str, Any],
    *,
    created: int | None = None,
    event_id: str | None = None,
    livemode: bool = False,
) -> bytes:
    """The body of a Stripe webhook delivery about `obj` (a snapshot event)."""
    return json.dumps(
        {
            "id": event_id or f"evt_standin{next(_events):06d}",
            "object": "event",
            "api_version": stripe.api_version,
            "created": created if created is not None else int(time.time()),
            "livemode": livemode,
            "pending_webhooks": 1,
            "type": kind,
            "data": {"object": obj},
        }
    ).encode()


def signature(body: bytes, secret: str = WEBHOOK_SECRET, *, at: int | None = None) -> str:
    """The Stripe-Signature header Stripe sends: t=<unix time>,v1=HMAC-SHA256(secret, "t.body")."""
    timestamp = at if at is not None else int(time.time())
    signed = f"{timestamp}.{body.decode()}".encode()
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"
