from django.urls import path

from relais.audit import views

app_name = "audit"
urlpatterns = [
    path("", views.events, name="events"),
    path("export.csv", views.events_export, name="events_export"),
    path("patients/", views.patient_find, name="patient_find"),
    path("patients/<uuid:patient_id>/", views.patient_events, name="patient"),
    path("patients/<uuid:patient_id>/export.csv", views.patient_export, name="patient_export"),
]
