"""Plans, subscriptions, monthly statements with their lines, budgets, notifications and the
small mirror of Stripe's state.

Money is Decimal throughout (never float). The ledger is analytics' `UsageRecord` (append-only):
billing appends seat-days to it and rates it; a statement's lines are what rating computed, and
a closed statement is never changed again.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tenants.money import Currency as Currency  # re-exported: billing names it from here
from tenants.scoping import TenantOwned

# Money: 14 digits, 2 after the point; unit prices: 6 after the point (fractions of a cent);
# quantities: 20 digits, 6 after the point (as the ledger's).


class Plan(models.Model):
    """What an organization pays, platform-wide. `code` is what Organization.plan names.

    Included usage is per month; past it, each usage type has its overage price per billing
    unit (stream hour, 1,000 interactions, GPU hour, rendered minute). Quotas are in
    tenants.plans (the capacity calendar enforces them) under the same code.
    """

    code = models.SlugField(_("code"), max_length=50, unique=True)
    name = models.CharField(_("name"), max_length=100)
    currency = models.CharField(
        _("currency"), max_length=3, choices=Currency.choices, default=Currency.CNY
    )
    platform_fee = models.DecimalField(
        _("platform fee per month"), default=Decimal(0), max_digits=14, decimal_places=2
    )
    included_stream_hours = models.DecimalField(default=Decimal(0), max_digits=20, decimal_places=6)
    included_interactions = models.DecimalField(default=Decimal(0), max_digits=20, decimal_places=6)
    included_gpu_hours = models.DecimalField(default=Decimal(0), max_digits=20, decimal_places=6)
    included_rendered_minutes = models.DecimalField(
        default=Decimal(0), max_digits=20, decimal_places=6
    )
    price_stream_hour = models.DecimalField(default=Decimal(0), max_digits=14, decimal_places=6)
    price_thousand_interactions = models.DecimalField(
        default=Decimal(0), max_digits=14, decimal_places=6
    )
    price_gpu_hour = models.DecimalField(default=Decimal(0), max_digits=14, decimal_places=6)
    price_rendered_minute = models.DecimalField(default=Decimal(0), max_digits=14, decimal_places=6)
    tax_rate = models.DecimalField(
        _("tax rate"),
        max_digits=5,
        decimal_places=4,
        default=Decimal("0.06"),
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(Decimal(1))],
    )
    is_public = models.BooleanField(default=True)

    class Meta:
        verbose_name = _("plan")
        verbose_name_plural = _("plans")
        ordering = ["platform_fee", "code"]

    def __str__(self) -> str:
        return self.name


class Subscription(TenantOwned):
    """An organization on a plan from `starts_at` until `ends_at` (open: current). A change of
    plan ends one subscription and starts the next at the same instant; rating prorates."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="+")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField(null=True, blank=True)
    # A negotiated discount on everything rated under this subscription, in percent.
    discount_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal(0),
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(Decimal(100))],
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["organization", "starts_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["organization"],
                condition=models.Q(ends_at__isnull=True),
                name="one_current_subscription",
            )
        ]

    def __str__(self) -> str:
        return f"{self.plan_id} from {self.starts_at:%Y-%m-%d}"


class StatementStatus(models.TextChoices):
    OPEN = "open", _("Open")
    CLOSED = "closed", _("Closed")


