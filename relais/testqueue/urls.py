from django.urls import path

from relais.testqueue import views

app_name = "testqueue"
urlpatterns = [
    path("", views.queue, name="list"),
    path("list/", views.queue_fragment, name="fragment"),
    path("<uuid:pending_id>/result/", views.result, name="result"),
    path("<uuid:pending_id>/cancel/", views.cancel, name="cancel"),
]
