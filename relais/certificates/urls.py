from django.urls import path

from relais.certificates import views

app_name = "certificates"
urlpatterns = [path("revocations.json", views.revocation_list, name="revocations")]
