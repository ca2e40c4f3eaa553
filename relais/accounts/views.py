from __future__ import annotations

import base64
from io import BytesIO

import qrcode
import qrcode.image.svg
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from relais.accounts import services
from relais.accounts.access import PUBLIC, public, staff_required
from relais.accounts.forms import (
    AcceptInvitationForm,
    EmailAuthenticationForm,
    InviteForm,
    MyRppsForm,
    PharmacyForm,
    PharmacyPhoneForm,
    RppsForm,
    TokenForm,
)
from relais.accounts.models import Invitation, Pharmacy, Role, User
from relais.audit.services import audit_record
from relais.core.forms import apply_service_errors
from relais.core.tenancy import for_actor


class LoginView(auth_views.LoginView):
    access_rule = PUBLIC
    form_class = EmailAuthenticationForm
    template_name = "accounts/login.html"
    redirect_authenticated_user = True


@staff_required(verified=False)
@require_POST
def logout_view(request: HttpRequest, user: User) -> HttpResponse:
    from django.contrib.auth import logout

    logout(request)
    return redirect("accounts:login")


def _qr_svg(data: str) -> str:
    image = qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    buffer = BytesIO()
    image.save(buffer)
    return buffer.getvalue().decode()


@staff_required(verified=False)
def mfa(request: HttpRequest, user: User) -> HttpResponse:
    """Enrol a TOTP device at first login, verify it at every later one."""
    if user.is_verified():  # type: ignore[attr-defined]
        return redirect("home")
    confirmed = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if confirmed is None:
        return _mfa_enrol(request, user)
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        error = _code_error(confirmed, form.cleaned_data["token"])
        if error is None:
            otp_login(request, confirmed)
            return redirect("home")
        form.add_error("token", error)
    return render(request, "accounts/mfa_verify.html", {"form": form})


def _code_error(device: TOTPDevice, token: str) -> str | None:
    """None when the code is right; otherwise what to do. Wrong codes slow down further tries."""
    allowed, _info = device.verify_is_allowed()
    if not allowed:
        return _("Too many wrong codes: wait a little before trying again.")
    if device.verify_token(token.strip()):
        return None
    return _("This code is wrong or expired. Check the time on your phone and enter the next code.")


def _mfa_enrol(request: HttpRequest, user: User) -> HttpResponse:
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=False)
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        error = _code_error(device, form.cleaned_data["token"])
        if error is None:
            with transaction.atomic():
                device.confirmed = True
                device.save(update_fields=["confirmed"])
                audit_record(actor=user, action="staff.mfa_enrol", object_type="user", object_ids=[user.pk])
            otp_login(request, device)
            messages.success(request, _("Two-step verification is on. You will need a code at every login."))
            return redirect("home")
        form.add_error("token", error)
    secret = base64.b32encode(device.bin_key).decode().rstrip("=")
    return render(
        request,
        "accounts/mfa_enrol.html",
        {"form": form, "qr_svg": _qr_svg(device.config_url), "secret": secret},
    )


@public
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    invitation = services.invitation_from_token(token=token)
    if invitation is None:
        return render(request, "accounts/invitation_invalid.html", {"state": services.invitation_state(token=token)}, status=404)
    form = AcceptInvitationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.invitation_accept(
                token=token,
                full_name=form.cleaned_data["full_name"],
                password=form.cleaned_data["password1"],
                rpps=form.cleaned_data["rpps"],
            )
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, _("Your account is ready. Log in to set up two-step verification."))
            return redirect("accounts:login")
    return render(request, "accounts/invitation_accept.html", {"form": form, "invitation": invitation})


def _invite_url(request: HttpRequest, token: str) -> str:
    return request.build_absolute_uri(reverse("accounts:invitation", args=[token]))


def _email_outcome(request: HttpRequest, issued: services.IssuedInvitation) -> None:
    """Email the link now that the invitation is committed, and tell the administrator how it went."""
    if services.invitation_email_send(invitation=issued.invitation, token=issued.token):
        messages.success(request, _("The invitation was emailed to %(email)s.") % {"email": issued.invitation.email})
    else:
        messages.error(request, _("The invitation email could not be sent.") + " " + issued.invitation.email_problem)


@staff_required(Role.PHARMACY_ADMIN)
def team(request: HttpRequest, user: User) -> HttpResponse:
    form = InviteForm(request.POST or None)
    invite_link = None
    if request.method == "POST" and form.is_valid():
        try:
            issued = services.invitation_create(
                actor=user, email=form.cleaned_data["email"], role=form.cleaned_data["role"], pharmacy=user.pharmacy
            )
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            _email_outcome(request, issued)
            invite_link = _invite_url(request, issued.token)
            form = InviteForm()
    return _team_page(request, user, form=form, invite_link=invite_link)


