"""What verifiers download: the hashes of revoked certificate identifiers (no personal data)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from relais.accounts.access import public
from relais.certificates.services import revocation_hashes


@public
@require_GET
def revocation_list(request: HttpRequest) -> JsonResponse:
    response = JsonResponse(
        {
            "kind": "eu-dcc-revocation-list",
            "hash_type": "UCI",  # SHA-256 of the UVCI, first 128 bits, base64 (EU DCC revocation, hash type UCI)
            "generated_at": timezone.now().isoformat(),
            "hashes": revocation_hashes(),
        }
    )
    return response
