from django.urls import path

from relais.api.api import api

urlpatterns = [path("api/v1/", api.urls)]
