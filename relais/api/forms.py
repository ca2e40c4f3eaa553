"""Forms of the "Connected software" pages: register a client, add a key, set a webhook."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from relais.core.forms import FocusFirstErrorMixin

MAX_KEY_FILE_BYTES = 16 * 1024  # an RSA 4096 public key is under 1 kB


def _private_key_message() -> str:
    return gettext(
        "This is a PRIVATE key: it was not stored and must stay with your software only. "
        "Consider it exposed, generate a new key pair, and give only the public key (openssl pkey -in private.pem -pubout)."
    )


class PublicKeyFormMixin(forms.Form):
    """A public key pasted or uploaded as a PEM file. A pasted private key is never shown back on the page."""

    public_key = forms.CharField(
        label=_("Public key (PEM)"),
        required=False,
        strip=True,
        max_length=MAX_KEY_FILE_BYTES,
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false", "autocomplete": "off", "placeholder": "-----BEGIN PUBLIC KEY-----"}),
        help_text=_("EC P-256 or RSA (2048 bits or more). Paste the public key only, never the private key."),
    )
    public_key_file = forms.FileField(label=_("…or choose the public key file"), required=False)

    def __init__(self, data: Any = None, files: Any = None, **kwargs: Any) -> None:
        self.private_key_pasted = False
        if data is not None and "PRIVATE KEY" in (data.get("public_key") or ""):
            data = data.copy()
            data["public_key"] = ""  # never echo a secret back into the page
            self.private_key_pasted = True
        super().__init__(data, files, **kwargs)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.private_key_pasted:
            self.add_error("public_key", _private_key_message())
            return cleaned
        pem = cleaned.get("public_key") or ""
        upload = cleaned.get("public_key_file")
        if upload is not None:
            if upload.size > MAX_KEY_FILE_BYTES:
                self.add_error("public_key_file", gettext("This file is too large for a public key."))
                return cleaned
            try:
                pem = upload.read().decode("ascii").strip()
            except UnicodeDecodeError:
                self.add_error("public_key_file", gettext("This file is not a PEM key (text starting with -----BEGIN PUBLIC KEY-----)."))
                return cleaned
            if "PRIVATE KEY" in pem:
                self.add_error("public_key_file", _private_key_message())
                return cleaned
        if not pem and not self.errors:
            self.add_error("public_key", gettext("Paste the public key or choose its file."))
        cleaned["pem"] = pem
        return cleaned


class ClientCreateForm(FocusFirstErrorMixin, PublicKeyFormMixin):
    name = forms.CharField(label=_("Software name"), max_length=200, help_text=_("e.g. the product name and version: My LGO 4.2"))
    field_order = ["name", "public_key", "public_key_file"]


class KeyAddForm(FocusFirstErrorMixin, PublicKeyFormMixin):
    pass


class WebhookForm(FocusFirstErrorMixin, forms.Form):
    url = forms.CharField(
        label=_("Webhook address"),
        max_length=500,
        widget=forms.TextInput(attrs={"inputmode": "url", "placeholder": "https://example.org/relais/webhook", "autocomplete": "off"}),
        help_text=_("Relais posts a signed notification here when the national platform acknowledges or rejects a test."),
    )
