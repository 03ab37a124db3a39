"""allauth's server-rendered views under accounts/, its headless API under _allauth/."""

from __future__ import annotations

from django.urls import include, path

from . import views

urlpatterns = [
    path("accounts/", include("allauth.urls")),
    path("_allauth/", include("allauth.headless.urls")),
    path("profile/", views.profile, name="profile"),
    path("_versions/", views.versions, name="versions"),
    path("_marker/<slug:step>/", views.marker, name="marker"),
]
