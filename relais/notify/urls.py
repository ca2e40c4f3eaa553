from django.urls import path

from relais.notify import views

app_name = "notify"
urlpatterns = [
    path("r/", views.result_page, name="result"),
    path("r/document.pdf", views.result_pdf, name="pdf"),
    path("r/leave", views.result_leave, name="leave"),
    path("r/<str:token>", views.result_open, name="open"),
    path("screenings/<uuid:screening_id>/resend/", views.resend, name="resend"),
    path("screenings/<uuid:screening_id>/document.pdf", views.staff_pdf, name="staff_pdf"),
]
