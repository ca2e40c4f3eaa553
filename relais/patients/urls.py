from django.urls import path

from relais.patients import views

app_name = "patients"
urlpatterns = [
    path("", views.patient_search, name="search"),
    path("new/", views.patient_register, name="register"),
    path("review/", views.patient_review_list, name="review_list"),
    path("<uuid:patient_id>/review/", views.patient_review, name="review"),
    path("<uuid:patient_id>/", views.patient_detail, name="detail"),
    path("<uuid:patient_id>/contact/", views.patient_contact, name="contact"),
    path("<uuid:patient_id>/identity/", views.patient_identity, name="identity"),
]
