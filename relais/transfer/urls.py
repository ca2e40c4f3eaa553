from django.urls import path

from relais.transfer import views

app_name = "transfer"
urlpatterns = [
    path("operator/transfer/", views.operator_queue, name="operator_queue"),
    path("operator/transfer/resend/", views.resend_batch, name="resend_batch"),
    path("transfer/<uuid:outbox_id>/resend/", views.resend, name="resend"),
]