class Statement(TenantOwned):
    """One organization's month (its local month; `period` is the month's first day).

    Open: re-rated from the ledger whenever asked, the same ledger giving the same lines.
    Closed: its lines and totals are final; `ledger_watermark` is the last usage record id it
    included, so usage that arrives for its month later goes to the next statement, marked late.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    period = models.DateField(_("month"))
    status = models.CharField(max_length=8, choices=StatementStatus.choices, default="open")
    currency = models.CharField(max_length=3, choices=Currency.choices)
    subtotal = models.DecimalField(default=Decimal(0), max_digits=14, decimal_places=2)
    discount = models.DecimalField(default=Decimal(0), max_digits=14, decimal_places=2)
    tax = models.DecimalField(default=Decimal(0), max_digits=14, decimal_places=2)
    total = models.DecimalField(default=Decimal(0), max_digits=14, decimal_places=2)
    ledger_watermark = models.BigIntegerField(null=True, blank=True)
    rated_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    amount_paid = models.DecimalField(default=Decimal(0), max_digits=14, decimal_places=2)
    amount_refunded = models.DecimalField(default=Decimal(0), max_digits=14, decimal_places=2)

    class Meta:
        verbose_name = _("statement")
        verbose_name_plural = _("statements")
        ordering = ["-period"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "period"], name="one_statement_a_month")
        ]

    def __str__(self) -> str:
        return f"{self.period:%Y-%m}"


class LineKind(models.TextChoices):
    PLATFORM_FEE = "platform_fee", _("Platform fee")
    SEATS = "seats", _("Seats")
    STREAM_HOURS = "stream_hours", _("Stream hours")
    INTERACTIONS = "interactions", _("Interactions")
    GPU_HOURS = "gpu_hours", _("GPU hours")
    RENDERED_MINUTES = "rendered_minutes", _("Rendered minutes")
    DISCOUNT = "discount", _("Discount")


class StatementLine(TenantOwned):
    """One line of a statement. Lines with an employment form that digital employee's payslip;
    lines without one are the organization's own (platform fee). `late_period` marks usage of an
    earlier, already closed month."""

    id = models.BigAutoField(primary_key=True)
    statement = models.ForeignKey(Statement, on_delete=models.CASCADE, related_name="lines")
    employment_id = models.UUIDField(null=True, blank=True)
    # The subscription whose plan priced the line (its allowance, its discount, its tax rate).
    subscription = models.ForeignKey(
        Subscription, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    kind = models.CharField(max_length=20, choices=LineKind.choices)
    description = models.CharField(max_length=300)
    quantity = models.DecimalField(max_digits=20, decimal_places=6)  # in the line's unit
    unit = models.CharField(max_length=20)  # "seat-day", "hour", "1,000 interactions", …
    used = models.DecimalField(
        default=Decimal(0), max_digits=20, decimal_places=6
    )  # before the plan's allowance
    included = models.DecimalField(
        default=Decimal(0), max_digits=20, decimal_places=6
    )  # covered by the allowance
    unit_price = models.DecimalField(max_digits=14, decimal_places=6)
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    late_period = models.DateField(null=True, blank=True)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["statement", "position", "id"]
        indexes = [models.Index(fields=["statement", "employment_id"])]

    def __str__(self) -> str:
        return self.description


class Budget(TenantOwned):
    """A monthly spending limit: alerts at 80% and 100%; past it, optionally no new
    non-essential workloads (24/7 public service exempt when `exempt_public_service`)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    monthly_amount = models.DecimalField(
        _("monthly budget"),
        validators=[MinValueValidator(Decimal(0))],
        max_digits=14,
        decimal_places=2,
    )
    currency = models.CharField(max_length=3, choices=Currency.choices, default=Currency.CNY)
    hard_stop = models.BooleanField(_("stop new work past the budget"), default=False)
    exempt_public_service = models.BooleanField(_("24/7 public service goes on"), default=True)
    # The month (first day) each alert was last sent for: each is sent once a month.
    alerted_80_for = models.DateField(null=True, blank=True)
    alerted_100_for = models.DateField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization"], name="one_budget_per_org")]

    def __str__(self) -> str:
        return f"{self.monthly_amount} {self.currency}"


class NotificationKind(models.TextChoices):
    # xgettext:no-python-format
    BUDGET_80 = "budget_80", _("Budget 80% used")
    BUDGET_100 = "budget_100", _("Budget used up")
    PAYMENT_FAILED = "payment_failed", _("Payment failed")
    SUSPENDED_FOR_PAYMENT = "suspended", _("Digital employees suspended for non-payment")
    PAYMENT_RECEIVED = "payment_received", _("Payment received")


class Notification(TenantOwned):
    """Something the organization's people should see in the console (and got by e-mail)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=20, choices=NotificationKind.choices)
    message = models.TextField()
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization", "-created_at"])]

    def __str__(self) -> str:
        return self.kind


class DunningState(models.TextChoices):
    GOOD = "good", _("In good standing")
    PAST_DUE = "past_due", _("Payment overdue (grace period)")
    SUSPENDED = "suspended", _("Suspended for non-payment")


class BillingAccount(TenantOwned):
    """The organization's side of Stripe: its customer, and where dunning stands."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    stripe_customer_id = models.CharField(max_length=100, blank=True)
    email = models.EmailField(blank=True)
    dunning = models.CharField(max_length=10, choices=DunningState.choices, default="good")
    grace_until = models.DateTimeField(null=True, blank=True)
    # Employments billing suspended (and only those are resumed on payment).
    suspended_employments = models.JSONField(default=list, blank=True)
    # A subscription someone made in Stripe for this customer (Ironbowl itself bills by
    # invoices): mirrored from Stripe's events, the newest event winning; never acted on.
    stripe_subscription_id = models.CharField(max_length=100, blank=True)
    stripe_subscription_status = models.CharField(max_length=30, blank=True)
    subscription_event_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization"], name="one_billing_account_per_org"),
            models.UniqueConstraint(
                fields=["stripe_customer_id"],
                condition=~models.Q(stripe_customer_id=""),
                name="stripe_customer_once",
            ),
        ]

    def __str__(self) -> str:
        return self.stripe_customer_id or "-"


