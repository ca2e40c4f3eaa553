"""Connected software: a pharmacy admin registers API clients, rotates and revokes their keys, sets their webhook."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from relais.accounts.access import staff_required
from relais.accounts.models import Role, User
from relais.api import services
from relais.api.forms import ClientCreateForm, KeyAddForm, WebhookForm
from relais.api.models import ApiClient, ApiClientKey
from relais.core.forms import apply_service_errors
from relais.core.tenancy import for_actor
from relais.webhooks.models import DeliveryStatus, Webhook, WebhookDelivery
from relais.webhooks.services import webhook_disable, webhook_register

DELIVERY_LOG_ROWS = 50
TOKEN_PATH = "/api/v1/token"  # noqa: S105 (a URL path, not a secret): the audience the token endpoint checks (relais.api.routers.auth._audience)


def _client_or_404(user: User, client_id: uuid.UUID) -> ApiClient:
    return get_object_or_404(for_actor(ApiClient, user).select_related("pharmacy"), pk=client_id)


def _active_webhook(client: ApiClient) -> Webhook | None:
    return Webhook.objects.filter(client=client, disabled_at__isnull=True).order_by("-created_at").first()


@staff_required(Role.PHARMACY_ADMIN)
def client_list(request: HttpRequest, user: User) -> HttpResponse:
    form = ClientCreateForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        assert user.pharmacy is not None  # a pharmacy admin always has one (pharmacy_roles_have_pharmacy constraint)
        try:
            client = services.apiclient_create(
                actor=user, pharmacy=user.pharmacy, name=form.cleaned_data["name"], public_key_pem=form.cleaned_data["pem"]
            )
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, _("The software is registered. Give its client id to your software vendor."))
            return redirect("apiclients:detail", client_id=client.pk)
    clients = (
        for_actor(ApiClient, user)
        .annotate(active_keys=Count("keys", filter=Q(keys__revoked_at__isnull=True)))
        .order_by("revoked_at", "-created_at")
    )
    hooks = {
        w.client_id: w.url
        for w in for_actor(Webhook, user, field="client__pharmacy").filter(disabled_at__isnull=True).order_by("created_at")
    }
    rows = [(c, hooks.get(c.pk)) for c in clients]
    return render(request, "api/client_list.html", {"form": form, "rows": rows})


def _status_counts(client: ApiClient) -> list[dict[str, Any]]:
    rows = WebhookDelivery.objects.filter(webhook__client=client).order_by().values("status").annotate(n=Count("pk"))
    counts = {row["status"]: row["n"] for row in rows}
    peak = max(counts.values(), default=0) or 1
    labels = _status_labels()
    return [{"status": s, "label": labels[s], "n": counts.get(s, 0), "pct": 100 * counts.get(s, 0) / peak} for s in labels]


def _status_labels() -> dict[str, str]:
    return {DeliveryStatus.DELIVERED: _("delivered"), DeliveryStatus.PENDING: _("pending"), DeliveryStatus.FAILED: _("failed")}


def _render_detail(
    request: HttpRequest,
    client: ApiClient,
    *,
    key_form: KeyAddForm | None = None,
    webhook_form: WebhookForm | None = None,
) -> HttpResponse:
    webhook = _active_webhook(client)
    labels = _status_labels()
    deliveries = [
        (d, labels.get(d.status, d.status))
        for d in WebhookDelivery.objects.filter(webhook__client=client).defer("payload").order_by("-created_at")[:DELIVERY_LOG_ROWS]
    ]
    keys = list(client.keys.order_by("revoked_at", "-created_at"))
    active_keys = sum(1 for k in keys if k.revoked_at is None)
    context = {
        "client": client,
        "keys": keys,
        "active_keys": active_keys,
        "can_add_key": client.revoked_at is None and active_keys < services.MAX_ACTIVE_KEYS,
        "key_form": key_form or KeyAddForm(),
        "webhook": webhook,
        "webhook_form": webhook_form or WebhookForm(initial={"url": webhook.url if webhook else ""}),
        "deliveries": deliveries,
        "counts": _status_counts(client),
        "token_url": request.build_absolute_uri(TOKEN_PATH),
    }
    return render(request, "api/client_detail.html", context)


@staff_required(Role.PHARMACY_ADMIN)
def client_detail(request: HttpRequest, user: User, client_id: uuid.UUID) -> HttpResponse:
    return _render_detail(request, _client_or_404(user, client_id))


def _refuse_if_revoked(request: HttpRequest, client: ApiClient) -> HttpResponse | None:
    if client.revoked_at is None:
        return None
    messages.error(request, _("This software is revoked: nothing can be changed any more. Register it again if needed."))
    return redirect("apiclients:detail", client_id=client.pk)


@staff_required(Role.PHARMACY_ADMIN)
@require_POST
def key_add(request: HttpRequest, user: User, client_id: uuid.UUID) -> HttpResponse:
    client = _client_or_404(user, client_id)
    form = KeyAddForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            key = services.apiclient_add_rotation_key(actor=user, client=client, public_key_pem=form.cleaned_data["pem"])
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(
                request,
                _("Key %(kid)s added: both keys work until you revoke the old one.") % {"kid": key.kid[:16]},
            )
            return redirect("apiclients:detail", client_id=client.pk)
    return _render_detail(request, client, key_form=form)


@staff_required(Role.PHARMACY_ADMIN)
@require_POST
def key_revoke(request: HttpRequest, user: User, client_id: uuid.UUID, key_id: uuid.UUID) -> HttpResponse:
    client = _client_or_404(user, client_id)
    try:
        key = services.apiclient_revoke_client_key(actor=user, client=client, key_id=key_id)
    except ApiClientKey.DoesNotExist as exc:
        raise Http404 from exc
    messages.success(
        request, _("Key %(kid)s revoked: it can no longer get tokens, and the tokens it got no longer work.") % {"kid": key.kid[:16]}
    )
    return redirect("apiclients:detail", client_id=client.pk)


@staff_required(Role.PHARMACY_ADMIN)
@require_POST
def client_revoke(request: HttpRequest, user: User, client_id: uuid.UUID) -> HttpResponse:
    client = _client_or_404(user, client_id)
    services.apiclient_revoke(actor=user, client=client)
    messages.success(request, _("The software is revoked: its tokens stopped working and it cannot get new ones."))
    return redirect("apiclients:detail", client_id=client.pk)


@staff_required(Role.PHARMACY_ADMIN)
@require_POST
def webhook_set(request: HttpRequest, user: User, client_id: uuid.UUID) -> HttpResponse:
    client = _client_or_404(user, client_id)
    refused = _refuse_if_revoked(request, client)
    if refused is not None:
        return refused
    form = WebhookForm(request.POST)
    if form.is_valid():
        try:
            webhook_register(actor=user, client=client, url=form.cleaned_data["url"])
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, _("Webhook address saved."))
            return redirect("apiclients:detail", client_id=client.pk)
    return _render_detail(request, client, webhook_form=form)


@staff_required(Role.PHARMACY_ADMIN)
@require_POST
def webhook_off(request: HttpRequest, user: User, client_id: uuid.UUID) -> HttpResponse:
    client = _client_or_404(user, client_id)
    webhook = _active_webhook(client)
    if webhook is None:
        messages.error(request, _("This software has no active webhook."))
    else:
        webhook_disable(actor=user, webhook=webhook)
        messages.success(request, _("Webhook disabled: no more notifications are sent."))
    return redirect("apiclients:detail", client_id=client.pk)
