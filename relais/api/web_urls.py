from django.urls import path

from relais.api import web_views as views

app_name = "apiclients"
urlpatterns = [
    path("", views.client_list, name="list"),
    path("<uuid:client_id>/", views.client_detail, name="detail"),
    path("<uuid:client_id>/keys/", views.key_add, name="key_add"),
    path("<uuid:client_id>/keys/<uuid:key_id>/revoke/", views.key_revoke, name="key_revoke"),
    path("<uuid:client_id>/revoke/", views.client_revoke, name="revoke"),
    path("<uuid:client_id>/webhook/", views.webhook_set, name="webhook"),
    path("<uuid:client_id>/webhook/disable/", views.webhook_off, name="webhook_disable"),
]
