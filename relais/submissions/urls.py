from django.urls import path

from relais.submissions import views

app_name = "submissions"
urlpatterns = [
    path("", views.upload, name="upload"),
    path("template.csv", views.template, name="template"),
    path("example.csv", views.example, name="example"),
    path("<uuid:submission_id>/", views.detail, name="detail"),
    path("<uuid:submission_id>/status.json", views.status, name="status"),
    path("<uuid:submission_id>/errors.csv", views.errors_csv, name="errors"),
]
