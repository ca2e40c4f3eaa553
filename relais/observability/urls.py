from django.urls import path

from relais.observability.views import metrics

app_name = "observability"
urlpatterns = [path("metrics", metrics, name="metrics")]
