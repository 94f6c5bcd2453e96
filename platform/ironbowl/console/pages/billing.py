"""The billing section: the plan and subscription, usage and charges so far this month, the
monthly statements with a payslip per digital employee, the budget, and how the organization
pays (its billing e-mail, Stripe's billing portal, and where dunning stands).

The figures come from billing's own selectors and services, as its API calls them: rating (the
month so far, rated now, nothing written), statements, documents (the payslip grouping, and the
printable HTML, PDF and CSV the API serves, which the console's session opens), budgets (set
through the API's serializer), push (the billing e-mail and the portal session, as the API's
billing account endpoints set and open them). Money is shown exactly, with its currency.
"""

from __future__ import annotations

import uuid
import zoneinfo
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from ironbowl.analytics import usage
from ironbowl.analytics.models import UsageType
from ironbowl.billing import budgets, documents, plans, push, rating, statements, stripe_client
from ironbowl.billing.api.account import BillingEmailSerializer
from ironbowl.billing.api.budgets import BudgetInputSerializer
from ironbowl.billing.models import BillingAccount, Statement, StatementLine, Subscription
from ironbowl.console.base import OrganizationPage
from ironbowl.console.formats import exact, money, percent, price
from ironbowl.console.forms import Form, submit_once, validate
from tenants.errors import DomainError
from tenants.roles import Permission

# The budget form's check boxes: a box left unticked is not sent at all.
BUDGET_SWITCHES = ("hard_stop", "exempt_public_service")


def line_row(line: StatementLine, currency: str) -> dict[str, str]:
    """A statement line as a row of a table (labels in the active language)."""
    return {
        "label": documents.line_label(line),
        "description": line.description,
        "used": exact(line.used),
        "included": exact(line.included),
        "quantity": exact(line.quantity),
        "unit": documents.unit_label(line.unit),
        "unit_price": exact(line.unit_price),
        "amount": money(line.amount, currency),
    }


def totals_of(statement: Statement | rating.RatedStatement) -> list[tuple[str, str]]:
    currency = statement.currency
    return [
        (_("Subtotal"), money(statement.subtotal, currency)),
        (_("Discount"), money(-statement.discount, currency)),
        (_("Tax"), money(statement.tax, currency)),
        (_("Total"), money(statement.total, currency)),
    ]


def budget_context(state: budgets.BudgetState) -> dict[str, Any]:
    budget = state.budget
    used = None
    if budget is not None and budget.monthly_amount:
        used = min(state.spent / budget.monthly_amount, Decimal(1))
    return {
        "budget": budget,
        "amount": money(budget.monthly_amount, state.currency) if budget is not None else None,
        "spent": money(state.spent, state.currency),
        "budget_month": f"{state.month:%Y-%m}",
        # The bar's value (0 to 100) and what it says.
        "used_percent": None if used is None else f"{used * 100:.0f}",
        "used_text": None if used is None else percent(used, 0),
        "alerted_80": state.alerted(80),
        "alerted_100": state.alerted(100),
        "stopped": state.stopped,
    }


class BillingPage(OrganizationPage):
    section = "billing"
    permissions = {"get": Permission.BILLING_VIEW}