def _team_page(request: HttpRequest, user: User, *, form: InviteForm, invite_link: str | None) -> HttpResponse:
    staff = for_actor(User, user, patient_data=False).order_by("email")
    invitations = services.invitations_open(actor=user)
    context = {"form": form, "staff": staff, "invite_link": invite_link, "invitations": invitations}
    return render(request, "accounts/team.html", context)


@staff_required(Role.PHARMACY_ADMIN)
@require_POST
def invitation_revoke(request: HttpRequest, user: User, invitation_id: str) -> HttpResponse:
    try:
        services.invitation_revoke(actor=user, invitation_id=invitation_id)
    except Invitation.DoesNotExist as exc:
        raise Http404 from exc
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, _("The invitation is revoked: its link no longer works."))
    return redirect("accounts:team")


@staff_required(Role.PHARMACY_ADMIN)
@require_POST
def invitation_resend(request: HttpRequest, user: User, invitation_id: str) -> HttpResponse:
    try:
        issued = services.invitation_resend(actor=user, invitation_id=invitation_id)
    except Invitation.DoesNotExist as exc:
        raise Http404 from exc
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        _email_outcome(request, issued)
        # The new link is shown once, in this answer (a redirect would have to keep the token somewhere).
        return _team_page(request, user, form=InviteForm(), invite_link=_invite_url(request, issued.token))
    return redirect("accounts:team")


@staff_required(Role.PHARMACIST, Role.PHARMACY_ADMIN)
def my_account(request: HttpRequest, user: User) -> HttpResponse:
    """The signed-in staff member's own account: they enter or change their RPPS number (only their own: the page takes
    no account id). Changes are POST only; a refused number changes nothing and is named next to the field."""
    if request.method == "POST":
        form = MyRppsForm(request.POST)
        if form.is_valid():
            try:
                services.staff_rpps_set(actor=user, user_id=user.pk, rpps=form.cleaned_data["rpps"])
            except ValidationError as exc:
                apply_service_errors(form, exc)
            else:
                messages.success(request, _("Your RPPS number is saved."))
                return redirect("accounts:my_account")
    else:
        form = MyRppsForm(initial={"rpps": user.rpps})
    return render(request, "accounts/my_account.html", {"form": form})


@staff_required(Role.PHARMACY_ADMIN)
@require_POST
def staff_rpps(request: HttpRequest, user: User, user_id: str) -> HttpResponse:
    form = RppsForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(str(e) for e in form.errors["rpps"]))
        return redirect("accounts:team")
    try:
        services.staff_rpps_set(actor=user, user_id=user_id, rpps=form.cleaned_data["rpps"])
    except User.DoesNotExist as exc:
        raise Http404 from exc
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, _("The RPPS number is saved."))
    return redirect("accounts:team")


@staff_required(Role.PHARMACY_ADMIN)
@require_POST
def staff_deactivate(request: HttpRequest, user: User, user_id: str) -> HttpResponse:
    try:
        services.staff_deactivate(actor=user, user_id=user_id)
    except User.DoesNotExist as exc:
        raise Http404 from exc
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, _("The account is deactivated."))
    return redirect("accounts:team")


@staff_required(Role.PLATFORM_OPERATOR)
def operator_pharmacies(request: HttpRequest, user: User) -> HttpResponse:
    form = PharmacyForm(request.POST or None)
    invite_link = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            with transaction.atomic():
                pharmacy = services.pharmacy_create(
                    actor=user,
                    name=data["name"],
                    finess=data["finess"],
                    address_line=data["address_line"],
                    postcode=data["postcode"],
                    city=data["city"],
                    phone=data["phone"],
                )
                issued = services.invitation_create(actor=user, email=data["admin_email"], role=Role.PHARMACY_ADMIN, pharmacy=pharmacy)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            _email_outcome(request, issued)
            invite_link = _invite_url(request, issued.token)
            form = PharmacyForm()
    pharmacies = Pharmacy.objects.order_by("name")
    return render(request, "accounts/operator_pharmacies.html", {"form": form, "pharmacies": pharmacies, "invite_link": invite_link})


@staff_required(Role.PLATFORM_OPERATOR)
@require_POST
def pharmacy_phone(request: HttpRequest, user: User, pharmacy_id: str) -> HttpResponse:
    form = PharmacyPhoneForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(str(e) for errors in form.errors.values() for e in errors))
        return redirect("accounts:operator_pharmacies")
    try:
        services.pharmacy_phone_set(actor=user, pharmacy_id=pharmacy_id, phone=form.cleaned_data["phone"])
    except Pharmacy.DoesNotExist as exc:
        raise Http404 from exc
    except ValidationError as exc:
        messages.error(request, _("Pharmacy phone: %(errors)s") % {"errors": " ".join(exc.messages)})
    else:
        messages.success(request, _("The pharmacy's phone number is saved."))
    return redirect("accounts:operator_pharmacies")
