from django.urls import path

from relais.subject_access import views

app_name = "subject_access"
urlpatterns = [
    path("patients/<uuid:patient_id>/export/<str:fmt>", views.staff_export, name="staff_export"),
    # Under /r/ like the other result pages (public to the middleware); the slash keeps it apart from /r/<token>.
    path("r/export/<str:fmt>", views.patient_export, name="patient_export"),
]