class Overview(BillingPage):
    """The plan the organization is on (and those before), what it used and what that costs so
    far this month, its budget, and how it pays: the billing e-mail (set here with
    billing.manage), Stripe's billing portal where Stripe collects, and dunning."""

    template_name = "console/billing/index.html"
    permissions = {"get": Permission.BILLING_VIEW, "post": Permission.BILLING_MANAGE}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.update(self.payment_context(context))
        now = timezone.now()
        subscriptions = plans.subscriptions_of(self.organization)
        current = plans.in_force(subscriptions, now)
        period = statements.current_period(self.organization, now)
        start, end = rating.month_bounds(period, zoneinfo.ZoneInfo(self.organization.time_zone))
        records = usage.records_between(self.organization, start, end)
        context.update(
            subscription=current,
            plan=current.plan,
            plan_money=self.plan_money(current),
            # Saved ones only: without any, the first is implied (unsaved) from the plan's code.
            history=[s for s in subscriptions if not s._state.adding],
            month=f"{period:%Y-%m}",
            used=[
                (UsageType(row["usage_type"]).label, exact(Decimal(row["quantity"] or 0)))
                for row in usage.totals(records, "usage_type")
            ],
        )
        try:
            rated = rating.rate(self.organization, period)
            # This rates the month a second time: billing's `state_of` takes no spend to reuse,
            # and building its BudgetState here would copy billing's rules into the console.
            state = budgets.state_of(self.organization, now)
        except DomainError as error:
            context["rating_error"] = str(error.detail)
            return context
        lines = [
            StatementLine(**{name: getattr(line, name) for name in statements.LINE_FIELDS})
            for line in rated.lines
        ]
        context.update(
            lines=[line_row(line, rated.currency) for line in lines],
            totals=totals_of(rated),
            **budget_context(state),
        )
        return context

    def payment_context(self, context: dict[str, Any]) -> dict[str, Any]:
        """The billing account as the API's GET shows it (unsaved until first used), and the
        e-mail form for billing.manage (what was typed, after a refusal or a sign-in)."""
        account = self.owned(BillingAccount).first() or BillingAccount(
            organization=self.organization
        )
        form = context.get("email_form")
        if form is None and self.may(Permission.BILLING_MANAGE):
            form = Form.of(context["draft"], email=account.email)
        return {
            "account": account,
            "stripe_enabled": stripe_client.configured(),
            "email_form": form,
        }

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return submit_once(request, self.save_email)

    def save_email(self) -> HttpResponse:
        """Set the billing e-mail through the API's serializer and billing's service (Stripe
        first, when there is a customer): refused, nothing is saved and the form says why."""
        form = Form.of(self.request.POST)
        payload = validate(BillingEmailSerializer, form, {"email": form.value("email")})
        status = 400
        if payload is not None:
            try:
                push.set_billing_email(self.actor, self.organization, payload["email"])
            except DomainError as error:
                form.fail(error)
                status = error.status_code
            else:
                messages.success(self.request, _("The billing e-mail is saved."))
                return redirect(self.url("console:billing"))
        return self.render_to_response(self.get_context_data(email_form=form), status=status)

    @staticmethod
    def plan_money(subscription: Subscription) -> dict[str, str]:
        plan = subscription.plan
        return {
            "platform_fee": money(plan.platform_fee, plan.currency),
            "price_stream_hour": price(plan.price_stream_hour, plan.currency),
            "price_thousand_interactions": price(plan.price_thousand_interactions, plan.currency),
            "price_gpu_hour": price(plan.price_gpu_hour, plan.currency),
            "price_rendered_minute": price(plan.price_rendered_minute, plan.currency),
            "tax": percent(plan.tax_rate, places=None),
            # Stored as a percentage (10 for 10%), not a share.
            "discount": percent(subscription.discount_percent / 100, places=None),
            "included_stream_hours": exact(plan.included_stream_hours),
            "included_interactions": exact(plan.included_interactions),
            "included_gpu_hours": exact(plan.included_gpu_hours),
            "included_rendered_minutes": exact(plan.included_rendered_minutes),
        }


class PaymentPortal(Overview):
    """POST: off to Stripe's billing portal (303), through the service the API's portal
    endpoint calls; it leads back to the billing page. Refused (Stripe down or not configured),
    the billing page says why. GET (a sign-in's way back here): the billing page."""

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return redirect(self.url("console:billing"))

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        back = request.build_absolute_uri(self.url("console:billing"))
        try:
            url = push.billing_portal_url(self.actor, self.organization, back)
        except DomainError as error:
            context = self.get_context_data(portal_error=str(error.detail))
            return self.render_to_response(context, status=error.status_code)
        return HttpResponseRedirect(url, status=303)


class Statements(BillingPage):
    """The organization's monthly statements, newest month first."""

    template_name = "console/billing/statements.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        found = statements.statements_of(self.organization).order_by("-period")
        context["statements"] = [
            {
                "statement": statement,
                "month": f"{statement.period:%Y-%m}",
                "total": money(statement.total, statement.currency),
                "paid": money(statement.amount_paid, statement.currency),
                "url": self.url("console:statement-detail", statement.pk),
            }
            for statement in found
        ]
        return context


class StatementPage(BillingPage):
    """A page of one of the organization's statements (another's id: 404, as a missing one)."""

    def statement_document(self) -> documents.StatementDocument:
        statement = self.get_owned(Statement, self.kwargs["statement"])
        return documents.document_of(statement, self.organization)

    def documents_of(self, statement: Statement) -> dict[str, str]:
        """The API's documents of the statement, in the console's language."""
        args = [self.organization.slug, statement.pk]
        language = translation.get_language() or self.organization.locale
        return {
            "html": f"{reverse('statement-html', args=args)}?language={language}",
            "pdf": f"{reverse('statement-pdf', args=args)}?language={language}",
            "csv": reverse("statement-csv", args=args),
        }


