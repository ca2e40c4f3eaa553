from django.urls import path

from relais.frontdesk import views

app_name = "frontdesk"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("today/", views.today_fragment, name="today_fragment"),
    path("export/", views.export, name="export"),
]
