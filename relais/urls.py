from django.urls import include, path

from relais.core.views import healthz, healthz_live, healthz_ready
from relais.screenings.views import home

urlpatterns = [
    path("", home, name="home"),
    path("healthz", healthz, name="healthz"),
    path("healthz/live", healthz_live, name="healthz-live"),
    path("healthz/ready", healthz_ready, name="healthz-ready"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("relais.accounts.urls")),
    path("patients/", include("relais.patients.urls")),
    path("", include("relais.screenings.urls")),
    path("audit/alerts/", include("relais.oversight.urls")),
    path("audit/", include("relais.audit.urls")),
    path("", include("relais.transfer.urls")),
    path("", include("relais.api.urls")),
    path("imports/", include("relais.submissions.urls")),
    path("settings/api/", include("relais.api.web_urls")),
    path("", include("relais.notify.urls")),
    path("", include("relais.subject_access.urls")),
    path("", include("relais.results.urls")),
    path("dcc/", include("relais.certificates.urls")),
    path("breach/", include("relais.breach.urls")),
    path("day/", include("relais.frontdesk.urls")),
    path("", include("relais.prereg.urls")),
    path("queue/", include("relais.testqueue.urls")),
    path("", include("relais.observability.urls")),
]
handler404 = "relais.core.views.not_found"
handler400 = "relais.core.views.bad_request"