class StatementDetail(StatementPage):
    """One statement: its totals, a payslip per digital employee, the organization's own lines,
    and its printable documents."""

    template_name = "console/billing/statement.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        document = self.statement_document()
        statement = document.statement
        currency = statement.currency
        own_total = sum((line.amount for line in document.organization_lines), Decimal(0))
        context.update(
            statement=statement,
            month=f"{statement.period:%Y-%m}",
            totals=totals_of(statement),
            paid=money(statement.amount_paid, currency),
            refunded=money(statement.amount_refunded, currency),
            payslips=[
                {
                    "name": payslip.name,
                    "total": money(payslip.total, currency),
                    "lines": [line_row(line, currency) for line in payslip.lines],
                    "url": self.url("console:payslip-detail", statement.pk, payslip.employment_id),
                }
                for payslip in document.payslips
            ],
            organization_lines=[line_row(line, currency) for line in document.organization_lines],
            organization_total=money(own_total, currency),
            documents=self.documents_of(statement),
        )
        return context


class PayslipDetail(StatementPage):
    """One digital employee's payslip of a statement: its lines and their total."""

    template_name = "console/billing/payslip.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        document = self.statement_document()
        statement = document.statement
        wanted: uuid.UUID = self.kwargs["employment"]
        payslip = next((p for p in document.payslips if p.employment_id == wanted), None)
        if payslip is None:
            raise Http404(_("Not found."))
        currency = statement.currency
        context.update(
            statement=statement,
            month=f"{statement.period:%Y-%m}",
            name=payslip.name,
            lines=[line_row(line, currency) for line in payslip.lines],
            total=money(payslip.total, currency),
            statement_url=self.url("console:statement-detail", statement.pk),
            documents=self.documents_of(statement),
        )
        return context


class BudgetPage(BillingPage):
    """The monthly budget against the month's spend so far; changing it needs billing.manage."""

    template_name = "console/billing/budget.html"
    permissions = {"get": Permission.BILLING_VIEW, "post": Permission.BILLING_MANAGE}

    def initial(self, state: budgets.BudgetState) -> dict[str, Any]:
        budget = state.budget
        if budget is None:
            return {"monthly_amount": "", "hard_stop": False, "exempt_public_service": True}
        return {
            "monthly_amount": f"{budget.monthly_amount:f}",
            "hard_stop": budget.hard_stop,
            "exempt_public_service": budget.exempt_public_service,
        }

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        try:
            state = budgets.state_of(self.organization, timezone.now())
        except DomainError as error:
            context["rating_error"] = str(error.detail)
            context.setdefault("form", Form.of(context["draft"]))
            return context
        if "form" not in kwargs:
            initial = self.initial(state)
            if context["draft"] is not None:  # a box unticked in the draft stays unticked
                initial.update(dict.fromkeys(BUDGET_SWITCHES, False))
            context["form"] = Form.of(context["draft"], **initial)
        context.update(budget_context(state), currency=state.currency)
        return context

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return submit_once(request, self.save)

    def save(self) -> HttpResponse:
        posted = self.request.POST
        form = Form.of(posted)
        data: dict[str, Any] = {"monthly_amount": posted.get("monthly_amount", "")}
        for name in BUDGET_SWITCHES:
            data[name] = posted.get(name) in ("true", "on")
        payload = validate(BudgetInputSerializer, form, data)
        if payload is not None:
            try:
                budgets.set_budget(self.actor, self.organization, **payload)
            except DomainError as error:
                form.fail(error)
            else:
                messages.success(self.request, _("The budget is saved."))
                return redirect(self.url("console:billing-budget"))
        return self.render_to_response(self.get_context_data(form=form), status=400)


urlpatterns = [
    path("billing/", Overview.as_view(), name="billing"),
    path("billing/payment-portal/", PaymentPortal.as_view(), name="billing-portal"),
    path("billing/statements/", Statements.as_view(), name="billing-statements"),
    path(
        "billing/statements/<uuid:statement>/",
        StatementDetail.as_view(),
        name="statement-detail",
    ),
    path(
        "billing/statements/<uuid:statement>/payslips/<uuid:employment>/",
        PayslipDetail.as_view(),
        name="payslip-detail",
    ),
    path("billing/budget/", BudgetPage.as_view(), name="billing-budget"),
]
