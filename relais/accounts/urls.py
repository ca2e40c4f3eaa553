from django.urls import path

from relais.accounts import views

app_name = "accounts"
urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.logout_view, name="logout"),
    path("mfa/", views.mfa, name="mfa"),
    path("invite/<str:token>/", views.invitation_accept, name="invitation"),
    path("account/", views.my_account, name="my_account"),
    path("team/", views.team, name="team"),
    path("team/<uuid:user_id>/rpps/", views.staff_rpps, name="rpps"),
    path("team/<uuid:user_id>/deactivate/", views.staff_deactivate, name="deactivate"),
    path("team/invitations/<uuid:invitation_id>/revoke/", views.invitation_revoke, name="invitation_revoke"),
    path("team/invitations/<uuid:invitation_id>/resend/", views.invitation_resend, name="invitation_resend"),
    path("operator/pharmacies/", views.operator_pharmacies, name="operator_pharmacies"),
    path("operator/pharmacies/<uuid:pharmacy_id>/phone/", views.pharmacy_phone, name="pharmacy_phone"),
]
