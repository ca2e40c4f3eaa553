from django.urls import path

from relais.results import views

# The addresses patients already hold in their inbox: never change them.
app_name = "results"
urlpatterns = [
    path("r/", views.result_page, name="result"),
    path("r/document.pdf", views.result_pdf, name="pdf"),
    path("r/leave", views.result_leave, name="leave"),
    path("r/<str:token>", views.result_open, name="open"),
    path("screenings/<uuid:screening_id>/document.pdf", views.staff_pdf, name="staff_pdf"),
]
