from django.urls import path

from relais.screenings import kit_views, views

app_name = "screenings"
urlpatterns = [
    path("patients/<uuid:patient_id>/record/", views.screening_record, name="record"),
    path("screenings/<uuid:screening_id>/", views.screening_detail, name="detail"),
    path("screenings/<uuid:screening_id>/correct/", views.screening_correct, name="correct"),
    path("notice/", views.information_notice, name="notice"),
    path("kits/", kit_views.kit_settings, name="kits"),
    path("kits/scan/", kit_views.kit_scan, name="kit_scan"),
]
