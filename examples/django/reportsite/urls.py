from django.contrib.auth import views as auth_views
from django.urls import path

from reports import views

urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", views.LogoutView.as_view(), name="logout"),
    path("", views.reports, name="reports"),
    path("reports/generate", views.generate, name="generate"),
    path("reports/token", views.token, name="token"),
]
