from django.urls import path

from relais.breach import views

app_name = "breach"
urlpatterns = [
    path("", views.cases, name="cases"),
    path("<uuid:case_id>/", views.case, name="case"),
    path("<uuid:case_id>/letters/<uuid:letter_id>/", views.letter, name="letter"),
    path("<uuid:case_id>/approve/", views.approve, name="approve"),
    path("<uuid:case_id>/send/", views.send, name="send"),
    path("<uuid:case_id>/pharmacies/<uuid:pharmacy_id>/approve/", views.approve, name="approve_pharmacy"),
    path("<uuid:case_id>/pharmacies/<uuid:pharmacy_id>/send/", views.send, name="send_pharmacy"),
]
