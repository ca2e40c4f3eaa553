from django.urls import path

from relais.prereg import views

app_name = "prereg"
urlpatterns = [
    # Public (the patient's phone): PUBLIC_PREFIXES holds "/pre/"; the token names the pharmacy's current link.
    path("pre/done/", views.public_done, name="done"),
    path("pre/<str:token>/", views.public_form, name="form"),
    # Counter (staff, pharmacy-scoped).
    path("prereg/", views.prereg_list, name="list"),
    path("prereg/link/", views.link_page, name="link"),
    path("prereg/link/qr.svg", views.link_qr, name="qr"),
    path("prereg/link/rotate/", views.link_rotate, name="rotate"),
    path("prereg/<uuid:prereg_id>/", views.prereg_confirm, name="confirm"),
]
