from django.urls import path

from relais.notify import views

app_name = "notify"
urlpatterns = [
    path("screenings/<uuid:screening_id>/resend/", views.resend, name="resend"),
]
