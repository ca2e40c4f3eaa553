from django.urls import path

from relais.oversight import views

app_name = "oversight"
urlpatterns = [
    path("", views.alerts, name="alerts"),
    path("<uuid:alert_id>/", views.alert, name="alert"),
    path("<uuid:alert_id>/acknowledge", views.acknowledge, name="acknowledge"),
]
