from django.urls import path

from ghostcrm.accounts import views

app_name = "accounts"

urlpatterns = [
    path("login/", views.login_view, name="login"),
    path("mfa/", views.mfa_view, name="mfa"),
    path("mfa/enrol/", views.mfa_enrol_view, name="mfa_enrol"),
    path("mfa/reset/", views.mfa_reset_view, name="mfa_reset"),
    path("mfa/backup-codes/", views.backup_codes_view, name="backup_codes"),
    path("confirm-password/", views.reauth_view, name="reauth"),
    path("security/", views.security_view, name="security"),
    path("invitations/<str:token>/", views.invitation_view, name="invitation"),
]
