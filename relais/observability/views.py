from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4

from relais.accounts.access import public
from relais.observability.access import may_read_metrics
from relais.observability.exposition import exposition


@public  # no login: a scraper holds the token, or sits at an allowed address; anyone else gets the ordinary 404
def metrics(request: HttpRequest) -> HttpResponse:
    if request.method not in {"GET", "HEAD"} or not may_read_metrics(request):
        raise Http404  # the same page as a path that does not exist: nothing says /metrics is here
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_PLAIN_0_0_4)