class StripeInvoiceStatus(models.TextChoices):
    # Ours, before Stripe has the invoice: the push is waiting (or being retried).
    PENDING = "pending", _("Waiting to be sent to Stripe")
    # Stripe's own invoice statuses.
    DRAFT = "draft", _("Draft")
    OPEN = "open", _("Open")
    PAID = "paid", _("Paid")
    UNCOLLECTIBLE = "uncollectible", _("Uncollectible")
    VOID = "void", _("Void")


class StripeInvoice(TenantOwned):
    """Mirror of the Stripe invoice of one closed statement.

    Made `pending` when the statement closes (with Stripe configured); the push fills in the
    Stripe id and `pushed_items` as it goes, so a retry after a failure (even one past Stripe's
    24 hours of idempotency keys) sends only what Stripe does not have yet.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    statement = models.OneToOneField(Statement, on_delete=models.PROTECT, related_name="invoice")
    stripe_invoice_id = models.CharField(max_length=100, blank=True)
    status = models.CharField(
        max_length=20, choices=StripeInvoiceStatus.choices, default=StripeInvoiceStatus.PENDING
    )
    currency = models.CharField(max_length=3, choices=Currency.choices)
    amount_due = models.DecimalField(max_digits=14, decimal_places=2)
    amount_paid = models.DecimalField(default=Decimal(0), max_digits=14, decimal_places=2)
    # The idempotency keys of the invoice items Stripe has confirmed.
    pushed_items = models.JSONField(default=list, blank=True)
    push_attempts = models.PositiveIntegerField(default=0)
    # The next push may start then (a lease while one runs, a back-off after a failure).
    next_push_at = models.DateTimeField(null=True, blank=True)
    push_error = models.CharField(max_length=300, blank=True)
    # When Stripe last said a payment attempt failed (cleared when paid).
    payment_failed_at = models.DateTimeField(null=True, blank=True)
    # The `created` time of the last Stripe event applied: an older one arriving late is ignored.
    last_event_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["stripe_invoice_id"],
                condition=~models.Q(stripe_invoice_id=""),
                name="stripe_invoice_once",
            )
        ]
        indexes = [models.Index(fields=["status", "next_push_at"])]

    def __str__(self) -> str:
        return self.stripe_invoice_id or f"pending {self.statement_id}"


class StripeEvent(models.Model):
    """Every webhook event applied or ignored, once (a redelivery finds its id here and changes
    nothing). Refused events are not kept: nothing of theirs was accepted."""

    event_id = models.CharField(max_length=100, unique=True)
    type = models.CharField(max_length=100)
    created = models.DateTimeField()
    object_id = models.CharField(max_length=100, blank=True)
    organization = models.ForeignKey(
        "tenants.Organization", null=True, on_delete=models.PROTECT, related_name="+"
    )
    outcome = models.CharField(max_length=200, blank=True)
    received_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.event_id


class RefundStatus(models.TextChoices):
    PENDING = "pending", _("Being sent to Stripe")
    SUCCEEDED = "succeeded", _("Refunded")
    FAILED = "failed", _("Refused by Stripe")


class Refund(TenantOwned):
    """Money given back on a paid statement; never more than was paid, less earlier refunds.

    A pending or succeeded refund counts in the statement's `amount_refunded`; a failed one gives
    its amount back. Stripe sees it under the idempotency key `refund-{id}`, so a retry after a
    lost answer refunds once."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    statement = models.ForeignKey(Statement, on_delete=models.PROTECT, related_name="refunds")
    amount = models.DecimalField(
        validators=[MinValueValidator(Decimal("0.01"))], max_digits=14, decimal_places=2
    )
    reason = models.CharField(max_length=300)
    status = models.CharField(
        max_length=10, choices=RefundStatus.choices, default=RefundStatus.PENDING
    )
    stripe_refund_id = models.CharField(max_length=100, blank=True)
    failure = models.CharField(max_length=300, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    actor_label = models.CharField(max_length=254)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["status", "created_at"])]

    def __str__(self) -> str:
        return f"{self.amount} on {self.statement_id}"
